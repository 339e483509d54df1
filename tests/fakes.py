"""The tests' own stand-ins, in one place: a handler that records events and lets a test wait for
them, a clock that moves only when the test says, and the monitor followed to the end of a
driver's updates (its composition root, as the services use it)."""

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from services.monitor import main as monitor_main
from services.monitor.driver import Driver
from services.monitor.tracker import CallTracker
from shared.bus import Bus
from shared.events import Message
from shared.settings import Settings


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
    async with monitor_main.running(settings or Settings(), bus, driver, source=source) as monitor:
        return await monitor.finished()
