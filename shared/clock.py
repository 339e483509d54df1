"""Time, injected: the system clock in production, a virtual one for scenarios and tests.

No service reads the time or sleeps for domain timing except through a `Clock`.
"""

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """An aware datetime."""
        ...

    async def sleep_until(self, when: datetime) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        delay = (when - self.now()).total_seconds()
        await asyncio.sleep(max(delay, 0.0))


class VirtualClock:
    """Jumps straight to whatever time it is asked to wait for: scenarios run as fast as they can."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("VirtualClock needs an aware start time")
        self._now = start

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        self._now = max(self._now, when)
        await asyncio.sleep(0)


class ScaledClock:
    """Real time from `origin`, running `speed` times faster: a scenario played live (speed 1)
    or compressed (a 95 s scenario in a second at speed 100), keeping its own dates."""

    def __init__(self, origin: datetime, speed: float = 1.0) -> None:
        if origin.tzinfo is None or speed <= 0:
            raise ValueError("ScaledClock needs an aware origin and a positive speed")
        self._origin, self._speed, self._started = origin, speed, time.monotonic()

    def now(self) -> datetime:
        return self._origin + timedelta(seconds=(time.monotonic() - self._started) * self._speed)

    async def sleep_until(self, when: datetime) -> None:
        await asyncio.sleep(max((when - self.now()).total_seconds() / self._speed, 0.0))


SETTLE_TURNS = 10  # loop turns the world must stay settled: a woken sleeper's next step takes ~3


class LockstepClock:
    """Virtual time shared by two parties that talk over real I/O (a fake PBX and the driver that
    watches it): it moves only once `settled()` has held for `SETTLE_TURNS` turns of the event loop,
    then jumps to the earliest sleeper's time and wakes it. So whatever one party does at a moment,
    the other sees at that same moment, however slow the I/O between them: a playback gives the
    same result at any machine load. With `speed`, time also goes no faster than `speed` times real
    time. `run()` is the task that moves it; until it runs, sleepers wait."""

    def __init__(
        self, start: datetime, settled: Callable[[], bool] = lambda: True, *, speed: float | None = None
    ) -> None:
        if start.tzinfo is None or (speed is not None and speed <= 0):
            raise ValueError("LockstepClock needs an aware start time and a positive speed, if any")
        self._origin = self._now = start
        self._settled, self._speed = settled, speed
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._asleep = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        if when <= self._now:
            await asyncio.sleep(0)
            return
        woken = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (when, next(self._order), woken))
        self._asleep.set()
        await woken

    async def run(self) -> None:
        started = time.monotonic()
        while True:
            await self._settle()
            while self._sleepers and self._sleepers[0][2].done():  # cancelled: it no longer waits
                heapq.heappop(self._sleepers)
            if not self._sleepers:
                self._asleep.clear()
                await self._asleep.wait()
                continue
            when = self._sleepers[0][0]
            if self._speed is not None:
                early = started + (when - self._origin).total_seconds() / self._speed - time.monotonic()
                if early > 0:
                    await asyncio.sleep(early)
                    continue  # an earlier sleeper may have come meanwhile
            self._now = max(self._now, when)
            while self._sleepers and self._sleepers[0][0] <= self._now:
                woken = heapq.heappop(self._sleepers)[2]
                if not woken.done():
                    woken.set_result(None)

    async def _settle(self) -> None:
        calm = 0
        while calm < SETTLE_TURNS:
            if self._settled():
                calm += 1
                await asyncio.sleep(0)
            else:
                calm = 0
                await asyncio.sleep(0.0005)  # I/O under way between the parties
