"""A restarted monitor goes on from its saved state: at whatever update the tracker is stopped,
a tracker resumed from the calls it saved makes exactly the events the first would have made."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from services.monitor import checkpoint
from services.monitor.tracker import CallTracker
from services.monitor.updates import PbxUpdate
from shared.event_base import Event
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


def without_ids(events: list[Event]) -> list[str]:
    return [e.model_dump_json(exclude={"event_id"}) for e in events]


@pytest.mark.parametrize(
    "name",
    [
        "attended-transfer-hold",
        "ivr-routing",
        "queue-to-queue-transfer",
        "overlapping-chains",
        "outgoing-transfer",
    ],
)
def test_a_tracker_resumed_at_any_update_makes_the_same_events(name: str) -> None:
    updates, tracker = updates_of(name)
    expected = without_ids([e for u in updates for e in tracker.apply(u)])
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
        for update in updates[stop:]:
            made += resumed.apply(update)
        assert without_ids(made) == expected, f"stopped after update {stop}"
