"""Time, injected: the system clock in production, a virtual one for scenarios and tests.

No service reads the time or sleeps for domain timing except through a `Clock`.
"""

import asyncio
import time
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
