"""One contract for work that waits its turn (the webhooks' delivery jobs, the recordings'
conversions), with a RabbitMQ implementation (`rabbit_work_queue.py`, and the webhooks' sharded
job queue) and this in-memory one; `tests/integration/test_work_queues.py` runs every
implementation through the same contract suite.

- `submit(item)` queues an item; it is durable (on RabbitMQ: confirmed by the broker) once
  `flush()` returns. Items submitted before anyone consumes wait for a consumer.
- `consume(handler)` starts handing items to `handler`: each item once, to one consumer; with one
  consumer, in the order submitted. An item whose handler raises is set aside (RabbitMQ: dead-
  lettered), logged, and the next one follows; one whose handler fails in passing (the broker
  away, a full disk: `shared.bus.transient`) is handed to it again, before the next.
- `drain()` returns once this process has nothing in hand: no handler running, and (in memory,
  where every item lives in this process) nothing queued. What waits in a broker stays there.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Generic, Protocol, TypeVar

from .bus import patiently

logger = logging.getLogger(__name__)
T = TypeVar("T")


class WorkQueue(Protocol[T]):
    async def submit(self, item: T) -> None: ...

    async def flush(self) -> None: ...

    async def consume(self, handler: Callable[[T], Awaitable[None]]) -> None: ...

    async def drain(self) -> None: ...


class MemoryWorkQueue(Generic[T]):
    """Items in this process (the demo, scenario runs, unit tests), handled by `consumers`
    workers; `close()` stops them. `set_aside` counts the items whose handler raised."""

    def __init__(self, name: str, consumers: int = 1) -> None:
        self.name = name
        self._consumers = consumers
        self._items: asyncio.Queue[T] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self.set_aside = 0

    async def submit(self, item: T) -> None:
        self._items.put_nowait(item)

    async def flush(self) -> None:
        return None  # nothing to wait for: the items are in this process

    async def consume(self, handler: Callable[[T], Awaitable[None]]) -> None:
        self._workers += [
            asyncio.create_task(self._work(handler), name=f"{self.name} {n}") for n in range(self._consumers)
        ]

    async def drain(self) -> None:
        await self._items.join()

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    async def _work(self, handler: Callable[[T], Awaitable[None]]) -> None:
        while True:
            item = await self._items.get()
            try:
                await patiently(partial(handler, item), f"{self.name}: {item!r:.200}")
            except Exception:
                self.set_aside += 1
                logger.exception("%s: handler failed on %.200r; set aside", self.name, item)
            finally:
                self._items.task_done()


class InHand:
    """How many items this process's handlers hold (`with in_hand: ...`); `idle()` waits for none."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __enter__(self) -> None:
        self._count += 1
        self._idle.clear()

    def __exit__(self, *exc: object) -> None:
        self._count -= 1
        if not self._count:
            self._idle.set()

    async def idle(self) -> None:
        await self._idle.wait()
