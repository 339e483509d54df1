"""The work-queue contract (`work_queue.py`) on RabbitMQ: one durable queue of JSON items
(`callbridge.<role>`, dead-lettering to the DLX), consumed by `consumers` consumers of this
process, each taking one item at a time (prefetch 1), so that replicas compete fairly and each
item is handled once. An item is acked after its handler returns; one its handler refuses is
dead-lettered (`rabbit_consumer.py`); one whose consumer dies in hand is delivered again.

`retire()` empties and removes a queue an earlier version used instead."""

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import aiormq
from aio_pika.abc import AbstractChannel
from pydantic import BaseModel

from .rabbit_bus import RabbitBus
from .rabbit_publisher import ConfirmedPublisher, persistent
from .work_queue import InHand

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


@dataclass(frozen=True)
class Shape(Generic[M]):
    """What a work queue carries: its items' model, and each item's message id (the same for
    the same work, so that a duplicate can be told)."""

    model: type[M]
    message_id: Callable[[M], str]


class RabbitWorkQueue(Generic[M]):
    """`await RabbitWorkQueue(...).declare()` before use."""

    def __init__(self, bus: RabbitBus, role: str, shape: Shape[M], consumers: int = 1) -> None:
        self._bus = bus
        self._name = bus.names.queue(role)
        self._arguments = bus.names.durable({"x-dead-letter-exchange": bus.names.dead_exchange})
        self._shape = shape
        self._consumers = consumers
        self._publisher: ConfirmedPublisher = bus.publisher()
        self._channel: AbstractChannel  # opened by declare()
        self._in_hand = InHand()

    async def declare(self) -> "RabbitWorkQueue[M]":
        self._channel = await self._bus.open_channel()
        await self._channel.declare_queue(self._name, durable=True, arguments=self._arguments)
        return self

    async def submit(self, item: M) -> None:
        message = persistent(
            item.model_dump_json().encode(), message_id=self._shape.message_id(item), kind=self._name
        )
        await self._publisher.send(self._channel.default_exchange, self._name, message)

    async def flush(self) -> None:
        await self._publisher.flush()

    async def consume(self, handler: Callable[[M], Awaitable[None]]) -> None:
        async def in_hand(item: M) -> None:
            with self._in_hand:
                await handler(item)

        for _ in range(self._consumers):
            channel = await self._bus.open_channel(prefetch=1)
            # declared (not just looked up), so that the robust channel restores its consumer
            queue = await channel.declare_queue(self._name, durable=True, arguments=self._arguments)
            self._bus.consume(queue, self._shape.model.model_validate_json, in_hand)

    async def drain(self) -> None:
        await self._in_hand.idle()


async def retire(
    bus: RabbitBus,
    name: str,
    decode: Callable[[bytes], T],
    handler: Callable[[T], Awaitable[None]],
    unbind: Sequence[tuple[str, str]] = (),
) -> None:
    """A queue an earlier version used: unbind it (exchange, routing key) so that it takes
    nothing more, hand what it holds to `handler`, and delete it at a start that finds it empty."""
    probe = await bus.open_channel(prefetch=50)
    try:
        old = await probe.declare_queue(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:  # a broker that never had it
        return
    for exchange, routing_key in unbind:
        await old.unbind(exchange, routing_key)
    waiting = old.declaration_result.message_count or 0
    if not waiting:
        await old.delete(if_unused=False, if_empty=True)
        await probe.close()
        logger.info("deleted %s, an empty queue of an earlier version", name)
        return
    logger.warning(
        "%s, a queue of an earlier version, holds %d message(s): handling them; it is deleted at a "
        "later start, once empty",
        name,
        waiting,
    )
    bus.consume(old, decode, handler)
