"""`callbridge bus convert-queues`: give every durable queue the type `[bus] queue_type` asks for.

RabbitMQ cannot change a queue's type in place (classic ⇄ quorum): a service that finds its
queues of the other type stops with a message that points here. With every callbridge service
stopped, this moves each existing durable queue's messages, in order, into a holding queue
(`<name>.converting`), deletes the queue, declares it again as the services do (the new type,
its bindings) and moves the messages back. Each message is acked on its way only once the
broker confirmed its copy, so an interruption loses nothing (a message may be copied twice: the
services drop duplicates by their ids); running the command again finishes the job, holding
queues included. A message waiting in a retry queue waits its delay again from the start.
"""

import logging

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractQueue

from shared.rabbit_bus import RabbitBus
from shared.rabbit_failover import FailoverConnection
from shared.settings import ConfigError, Settings
from shared.topology import Topology

from .recordings import main as recordings
from .webhooks import queues as webhooks

logger = logging.getLogger(__name__)
HOLDING = ".converting"


def durable_queues(settings: Settings) -> list[str]:
    names = Topology.of(settings.bus)
    return [names.dead_queue, *webhooks.durable_queues(names, settings), *recordings.durable_queues(names)]


async def convert(settings: Settings) -> dict[str, int]:
    """Convert every durable queue; how many messages each one that existed held."""
    queues = durable_queues(settings)
    # a connection of its own first: RabbitBus declares the dead-letter queue as it connects,
    # which a queue of the other type refuses until it has been set aside
    connection = FailoverConnection(
        settings.bus.urls, client_properties={"connection_name": "convert-queues"}
    )
    await connection.connect()
    async with connection:
        held = {name: await _set_aside(connection, name) for name in queues}
    async with RabbitBus.configured(settings.bus, "convert-queues") as bus:  # declares the dead queue
        await webhooks.declare_durable(bus, settings)
        await recordings.declare_durable(bus)
        for name in queues:
            await _move_back(bus, name)
    return {name: count for name, count in held.items() if count is not None}


async def _set_aside(connection: FailoverConnection, name: str) -> int | None:
    """Move `name`'s messages to its holding queue and delete it; None if there is no such queue."""
    channel = await connection.channel(publisher_confirms=True)  # a passive declare that finds
    try:  # nothing closes its channel
        queue = await channel.declare_queue(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return None
    if queue.declaration_result.consumer_count:
        raise ConfigError(f"queue {name} has consumers: stop every callbridge service first")
    holding = await channel.declare_queue(name + HOLDING, durable=True)
    moved = await _move(channel, queue, holding.name)
    await queue.delete(if_unused=True, if_empty=True)
    await channel.close()
    logger.info("%s: %d message(s) set aside, the queue deleted", name, moved)
    return moved


async def _move_back(bus: RabbitBus, name: str) -> None:
    """Move what waits in `name`'s holding queue back into `name` (declared anew by now)."""
    channel = await bus.open_channel()
    try:
        holding = await channel.declare_queue(name + HOLDING, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return
    moved = await _move(channel, holding, name)
    await holding.delete(if_unused=True, if_empty=True)
    await channel.close()
    logger.info("%s: %d message(s) back in it, a %s queue now", name, moved, bus.names.queue_type)


async def _move(channel: AbstractChannel, source: AbstractQueue, target: str) -> int:
    """Every message of `source`, in order, into the queue `target` (through the default
    exchange); each acked once the broker confirmed its copy."""
    moved = 0
    while (message := await source.get(no_ack=False, fail=False)) is not None:
        copy = aio_pika.Message(
            message.body,
            headers=message.headers,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            type=message.type,
            timestamp=message.timestamp,
        )
        await channel.default_exchange.publish(copy, routing_key=target)
        await message.ack()
        moved += 1
    return moved
