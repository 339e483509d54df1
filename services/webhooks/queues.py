"""Where delivery jobs wait: RabbitMQ in production (its queues: `shards.py`), memory in
one-process runs.

A shard queue holds the events of its chains, as published (each becomes one job per endpoint
that wants it, handled in order), and job batches the service sent itself. Each shard has one
active consumer across all replicas (RabbitMQ's single-active-consumer); the others stand by
and take over when it goes. A message is acked only after its jobs were handled, i.e. delivered,
held in the store, scheduled for retry (confirmed by the broker) or dead-lettered. No process
sleeps on an unacked message and no timer lives in memory.
"""

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from pydantic import ValidationError

from shared.bus import Bus
from shared.clock import Clock
from shared.events import Message, parse_event
from shared.rabbit_bus import RabbitBus
from shared.rabbit_publisher import ConfirmedPublisher, persistent
from shared.settings import EndpointSettings
from shared.topology import WEBHOOKS_BINDINGS, Topology

from .dispatcher import Dispatcher
from .jobs import Intake, Job, JobBatch
from .policy import RetryPolicy
from .shards import LEGACY_INTAKE, declare_shards, declare_tiers, tier_queue

logger = logging.getLogger(__name__)


class RabbitJobQueue:
    def __init__(
        self,
        bus: RabbitBus,
        channel: AbstractChannel,
        shards_exchange: AbstractExchange,
        shard_queues: list[AbstractQueue],
        names: Topology,
        policy: RetryPolicy,
    ) -> None:
        self._bus = bus
        self._policy = policy
        self._channel = channel
        self._shards_exchange = shards_exchange
        self._shard_queues = shard_queues
        self._names = names
        self._publisher: ConfirmedPublisher = bus.publisher()
        self._pending: dict[int, list[Job]] = {}

    @classmethod
    async def declare(
        cls, bus: RabbitBus, names: Topology, policy: RetryPolicy, prefetch: int = 50
    ) -> "RabbitJobQueue":
        channel = await bus.open_channel(prefetch=prefetch)
        # declared on this channel (not just looked up), so that it restores their consumers
        shard_queues, exchange = await declare_shards(channel, names)
        await declare_tiers(channel, names, policy.tiers)
        return cls(bus, channel, exchange, shard_queues, names, policy)

    async def consume(self, dispatcher: Dispatcher, endpoints: Mapping[str, EndpointSettings]) -> None:
        """Handle every shard's events (each turned into its jobs) and job batches (the service's
        own jobs), in order, through `dispatcher`."""
        intake = Intake(endpoints, dispatcher.handle)

        async def handle(message: Message | JobBatch) -> None:
            if isinstance(message, JobBatch):
                for job in message.jobs:
                    await dispatcher.handle(job)
            else:
                await intake(message)

        for queue in self._shard_queues:
            self._bus.consume(queue, shard_message, handle)
        await self._adopt_legacy_intake(intake)

    async def _adopt_legacy_intake(self, intake: Intake) -> None:
        """Before the events went straight to the shards they waited in one intake queue: unbind
        it, so that it takes nothing more; deliver what it holds; delete it once it is empty."""
        name = self._names.queue(LEGACY_INTAKE)
        probe = await self._bus.open_channel(prefetch=50)
        try:
            legacy = await probe.declare_queue(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:  # a broker that never had it
            return
        for pattern in WEBHOOKS_BINDINGS:
            await legacy.unbind(self._names.events_exchange, pattern)
        waiting = legacy.declaration_result.message_count or 0
        if not waiting:
            await legacy.delete(if_unused=False, if_empty=True)
            await probe.close()
            logger.info("deleted %s, the empty intake queue of an earlier version", name)
            return
        logger.warning(
            "%s, the intake queue of an earlier version, holds %d event(s): delivering them; "
            "it is deleted at a later start, once empty",
            name,
            waiting,
        )
        self._bus.consume(legacy, parse_event, intake)

    async def submit(self, job: Job) -> None:
        """Collect `job` for its shard; `flush` sends each shard's jobs as one message, in order."""
        self._pending.setdefault(self._names.shard_of(job.chain), []).append(job)

    async def retry(self, job: Job, delay: float) -> None:
        tier = self._policy.tier(delay)
        message = self._message(self._names.shard_of(job.chain), [job], expiration=timedelta(seconds=delay))
        await self._publisher.send(self._channel.default_exchange, tier_queue(self._names, tier), message)
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

    def __init__(self, bus: Bus, clock: Clock) -> None:
        self._bus = bus
        self._clock = clock
        self._jobs: asyncio.Queue[Job] = asyncio.Queue()
        self._timers: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None

    async def consume(self, dispatcher: Dispatcher, endpoints: Mapping[str, EndpointSettings]) -> None:
        await self._bus.subscribe("webhooks", Intake(endpoints, self.submit), bindings=WEBHOOKS_BINDINGS)
        self._worker = asyncio.create_task(self._run(dispatcher), name="webhooks jobs")

    async def close(self) -> None:
        for task in [self._worker, *self._timers]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in [self._worker, *self._timers] if t), return_exceptions=True)

    async def submit(self, job: Job) -> None:
        self._jobs.put_nowait(job)

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

    async def _run(self, dispatcher: Dispatcher) -> None:
        while True:
            job = await self._jobs.get()
            try:
                await dispatcher.handle(job)
            finally:
                self._jobs.task_done()

    async def drain(self) -> None:
        while True:
            await self._jobs.join()
            if not self._timers:
                return
            await asyncio.wait(set(self._timers))
