"""The driver's updates taken a burst at a time: whatever it has reported by the time the monitor
is ready for more (at most `most`), so that the outbox keeps a burst in one transaction. The
updates wait in a bounded queue: a monitor that falls behind stops reading the driver. The simulator
then waits; the 3CX driver cannot slow the PBX, and what it reads meanwhile waits in its own
queue (README, "Running the monitor")."""

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
MOST = 500  # updates in one burst, and waiting to be taken


@dataclass(frozen=True, slots=True)
class _End:
    error: Exception | None


async def bursts(
    updates: AsyncIterator[T], most: int = MOST, patience: Callable[[], float | None] = lambda: None
) -> AsyncIterator[list[T]]:
    """`updates` in order, in lists of what was there to take; ends when they do, raises what
    they raise. An empty list when `patience()` seconds (None: for ever) pass without one."""
    waiting: asyncio.Queue[T | _End] = asyncio.Queue(most)
    reader = asyncio.create_task(_read(updates, waiting), name="driver updates")
    try:
        while True:
            try:  # not asyncio.wait_for: on Python 3.11 it drops a cancellation that comes as
                # the burst does, and the monitor's loop would go on for ever
                async with asyncio.timeout(patience()):
                    burst, end = await _take(waiting, most)
            except TimeoutError:
                burst, end = [], None
            if burst or end is None:
                yield burst
            if end is not None:
                if end.error is not None:
                    raise end.error
                return
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def _read(updates: AsyncIterator[T], waiting: "asyncio.Queue[T | _End]") -> None:
    try:
        async for update in updates:
            await waiting.put(update)
    except Exception as error:  # the driver failed: the monitor sees it after the updates before
        await waiting.put(_End(error))
    else:
        await waiting.put(_End(None))


async def _take(waiting: "asyncio.Queue[T | _End]", most: int) -> tuple[list[T], _End | None]:
    """What waits (at least one: waited for), up to `most` updates or the end."""
    item = await waiting.get()
    burst: list[T] = []
    while not isinstance(item, _End):
        burst.append(item)
        if len(burst) >= most or waiting.empty():
            return burst, None
        item = waiting.get_nowait()
    return burst, item
