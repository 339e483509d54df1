"""Where delivery jobs wait: RabbitMQ in production (its queues: `shards.py`), memory in
one-process runs.

A shard queue holds the events of its chains, as published (each becomes one job per endpoint
that wants it, handled in order), and job batches the service sent itself. The replicas share
the shards: each consumes those it owns among the live replicas (`members.py`), and RabbitMQ's
single active consumer makes sure that only one consumer has a shard's messages at a time. A
message is acked only after its jobs were handled, i.e. delivered, held in the store, scheduled
for retry (confirmed by the broker) or dead-lettered. No process sleeps on an unacked message
and no timer lives in memory.
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from pydantic import ValidationError

from shared.bus import Bus
from shared.clock import Clock
from shared.events import Message, encode_event, parse_event
from shared.rabbit_bus import RabbitBus
from shared.rabbit_consumer import consume, holding, watch_waiting
from shared.rabbit_publisher import ConfirmedPublisher, persistent
from shared.rabbit_work_queue import retire
from shared.settings import EndpointSettings, Settings
from shared.topology import SHARDS, WEBHOOKS_BINDINGS, Topology
from shared.work_queue import InHand, MemoryWorkQueue

from .jobs import Intake, Job, JobBatch, jobs_for
from .lanes import Lanes
from .members import Heartbeats, Members, OwnedShards, replica_id
from .policy import RetryPolicy
from .shards import (
    LEGACY_INTAKE,
    declare_shard,
    declare_shards,
    declare_tiers,
    retire_tiers,
    shard_queue,
    tier_queue,
)

PREFETCH = 50  # shard messages in flight per consumer channel


class RabbitJobQueue:
    """The job queue on RabbitMQ: `await RabbitJobQueue(...).declare()` before use."""

    def __init__(
        self, bus: RabbitBus, policy: RetryPolicy, endpoints: Mapping[str, EndpointSettings]
    ) -> None:
        self._bus = bus
        self._names = bus.names
        self._policy = policy
        self._endpoints = endpoints
        self._publisher: ConfirmedPublisher = bus.publisher()
        self._pending: dict[int, list[Job]] = {}
        self._in_hand = InHand()
        self.members = Members(replica_id())
        self._heartbeats = Heartbeats(bus, self.members)
        self._shards: OwnedShards | None = None
        self._following: list[asyncio.Task[None]] = []  # the owners followed, the heartbeats sent
        self._channel: AbstractChannel  # these two: set by declare()
        self._shards_exchange: AbstractExchange

    async def declare(self) -> "RabbitJobQueue":
        self._channel = await self._bus.open_channel()
        self._shards_exchange = await declare_shards(self._channel, self._names)
        await declare_tiers(self._channel, self._names, self._policy.tiers)
        await retire_tiers(self._bus.open_channel, self._names, self._policy.schedule)
        return self

    @property
    def owned(self) -> frozenset[int]:
        """The shards this replica consumes now."""
        return self._shards.owned if self._shards else frozenset()

    def replicas(self) -> int:
        """How many webhooks replicas are alive, as this one hears."""
        return len(self._heartbeats.alive())

    async def close(self) -> None:
        """Let go of this replica's shards (their other replicas take them over), then leave."""
        for task in self._following:
            task.cancel()
        await asyncio.gather(*self._following, return_exceptions=True)
        if self._shards is not None:
            await self._shards.close()
        await self._heartbeats.leave()

    async def consume(self, handler: Callable[[Job], Awaitable[None]]) -> None:
        """Hand `handler` the jobs of the shards this replica owns: each event's (one per endpoint
        that wants it) and the batches this service sent itself; each ordering key's in order, the
        keys side by side (`lanes.py`), a shard's messages acked as their jobs are done."""
        lanes = Lanes(handler)

        async def in_hand(message: Message | JobBatch) -> None:
            with self._in_hand:
                if isinstance(message, JobBatch):
                    jobs: Iterable[Job] = message.jobs
                else:
                    jobs = jobs_for(message, encode_event(message).decode(), self._endpoints)
                held = holding()
                done = [lanes.put(job, held) for job in jobs]  # at once, in order: no await before
                for failure in await asyncio.gather(*done, return_exceptions=True):
                    if isinstance(failure, BaseException):
                        raise failure

        async def open_shard(shard: int) -> tuple[AbstractChannel, AbstractQueue]:
            # a channel per shard, the queue declared on it: a reconnect restores both, and
            # closing it hands the shard over (members.py)
            channel = await self._bus.open_channel(prefetch=PREFETCH)
            return channel, await declare_shard(channel, self._names, shard)

        async def consume_shard(queue: AbstractQueue, until: asyncio.Event) -> None:
            await consume(queue, shard_message, in_hand, side_by_side=True, until=until)

        self._shards = OwnedShards(open_shard, consume_shard, watch_waiting)
        await self._heartbeats.start()
        # alone until the others are heard: a shard another replica holds waits behind its
        # consumer (single active consumer) and is let go at the next look
        await self._shards.take(self._heartbeats.mine())
        self._following = [
            asyncio.create_task(self._shards.follow(self._heartbeats), name="shard owners"),
            asyncio.create_task(self._heartbeats.run(), name="webhooks heartbeats"),
        ]
        # before the events went straight to the shards they waited in one intake queue
        unbind = [(self._names.events_exchange, pattern) for pattern in WEBHOOKS_BINDINGS]
        intake = Intake(self._endpoints, handler)
        await retire(self._bus, self._names.queue(LEGACY_INTAKE), parse_event, intake, unbind)

    async def drain(self) -> None:
        await self._in_hand.idle()

    async def submit(self, job: Job) -> None:
        """Collect `job` for its shard; `flush` sends each shard's jobs as one message, in order."""
        self._pending.setdefault(self._names.shard_of(job.chain), []).append(job)

    async def retry(self, job: Job, delay: float) -> None:
        """Into the retry queue of the shortest wait not shorter than `delay`."""
        message = self._message(self._names.shard_of(job.chain), [job])
        queue = tier_queue(self._names, self._policy.tier(delay))
        await self._publisher.send(self._channel.default_exchange, queue, message)
        await self._publisher.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for shard, jobs in pending.items():
            await self._publisher.send(self._shards_exchange, "", self._message(shard, jobs))
        await self._publisher.flush()

    @staticmethod
    def _message(shard: int, jobs: list[Job], **properties: Any) -> aio_pika.Message:
        first = jobs[0]
        return persistent(
            JobBatch(jobs=tuple(jobs)).model_dump_json().encode(),
            message_id=f"{first.job_id}/{first.attempt}+{len(jobs) - 1}",
            kind="webhooks.jobs",
            headers={"shard": str(shard)},
            **properties,
        )


