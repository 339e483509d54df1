"""The monitor's outbox (a SQLite file) and its relay to the bus: an event is kept before it is
sent, sent in order, sent again (same id) until the broker confirms it, kept through a restart,
and a full disk holds the monitor back instead of losing events."""

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from services.monitor import following
from services.monitor import main as monitor_main
from services.monitor import outbox as outbox_module
from services.monitor.outbox import Changes, Outbox, Relay
from services.monitor.updates import PbxUpdate
from shared.bus import PublishError
from shared.call_state import CallState
from shared.clock import VirtualClock
from shared.event_base import Event
from shared.events import BATCH_KEY, CallEnded, CallEvent, CallsChanged, Message, each_event, unpacked
from shared.memory_bus import InMemoryBus
from shared.settings import Settings
from simulation.driver import SimulatorDriver, playable_scenario
from simulation.scenario import default_directory
from tests.conftest import EXAMPLES
from tests.factories import make_call_ringing
from tests.fakes import Recorder


class RefusingBus(InMemoryBus):
    """A bus whose broker refuses to confirm the first `refusals` flushes (an outage)."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals
        self.sent: list[Event] = []

    async def publish(self, event: Event, encoded: bytes | None = None) -> None:
        self.sent.append(event)
        await super().publish(event, encoded)

    async def flush(self) -> None:
        if self.refusals:
            self.refusals -= 1
            raise PublishError("1 message(s) not confirmed, first: the broker is away")
        await super().flush()


def fill_disk(outbox: Outbox) -> None:
    """The outbox's disk full: no page may be added (SQLite answers SQLITE_FULL, as on a full
    disk). A limit of the outbox's own connection, hence the private door."""
    db: sqlite3.Connection = outbox._db
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {pages}")


def scenario_driver(name: str) -> SimulatorDriver:
    scenario = playable_scenario(EXAMPLES / f"{name}.yaml")
    start = scenario.start.replace(tzinfo=UTC)
    steps = [(start + timedelta(seconds=step.t), step) for step in scenario.steps]
    return SimulatorDriver(
        scenario.directory, steps, VirtualClock(start), first_call_number=scenario.first_call_number
    )


