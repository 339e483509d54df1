"""The tests' own stand-ins, in one place: a handler that records events and lets a test wait for
them, a clock that moves only when the test says, the monitor followed to the end of a driver's
updates (its composition root, as the services use it), and scenario steps played purely through
the simulator and the tracker."""

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from services.monitor import main as monitor_main
from services.monitor.driver import Driver
from services.monitor.outbox import Outbox
from services.monitor.tracker import CallTracker
from shared.bus import Bus
from shared.event_base import Event
from shared.events import CallEvent, Message, unpacked
from shared.settings import Settings
from simulation.scenario import default_directory, parse_scenario
from simulation.simulator import PbxSimulator


class Recorder:
    """A bus handler that remembers events; `wait_for(n)` returns once n have arrived."""

    def __init__(self) -> None:
        self.events: list[Message] = []
        self._arrived = asyncio.Condition()

    async def __call__(self, event: Message) -> None:
        async with self._arrived:
            self.events.append(event)
            self._arrived.notify_all()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Message]:
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.events) >= count)
        return self.events

    async def first(self, wanted: Callable[[Message], bool], timeout: float = 10.0) -> Message:
        """The first event (arrived already, or yet to come) that `wanted` accepts."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: any(map(wanted, self.events)))
        return next(e for e in self.events if wanted(e))


class ManualClock:
    """Time moves only when the test says so; sleepers wake when their time has come."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._moved = asyncio.Condition()

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        async with self._moved:
            await self._moved.wait_for(lambda: self._now >= when)

    async def advance(self, seconds: float) -> None:
        async with self._moved:
            self._now += timedelta(seconds=seconds)
            self._moved.notify_all()


async def follow(
    driver: Driver, bus: Bus, *, source: str = "test", settings: Settings | None = None
) -> CallTracker:
    """The monitor on `bus` until `driver` runs dry; its tracker."""
    outbox = Outbox(Path(":memory:"))
    try:
        async with monitor_main.running(
            settings or Settings(), bus, driver, outbox, source=source
        ) as monitor:
            return await monitor.finished()
    finally:
        outbox.close()


UTC = ZoneInfo("UTC")


def play(
    steps: str,
    *,
    start: str = "2024-03-01T09:00:00",
    zone: ZoneInfo = UTC,
    first: int = 1,
    bursts: bool = False,
    gathered: bool = False,
) -> list[Event]:
    """The events the steps make, their updates given to the tracker one by one, or each step's
    at once (`bursts`); the calls' states published after each (or with `gathered`, once at the
    end: as a monitor gathers what comes within `states_every`), as a listener sees them (one by
    one, not in their `pbx.calls` messages)."""
    document = {"start": start, "first_call_number": first, "steps": yaml.safe_load(steps)}
    scenario = parse_scenario(document, base=Path("."))
    simulator = PbxSimulator(scenario.directory, first_call_number=first)
    tracker = CallTracker(default_directory(), zone=zone, source="test")
    begin = datetime.fromisoformat(start).replace(tzinfo=zone)
    events: list[Event] = []
    for step in scenario.steps:
        updates = list(simulator.apply(step, begin + timedelta(seconds=step.t)))
        made = []
        if bursts or gathered:
            made += tracker.apply_burst(updates) + ([] if gathered else tracker.publish_states())
        else:
            for update in updates:
                made += tracker.apply(update)
        events += [each for event in made for each in unpacked(event)]
    return events + [each for event in tracker.publish_states() for each in unpacked(event)]


def calls(events: list[Event]) -> list[CallEvent]:
    return [e for e in events if isinstance(e, CallEvent) and e.type != "call.started"]


def brief(events: list[Event]) -> list[tuple[object, ...]]:
    """(type, classic id, extension, detail) of each ringing/answered/ended event."""
    out: list[tuple[object, ...]] = []
    for e in calls(events):
        detail = {"call.ringing": "user_type", "call.answered": "transfer_type"}.get(e.type)
        if detail:
            out.append((e.type[5:], e.call_id, e.extension, getattr(e, detail)))
        else:
            ok = "Ok" if e.answered else "Missed"
            out.append(
                (
                    "ended",
                    e.call_id,
                    e.extension,
                    ok,
                    e.transferred,
                    round(e.duration, 1),
                )
            )
    return out
