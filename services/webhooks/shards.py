"""The webhooks service's queues on RabbitMQ, which it alone declares:

    [callbridge.events] ──CC shard.<n> (the publishers' rule: shared/topology.py)──┐
    [callbridge.webhooks.shards] (headers; `shard` = n: retries, releases, replays) ──┤
                                                                                  ▼
          callbridge.webhooks.shard.0 … .63   (durable, single active consumer; each replica
                                               consumes the shards it owns: members.py)
      callbridge.webhooks.wait.<delay>s (durable, the queue's TTL) ──expired──▶ the shards exchange
    [callbridge.webhooks.members] (fanout) ──▶ one exclusive queue per replica: heartbeats

Declared at every start of the service; durable, so that they keep a chain's events while the
service is away. On a new installation they exist from the service's first start on: start it
before (or with) the monitor (compose and the units do).
"""

import logging
from collections.abc import Awaitable, Callable

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from shared.topology import SHARDS, Topology, shard_key

logger = logging.getLogger(__name__)
LEGACY_INTAKE = "webhooks"  # where an earlier version took the events in (queues.py adopts it)


def shards_exchange(names: Topology) -> str:
    return names.queue("webhooks.shards")


def shard_queue(names: Topology, shard: int) -> str:
    return names.queue(f"webhooks.shard.{shard}")


def tier_queue(names: Topology, tier: float) -> str:
    return names.queue(f"webhooks.wait.{tier:g}s")


def retired_tier_queue(names: Topology, tier: float) -> str:
    """Earlier versions' retry queues: one per delay of the schedule, with per-message TTLs."""
    return names.queue(f"webhooks.retry.{tier:g}s")


async def declare_shard(channel: AbstractChannel, names: Topology, shard: int) -> AbstractQueue:
    """A shard queue, as every replica declares it (on the channel that consumes it, so that a
    reconnect declares it again before consuming)."""
    return await channel.declare_queue(
        shard_queue(names, shard),
        durable=True,
        arguments=names.durable(
            {"x-single-active-consumer": True, "x-dead-letter-exchange": names.dead_exchange}
        ),
    )


async def declare_shards(channel: AbstractChannel, names: Topology) -> AbstractExchange:
    """The shard queues, bound to the events exchange (`shard.<n>`, in publishers' CC header) and
    to the shards exchange (header `shard` = n: the service's own jobs); the latter returned."""
    jobs = await channel.declare_exchange(shards_exchange(names), aio_pika.ExchangeType.HEADERS, durable=True)
    for shard in range(SHARDS):
        queue = await declare_shard(channel, names, shard)
        await queue.bind(names.events_exchange, routing_key=shard_key(shard))
        await queue.bind(jobs, arguments={"x-match": "all", "shard": str(shard)})
    return jobs


def members_exchange(names: Topology) -> str:
    """Where the replicas' heartbeats go (fanout; `members.py`)."""
    return names.queue("webhooks.members")


async def declare_tiers(channel: AbstractChannel, names: Topology, tiers: tuple[float, ...]) -> None:
    """A retry queue per wait: a job waits there for the queue's TTL, then goes back to its shard."""
    for tier in tiers:
        await channel.declare_queue(
            tier_queue(names, tier),
            durable=True,
            arguments=names.durable(
                {"x-dead-letter-exchange": shards_exchange(names), "x-message-ttl": round(tier * 1000)}
            ),
        )


async def retire_tiers(
    open_channel: Callable[[], Awaitable[AbstractChannel]], names: Topology, schedule: tuple[float, ...]
) -> None:
    """Delete the earlier versions' retry queues once they are empty (what waits in them still
    goes back to its shard when its time comes)."""
    for tier in sorted(set(schedule)):
        name = retired_tier_queue(names, tier)
        probe = await open_channel()  # a passive declare that finds nothing closes its channel
        try:
            queue = await probe.declare_queue(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            continue  # never there, or removed already
        if not queue.declaration_result.message_count:
            await queue.delete(if_unused=False, if_empty=True)
            logger.info("deleted %s, an empty retry queue of an earlier version", name)
        await probe.close()
