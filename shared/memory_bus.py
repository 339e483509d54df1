"""InMemoryBus: the bus in one process, with RabbitMQ's routing semantics.

Every event is round-tripped through `encode_event`/`parse_event`, so what a handler sees is
what it would see from RabbitMQ. Delivery is synchronous and in publish order: `publish` returns
once every subscribed handler has run. By default a handler's exception propagates to the
publisher, so a bug fails a test at the line that caused it; `raise_errors=False` dead-letters
instead, as RabbitBus does.
"""

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from pydantic import ValidationError

from .bus import DeadLetter, Handler, RpcHandler, RpcUnavailable
from .event_base import Event
from .events import encode_event, parse_event
from .routing import delivered

logger = logging.getLogger(__name__)


@dataclass
class _Queue:
    name: str
    bindings: set[str] = field(default_factory=set)
    handlers: list[Handler] = field(default_factory=list)
    turn: int = 0

    def next_handler(self) -> Handler:
        handler = self.handlers[self.turn % len(self.handlers)]
        self.turn += 1
        return handler


class InMemoryBus:
    def __init__(self, *, raise_errors: bool = True) -> None:
        self.published: list[Event] = []
        self._raise_errors = raise_errors
        self._queues: dict[str, _Queue] = {}
        self._dead: list[DeadLetter] = []
        self._exclusive = count(1)
        self._servers: dict[str, RpcHandler] = {}

    async def publish(self, event: Event, encoded: bytes | None = None) -> None:
        self.published.append(event)
        await self._route(event.type, encode_event(event) if encoded is None else encoded)

    async def publish_raw(self, routing_key: str, body: bytes) -> None:
        await self._route(routing_key, body)

    async def flush(self) -> None:
        return None

    async def subscribe(
        self,
        queue: str,
        handler: Handler,
        *,
        bindings: Sequence[str],
        exclusive: bool = False,
        single_active: bool = False,  # one process: there is one consumer anyway
    ) -> str:
        name = f"{queue}.{next(self._exclusive)}" if exclusive else queue
        target = self._queues.setdefault(name, _Queue(name))
        target.bindings.update(bindings)
        target.handlers.append(handler)
        return name

    async def serve(self, method: str, handler: RpcHandler) -> None:
        self._servers[method] = handler

    async def call(self, method: str, payload: dict[str, Any], answer_within: float) -> dict[str, Any]:
        handler = self._servers.get(method)
        if handler is None:
            raise RpcUnavailable(f"nobody serves {method}")
        try:
            async with asyncio.timeout(answer_within):
                answer = await handler(json.loads(json.dumps(payload)))  # as if it went over the wire
        except TimeoutError:
            raise RpcUnavailable(f"{method}: no answer within {answer_within:g} s") from None
        except Exception as error:
            logger.exception("rpc %s failed", method)
            raise RpcUnavailable(f"{method} failed: {type(error).__name__}") from None
        return dict(json.loads(json.dumps(answer)))

    async def take_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        taken, self._dead = self._dead[:limit], self._dead[limit:]
        return taken

    async def _route(self, routing_key: str, body: bytes) -> None:
        for queue in list(self._queues.values()):
            if queue.handlers and any(delivered(b, routing_key) for b in queue.bindings):
                await self._deliver(queue, routing_key, body)

    async def _deliver(self, queue: _Queue, routing_key: str, body: bytes) -> None:
        try:
            message = parse_event(body)
        except ValidationError as error:
            logger.error("queue %s: unparsable %s message dead-lettered: %s", queue.name, routing_key, error)
            self._dead.append(DeadLetter(routing_key, body, queue.name, f"unparsable: {error}"))
            return
        try:
            await queue.next_handler()(message)
        except Exception as error:
            if self._raise_errors:
                raise
            logger.exception("queue %s: handler failed on %s %s", queue.name, message.type, message.event_id)
            self._dead.append(DeadLetter(routing_key, body, queue.name, f"handler failed: {error!r}"))