def durable_queues(names: Topology, settings: Settings) -> list[str]:
    """The service's durable queues: the shards and the retry queues of its schedule."""
    tiers = RetryPolicy.configured(settings.webhooks).tiers
    return [*(shard_queue(names, shard) for shard in range(SHARDS)), *(tier_queue(names, t) for t in tiers)]


async def declare_durable(bus: RabbitBus, settings: Settings) -> None:
    """Declare `durable_queues` (and their bindings) as the service does at start."""
    await RabbitJobQueue(bus, RetryPolicy.configured(settings.webhooks), settings.endpoints).declare()


def shard_message(body: bytes) -> Message | JobBatch:
    """A shard queue's message: an event as published, or a batch of the service's own jobs.
    Raises ValidationError for anything else (the message is dead-lettered)."""
    try:
        return parse_event(body)
    except ValidationError:
        return JobBatch.model_validate_json(body)


class MemoryJobQueue:
    """The same contract in one process (scenario runs, the demo): the events come off the bus,
    one worker keeps the order, retries wait on the clock. `drain()` returns once nothing is
    queued or waiting; `close()` stops the worker."""

    def __init__(self, bus: Bus, clock: Clock, endpoints: Mapping[str, EndpointSettings]) -> None:
        self._bus = bus
        self._clock = clock
        self._endpoints = endpoints
        self._jobs: MemoryWorkQueue[Job] = MemoryWorkQueue("webhooks jobs")
        self._timers: set[asyncio.Task[None]] = set()

    async def consume(self, handler: Callable[[Job], Awaitable[None]]) -> None:
        intake = Intake(self._endpoints, self.submit)
        await self._bus.subscribe("webhooks", intake, bindings=WEBHOOKS_BINDINGS)
        await self._jobs.consume(handler)

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        await self._jobs.close()

    @property
    def set_aside(self) -> int:
        return self._jobs.set_aside

    async def submit(self, job: Job) -> None:
        await self._jobs.submit(job)

    async def retry(self, job: Job, delay: float) -> None:
        due = self._clock.now() + timedelta(seconds=delay)
        timer = asyncio.create_task(self._later(job, due))
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)

    async def _later(self, job: Job, due: datetime) -> None:
        await self._clock.sleep_until(due)
        await self.submit(job)

    async def flush(self) -> None:
        return None  # nothing to wait for: the jobs are in this process's queue

    async def drain(self) -> None:
        while True:
            await self._jobs.drain()
            if not self._timers:
                return
            await asyncio.wait(set(self._timers))