def test_events_are_kept_in_order_until_confirmed(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    events = [make_call_ringing(link=n) for n in range(5)]
    outbox.append(events[:3])
    outbox.append(events[3:])
    pending = outbox.pending()
    assert [body for _, _, body in pending] == [e.model_dump_json().encode() for e in events]
    assert [event for _, event, _ in pending] == events
    assert outbox.backlog().events == 5
    outbox.confirmed(pending[1][0])
    assert [id for id, _, _ in outbox.pending()] == [id for id, _, _ in pending[2:]]
    assert outbox.backlog().events == 3
    outbox.close()


def test_what_was_not_confirmed_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    first = Outbox(path)
    events = [make_call_ringing(link=n) for n in range(3)]
    first.append(events)
    first.confirmed(first.pending()[0][0])
    del first  # killed: no close, no relay
    again = Outbox(path)
    assert [(event, body) for _, event, body in again.pending()] == [
        (e, e.model_dump_json().encode()) for e in events[1:]
    ]
    again.close()


def test_the_events_appended_are_sent_as_they_are_without_parsing_them_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay takes what this process appended as it was (the objects, and their body as
    encoded once), beyond a bounded number read back from the file."""
    outbox = Outbox(tmp_path / "outbox.db")
    monkeypatch.setattr(outbox_module, "FRESH", 3)
    events = [make_call_ringing(link=n) for n in range(5)]
    outbox.append(events[:3])
    outbox.append(events[3:])  # beyond FRESH: kept in the file only
    pending = outbox.pending()
    assert [event is original for (_, event, _), original in zip(pending, events, strict=True)] == [
        True,
        True,
        True,
        False,
        False,
    ]
    assert [event for _, event, _ in pending] == events
    outbox.close()


def test_a_full_disk_keeps_nothing_and_says_so(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.append([make_call_ringing()])
    fill_disk(outbox)
    with pytest.raises(OSError, match="cannot keep events"):
        outbox.append([make_call_ringing(external_number=str(n) * 300) for n in range(200)])
    assert not outbox.writable
    assert outbox.backlog().events == 1
    outbox.close()


async def test_the_relay_sends_a_refused_batch_again_whole_and_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("services.monitor.outbox.RETRY_FIRST", 0.01)
    bus = RefusingBus(refusals=2)
    recorder = Recorder()
    await bus.subscribe("after", recorder, bindings=["#"])
    outbox = Outbox(tmp_path / "outbox.db")
    events = [make_call_ringing(link=n) for n in range(4)]
    outbox.append(events)
    relay = Relay(outbox, bus)
    relaying = asyncio.create_task(relay.run())
    await relay.drained()
    relaying.cancel()
    ids = [e.event_id for e in events]
    assert [e.event_id for e in bus.sent] == ids * 3  # twice refused, then confirmed: the same ids
    assert outbox.backlog().events == 0
    outbox.close()


async def test_each_event_goes_alone_then_once_more_in_a_batch_that_only_batch_queues_get(
    tmp_path: Path,
) -> None:
    bus, outbox = InMemoryBus(), Outbox(tmp_path / "outbox.db")
    seen: list[tuple[str, list[UUID]]] = []

    async def alone(event: Message) -> None:
        seen.append(("alone", [event.event_id]))

    async def batch(message: Message) -> None:
        seen.append(("batch", [e.event_id for e in each_event(message)]))

    await bus.subscribe("everything", alone, bindings=["#"])
    await bus.subscribe("api", batch, bindings=[BATCH_KEY])
    relay = Relay(outbox, bus, every=0.0)  # a batch after every round
    relaying = asyncio.create_task(relay.run())
    first, then = [make_call_ringing(link=n) for n in range(3)], [make_call_ringing(link=9)]
    outbox.append(first)
    await relay.drained()
    outbox.append(then)
    await relay.drained()
    relaying.cancel()
    ids = [e.event_id for e in first + then]
    assert seen == [
        *(("alone", [i]) for i in ids[:3]),
        ("batch", ids[:3]),
        ("alone", [ids[3]]),
        ("batch", [ids[3]]),
    ]
    assert outbox.unbatched(outbox.sent) == [] and outbox.backlog().events == 0
    outbox.close()


async def test_a_monitor_killed_before_a_batch_went_sends_it_when_it_starts_again(tmp_path: Path) -> None:
    """Events that went alone wait in the file for their batch; a new relay sends the batch at
    once, and does not send the events alone again."""
    bus, alone, batches = InMemoryBus(), Recorder(), Recorder()
    await bus.subscribe("everything", alone, bindings=["#"])
    await bus.subscribe("api", batches, bindings=[BATCH_KEY])
    outbox = Outbox(tmp_path / "outbox.db")
    events = [make_call_ringing(link=n) for n in range(3)]
    outbox.append(events)
    relaying = asyncio.create_task(Relay(outbox, bus, every=3600).run())  # its batch never due
    await alone.wait_for(3)
    relaying.cancel()  # killed: the batch never went
    await asyncio.gather(relaying, return_exceptions=True)
    outbox.close()
    assert not batches.events

    again = Outbox(tmp_path / "outbox.db")
    relay = Relay(again, bus, every=3600)
    relaying = asyncio.create_task(relay.run())
    (batch,) = await batches.wait_for(1)
    await relay.drained()
    relaying.cancel()
    assert each_event(batch) == tuple(events)
    assert [e.event_id for e in alone.events] == [e.event_id for e in events]  # once each
    assert again.unbatched(again.sent) == [] and again.backlog().events == 0
    again.close()


class SlowBus(InMemoryBus):
    """A bus whose broker confirms only once `confirm` is set; `sending` is set at each publish."""

    def __init__(self) -> None:
        super().__init__()
        self.sending, self.confirm = asyncio.Event(), asyncio.Event()

    async def publish(self, event: Event, encoded: bytes | None = None) -> None:
        self.sending.set()
        await super().publish(event, encoded)

    async def flush(self) -> None:
        await self.confirm.wait()


async def test_the_relay_is_not_drained_while_a_batch_waits_for_its_confirm(tmp_path: Path) -> None:
    """An outbox found empty before, then a batch on its way: not drained until it is confirmed
    (a monitor at the end of its scenario stopped with its last events unsent)."""
    bus = SlowBus()
    outbox = Outbox(tmp_path / "outbox.db")
    relay = Relay(outbox, bus)
    relaying = asyncio.create_task(relay.run())
    await relay.drained()  # nothing to send yet
    outbox.append([make_call_ringing()])
    await bus.sending.wait()  # the batch is on its way
    drained = asyncio.create_task(relay.drained())
    for _ in range(10):
        await asyncio.sleep(0)  # the loop turns while the broker has not confirmed
    assert not drained.done()
    bus.confirm.set()
    await drained
    assert outbox.backlog().events == 0
    relaying.cancel()
    outbox.close()


async def test_a_monitor_on_a_full_disk_waits_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(following, "KEEP_RETRY_FIRST", 0.01)
    expected = outcome(await _events_of("outgoing-transfer", tmp_path / "baseline.db"))
    outbox = Outbox(tmp_path / "outbox.db")
    refused = asyncio.Event()
    append = outbox.append
    disk_full = True

    def watched(events: list[Event], changes: Changes) -> None:
        """The outbox's append, on a disk that is full until the test makes room (a real full
        disk: test_a_full_disk_keeps_nothing_and_says_so)."""
        if disk_full:
            outbox.writable = False
            refused.set()
            raise OSError("the monitor's outbox cannot keep events: database or disk is full")
        append(events, changes)

    monkeypatch.setattr(outbox, "append", watched)
    bus = InMemoryBus()
    recorder = Recorder()
    await bus.subscribe("all", recorder, bindings=["#"])
    driver = scenario_driver("outgoing-transfer")
    async with monitor_main.running(Settings(), bus, driver, outbox, source="t") as monitor:
        await refused.wait()  # the first events find the disk full
        assert not outbox.writable
        assert not recorder.events
        disk_full = False
        tracker = await monitor.finished()
    assert outbox.writable
    assert [e.seq for e in recorder.events] == list(range(1, tracker.seq + 1))  # none lost, none twice
    assert outcome(recorder.events) == expected  # as on a disk with room
    outbox.close()


async def _events_of(name: str, path: Path) -> list[Event]:
    bus = InMemoryBus()
    recorder = Recorder()
    await bus.subscribe("all", recorder, bindings=["#"])
    outbox = Outbox(path)
    async with monitor_main.running(Settings(), bus, scenario_driver(name), outbox, source="t") as monitor:
        await monitor.finished()
    outbox.close()
    return list(recorder.events)


def outcome(events: list[Event]) -> tuple[list[str], dict[int, str]]:
    """Every event but the calls' states, and each call's last state: a monitor held back takes
    the updates that waited meanwhile as one burst, and its states go out when they are due."""
    calls = [each for e in events for each in unpacked(e) if isinstance(each, CallState)]
    states = {call.call_number: brief(call, "seq") for call in calls}
    return [brief(e, "seq") for e in events if not isinstance(e, CallsChanged)], states


def brief(event: Event, *also: str) -> str:
    """An event without what differs from run to run (its id, and `also`)."""
    return event.model_dump_json(exclude={"event_id", *also})


class Cut:
    """A driver that stops after `after` updates, as a monitor killed mid-call stops reading."""

    def __init__(self, driver: SimulatorDriver, after: int) -> None:
        self._driver, self._after = driver, after

    async def updates(self) -> AsyncIterator[PbxUpdate]:
        count = 0
        async for update in self._driver.updates():
            if count == self._after:
                return
            count += 1
            yield update

    def __getattr__(self, name: str) -> Any:
        return getattr(self._driver, name)


async def test_a_restarted_monitor_goes_on_with_its_run_and_ends_what_ended_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    bus = InMemoryBus()
    recorder = Recorder()
    await bus.subscribe("all", recorder, bindings=["#"])
    first = Outbox(path)
    killed = Cut(scenario_driver("overlapping-chains"), after=20)  # three chains under way
    async with monitor_main.running(Settings(), bus, killed, first, source="pbx/1") as monitor:  # type: ignore[arg-type]
        await monitor.finished()
    first.close()
    before = list(recorder.events)
    open_chains = {e.chain_id for e in before if isinstance(e, CallEvent)} - {
        e.chain_id for e in before if isinstance(e, CallEnded) and e.chain_ended
    }
    assert open_chains, "the cut should fall while calls are in progress"

    again = Outbox(path)  # the PBX (a simulator begun afresh) has none of those calls any more
    empty = SimulatorDriver(default_directory(), [], VirtualClock(before[-1].occurred_at))
    async with monitor_main.running(Settings(), bus, empty, again, source="pbx/2") as monitor:
        await monitor.finished()
    again.close()
    after = recorder.events[len(before) :]
    assert {e.source for e in after} == {"pbx/1"}  # the same run goes on
    assert [e.seq for e in recorder.events] == list(range(1, len(recorder.events) + 1))  # no gap
    ends = [e for e in after if isinstance(e, CallEnded) and e.chain_ended]
    assert sorted(e.chain_id for e in ends) == sorted(open_chains)  # each ends once, under its id
    assert not [e for e in after if e.type in ("call.started", "call.ringing", "call.answered")]


async def test_a_monitor_of_another_id_begins_afresh_and_still_sends_what_waits(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    first = Outbox(path)
    killed = Cut(scenario_driver("overlapping-chains"), after=20)
    async with monitor_main.running(Settings(), InMemoryBus(), killed, first, source="east/1") as monitor:  # type: ignore[arg-type]
        await monitor.finished()
    waiting = [make_call_ringing(link=n, source="east/1", seq=100 + n) for n in range(3)]
    first.append(waiting)  # sent by nobody yet
    first.close()
    bus, recorder = InMemoryBus(), Recorder()
    await bus.subscribe("all", recorder, bindings=["#"])
    again = Outbox(path)
    empty = SimulatorDriver(default_directory(), [], VirtualClock(waiting[0].occurred_at))
    async with monitor_main.running(Settings(), bus, empty, again, source="west/1") as monitor:
        await monitor.finished()
    assert [e.event_id for e in recorder.events if e.source == "east/1"] == [e.event_id for e in waiting]
    assert {e.source for e in recorder.events} == {"east/1", "west/1"}
    assert not [e for e in recorder.events if isinstance(e, CallEnded)]  # east's calls are not west's
    assert again.saved() is not None and again.saved().calls == []  # type: ignore[union-attr]
    again.close()
