"""The only bus API services see: publish events in order, subscribe handlers to queues.

Two implementations pass one contract suite (tests/integration/test_bus_contract.py):
`shared.rabbit_bus.RabbitBus` (production) and `shared.memory_bus.InMemoryBus` (the one-process
demo, the scenario runner and unit tests).

Requests and answers (RPC: the API asking the monitor for a snapshot or to carry out a command)
are JSON objects; a request is not persistent, since a command carried out minutes late, after a
broker restart, would surprise whoever asked for it.

Errors:
    BusError
    ├── PublishError      the broker did not confirm one or more published messages (Transient)
    └── RpcUnavailable    nobody serves the method, or no answer came in time
    Transient             a handler's failure that may pass: its message is handled again later,
                          not dead-lettered (also a full disk, a locked database: `transient()`)
"""

import asyncio
import errno
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .event_base import Event
from .events import Message

logger = logging.getLogger(__name__)
Handler = Callable[[Message], Awaitable[None]]
RpcHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class BusError(Exception):
    pass


class Transient(Exception):
    pass


class PublishError(BusError, Transient):
    pass


PASSING = {errno.ENOSPC, errno.EDQUOT, errno.EAGAIN, errno.EIO}


def transient(error: BaseException) -> bool:
    """Whether a handler that failed so may well succeed with the same message later."""
    if isinstance(error, sqlite3.OperationalError):  # locked or busy (another replica), disk full
        return True
    return isinstance(error, Transient) or (isinstance(error, OSError) and error.errno in PASSING)


RETRY_FIRST, RETRY_MAX = 0.5, 30.0  # seconds before a handler that failed in passing runs again


async def patiently(
    handle: Callable[[], Awaitable[None]],
    what: str,
    *,
    held: Callable[[], bool] = lambda: True,
    retried: Callable[[], None] = lambda: None,
) -> bool:
    """Run `handle` (a consumer's handler on one message); while it fails in passing
    (`transient`) and the message is still `held()`, pause (growing to RETRY_MAX) and run it
    again, so that a queue's order holds and nothing is set aside for a passing fault. True once
    handled, False when let go (no longer held: it comes again); any other error is raised."""
    delay = RETRY_FIRST
    while True:
        try:
            await handle()
            return True
        except Exception as error:
            if not transient(error):
                raise
            reason = str(error).splitlines()[0] if str(error) else repr(error)
            if not held():
                logger.warning("%s not handled (%s); it comes again", what, reason)
                return False
            logger.warning("%s not handled yet (%s); trying again in %g s", what, reason, delay)
            retried()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)


class RpcUnavailable(BusError):
    pass


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message no consumer could parse or handle, kept for inspection and replay."""

    routing_key: str
    body: bytes
    queue: str
    reason: str


class Bus(Protocol):
    async def publish(self, event: Event, encoded: bytes | None = None) -> None:
        """Send `event` with its `type` as routing key. Messages leave in call order; this may
        return before the broker confirmed the message: `flush()` waits for that. `encoded`: the
        event as `encode_event` made it already (the monitor's outbox keeps it so), sent as it is."""
        ...

    async def publish_raw(self, routing_key: str, body: bytes) -> None:
        """Send a body as it is (replaying a dead letter); same ordering as `publish`."""
        ...

    async def flush(self) -> None:
        """Wait until everything published so far is confirmed; raise PublishError if not."""
        ...

    async def subscribe(
        self,
        queue: str,
        handler: Handler,
        *,
        bindings: Sequence[str],
        exclusive: bool = False,
        single_active: bool = False,
    ) -> str:
        """Consume `queue` (a service's role name) bound with topic `bindings`; return its full
        name. Handlers on one queue compete; every queue gets its own copy. `exclusive` makes a
        private queue for this process that disappears with it (the api's cache); `single_active`
        lets one consumer at a time take from it (the others stand by: the recordings ledger's
        one keeper). A message that cannot be parsed, or whose handler raises, is dead-lettered."""
        ...

    async def take_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Remove and return up to `limit` dead letters, oldest first."""
        ...

    async def serve(self, method: str, handler: RpcHandler) -> None:
        """Answer calls of `method` with `handler` (one server per method: the monitor); a second
        `serve` of the same method on this bus replaces the first."""
        ...

    async def call(self, method: str, payload: dict[str, Any], answer_within: float) -> dict[str, Any]:
        """Call `method` and return its answer; RpcUnavailable when nobody serves it, the server
        failed, or no answer came within `answer_within` seconds."""
        ...
