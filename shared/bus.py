"""The only bus API services see: publish events in order, subscribe handlers to queues.

Two implementations pass one contract suite (tests/integration/test_bus_contract.py):
`shared.rabbit_bus.RabbitBus` (production) and `shared.memory_bus.InMemoryBus` (the one-process
demo, the scenario runner and unit tests).

Requests and answers (RPC: the API asking the monitor for a snapshot or to carry out a command)
are JSON objects; a request is not persistent, since a command carried out minutes late, after a
broker restart, would surprise whoever asked for it.

Errors:
    BusError
    ├── PublishError      the broker did not confirm one or more published messages
    └── RpcUnavailable    nobody serves the method, or no answer came in time
"""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .event_base import Event
from .events import Message

Handler = Callable[[Message], Awaitable[None]]
RpcHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class BusError(Exception):
    pass


class PublishError(BusError):
    pass


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
    async def publish(self, event: Event) -> None:
        """Send `event` with its `type` as routing key. Messages leave in call order; this may
        return before the broker confirmed the message: `flush()` waits for that."""
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
