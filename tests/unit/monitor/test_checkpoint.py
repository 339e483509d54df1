"""A restarted monitor goes on from its saved state: at whatever update the tracker is stopped,
a tracker resumed from the calls it saved makes the events the first would have made, and the
calls' states it publishes again leave the API with the same calls in progress. And the snapshot
the monitor answers from its tracker says what the published states say."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from services.monitor import checkpoint
from services.monitor.tracker import CallTracker
from services.monitor.updates import PbxUpdate
from shared.event_base import Event
from shared.events import CallsChanged
from shared.pbx_state import PbxState, StateSnapshot
from simulation.driver import playable_scenario
from simulation.simulator import PbxSimulator
from tests.conftest import EXAMPLES

PRAGUE = ZoneInfo("Europe/Prague")


def updates_of(name: str) -> tuple[list[PbxUpdate], CallTracker]:
    scenario = playable_scenario(EXAMPLES / f"{name}.yaml")
    simulator = PbxSimulator(scenario.directory, first_call_number=scenario.first_call_number)
    start = scenario.start.replace(tzinfo=PRAGUE)
    updates = [u for step in scenario.steps for u in simulator.apply(step, start + timedelta(seconds=step.t))]
    return updates, CallTracker(scenario.directory, zone=PRAGUE, source="m/1")


def facts(events: list[Event]) -> list[str]:
    """The events other than the calls' states, without their ids and numbers."""
    return [e.model_dump_json(exclude={"event_id", "seq"}) for e in events if not isinstance(e, CallsChanged)]


def calls_after(events: list[Event], state: PbxState | None = None) -> tuple[dict[int, str], list[str]]:
    """The calls in progress (their content) and the busy extensions, as an API that folded
    `events` holds them."""
    state = state or PbxState()
    for event in events:
        state.apply(event)
    unstamped = {"event_id", "seq", "occurred_at"}
    return {n: call.model_dump_json(exclude=unstamped) for n, call in state.calls.items()}, sorted(state.busy)


FIVE = [
    "attended-transfer-hold",
    "ivr-routing",
    "queue-to-queue-transfer",
    "overlapping-chains",
    "outgoing-transfer",
]


@pytest.mark.parametrize("name", FIVE)
def test_the_snapshot_from_the_tracker_is_what_the_published_states_say(name: str) -> None:
    """The monitor keeps no copy of every call's state for the API's snapshots: at any update,
    before the gathered states go out, the tracker's `current()` already says what an API that
    folded every event holds once they have gone out."""
    updates, tracker = updates_of(name)
    api = PbxState()
    for n, update in enumerate(updates):
        made = tracker.apply_burst([update])
        calls, busy = tracker.current()
        snapshot = StateSnapshot(
            source="m/1", seq=tracker.seq, directory=tracker.directory, busy=busy, calls=calls
        )
        made += tracker.publish_states()
        assert calls_after([], PbxState.from_snapshot(snapshot)) == calls_after(made, api), f"update {n}"
    assert api.calls == {} and tracker.current() == ((), ())


@pytest.mark.parametrize("name", FIVE)
def test_a_tracker_resumed_at_any_update_makes_the_same_events(name: str) -> None:
    updates, tracker = updates_of(name)
    per_update = [tracker.apply(u) for u in updates]
    everything = [e for made in per_update for e in made]
    for stop in range(1, len(updates), max(1, len(updates) // 25)):
        first = updates_of(name)[1]
        saved: dict[int, str] = {}
        made: list[Event] = []
        for update in updates[:stop]:
            made += first.apply(update)
            calls, gone = first.changes()
            saved |= calls
            for number in gone:
                saved.pop(number, None)
        resumed = CallTracker.resumed(
            first.directory,
            [checkpoint.load(text) for text in saved.values()],
            zone=PRAGUE,
            source=first.source,
            seq=first.seq,
        )
        made += resumed.apply(updates[stop])
        so_far = [e for events in per_update[: stop + 1] for e in events]
        assert calls_after(made) == calls_after(so_far), f"stopped after update {stop}"
        for update in updates[stop + 1 :]:
            made += resumed.apply(update)
        assert facts(made) == facts(everything), f"stopped after update {stop}"
        assert [e.seq for e in made] == list(range(1, len(made) + 1))


def test_a_resume_publishes_what_the_stop_left_unsaid() -> None:
    """States noted and not yet published when the monitor stopped reach the API after the
    resume, and a call that ended meanwhile leaves the API's list."""
    updates, first = updates_of("overlapping-chains")
    half = len(updates) // 2
    heard: list[Event] = []  # what the API got before the stop
    for update in updates[: half // 2]:
        heard += first.apply(update)
    saved: dict[int, str] = {}
    for update in updates[half // 2 : half]:
        first.apply_burst([update])  # states noted, never published: lost with the process
        calls, gone = first.changes()
        saved = {n: s for n, s in (saved | calls).items() if n not in gone}
    api = PbxState()
    before = calls_after(heard, api)
    resumed = CallTracker.resumed(
        first.directory,
        [checkpoint.load(s) for s in saved.values()],
        zone=PRAGUE,
        source="m/1",
        seq=first.seq,
    )
    assert resumed.states_waiting
    republished = resumed.publish_states()
    assert [e.type for e in republished] == ["pbx.calls"]
    assert isinstance(republished[0], CallsChanged)
    assert republished[0].in_progress is not None and republished[0].busy is not None
    full, _ = updates_of("overlapping-chains")
    reference = updates_of("overlapping-chains")[1]
    truth = calls_after([e for u in full[:half] for e in reference.apply(u)])
    assert calls_after(republished, api) == truth
    assert before != truth  # the stop had left the API behind
