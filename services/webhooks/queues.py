"""Where delivery jobs wait: RabbitMQ in production, memory in one-process runs.

RabbitMQ topology (prefix `callbridge`):

    intake: callbridge.webhooks (single active consumer) ──jobs_for──▶
      [callbridge.webhooks.shards] (headers exchange; header `shard` = hash(endpoint|chain) % N)
          ├──▶ callbridge.webhooks.shard.0   (durable, single active consumer) ─┐
          ├──▶ …                                                               ├─ Dispatcher.handle
          └──▶ callbridge.webhooks.shard.N-1                                   ─┘
      a failed attempt ──▶ callbridge.webhooks.retry.<delay>s (durable, per-message TTL = the
          jittered delay) ──expired, dead-lettered──▶ [callbridge.webhooks.shards] ──▶ its shard

The intake sends each batch of events as one message per shard holding that shard's jobs in
order (`JobBatch`): one message instead of one per delivery under load. Each shard has one
active consumer across all replicas (RabbitMQ's single-active-consumer);
the others stand by and take over when it goes. A job is acked only after `Dispatcher.handle`
returned, i.e. once it was delivered, held in the store, scheduled for retry (confirmed by the
broker) or dead-lettered. No process sleeps on an unacked message and no timer lives in memory.
"""

import asyncio
import logging
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

from shared.clock import Clock
from shared.rabbit_bus import RabbitBus
from shared.rabbit_publisher import ConfirmedPublisher, persistent
from shared.topology import Topology

from .dispatcher import Dispatcher
from .jobs import Job, JobBatch, shard_of
from .policy import RetryPolicy

logger = logging.getLogger(__name__)


class RabbitJobQueue:
    def __init__(
        self,
        bus: RabbitBus,
        channel: AbstractChannel,
        shards_exchange: AbstractExchange,
        names: Topology,
        shards: int,
        policy: RetryPolicy,
    ) -> None:
        self._bus = bus
        self._policy = policy
        self._channel = channel
        self._shards_exchange = shards_exchange
        self._names = names
        self._shards = shards
        self._publisher: ConfirmedPublisher = bus.publisher()
        self._pending: dict[int, list[Job]] = {}

    @classmethod
    async def declare(
        cls, bus: RabbitBus, names: Topology, shards: int, policy: RetryPolicy, prefetch: int = 50
    ) -> "RabbitJobQueue":
        channel = await bus.open_channel(prefetch=prefetch)
        exchange = await channel.declare_exchange(
            names.queue("webhooks.shards"), aio_pika.ExchangeType.HEADERS, durable=True
        )
        for shard in range(shards):
            queue = await channel.declare_queue(
                shard_queue(names, shard), durable=True, arguments=shard_arguments(names)
            )
            await queue.bind(exchange, arguments={"x-match": "all", "shard": str(shard)})
        for tier in policy.tiers:
            await channel.declare_queue(
                tier_queue(names, tier), durable=True, arguments={"x-dead-letter-exchange": exchange.name}
            )
        return cls(bus, channel, exchange, names, shards, policy)

    async def consume(self, dispatcher: Dispatcher) -> None:
        async def handle(batch: JobBatch) -> None:
            for job in batch.jobs:
                await dispatcher.handle(job)

        for shard in range(self._shards):
            # declared (not just looked up), so that the robust channel restores its consumer
            queue = await self._channel.declare_queue(
                shard_queue(self._names, shard), durable=True, arguments=shard_arguments(self._names)
            )
            self._bus.consume(queue, JobBatch.model_validate_json, handle)

    async def delete(self) -> None:
        """Remove the shard and retry queues and the shards exchange (tests' and benches' clean-up)."""
        for shard in range(self._shards):
            await self._channel.queue_delete(shard_queue(self._names, shard))
        for tier in self._policy.tiers:
            await self._channel.queue_delete(tier_queue(self._names, tier))
        await self._channel.exchange_delete(self._shards_exchange.name)

    async def submit(self, job: Job) -> None:
        """Collect `job` for its shard; `flush` sends each shard's jobs as one message, in order."""
        self._pending.setdefault(shard_of(job.key, self._shards), []).append(job)

    async def retry(self, job: Job, delay: float) -> None:
        tier = self._policy.tier(delay)
        message = self._message(shard_of(job.key, self._shards), [job], expiration=timedelta(seconds=delay))
        await self._publisher.send(self._channel.default_exchange, tier_queue(self._names, tier), message)
        await self._publisher.flush()

    async def flush(self) -> None:
        await (await self.handed_off())

    async def handed_off(self) -> Awaitable[None]:
        pending, self._pending = self._pending, {}
        for shard, jobs in pending.items():
            await self._publisher.send(self._shards_exchange, "", self._message(shard, jobs))
        return self._publisher.confirmation()

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


def shard_arguments(names: Topology) -> dict[str, Any]:
    return {"x-single-active-consumer": True, "x-dead-letter-exchange": names.dead_exchange}


def shard_queue(names: Topology, shard: int) -> str:
    return names.queue(f"webhooks.shard.{shard}")


def tier_queue(names: Topology, tier: float) -> str:
    return names.queue(f"webhooks.retry.{tier:g}s")


class MemoryJobQueue:
    """The same contract in one process (scenario runs, the demo): one worker keeps the order,
    retries wait on the clock. `drain()` returns once nothing is queued or waiting."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._jobs: asyncio.Queue[Job] = asyncio.Queue()
        self._timers: set[asyncio.Task[None]] = set()

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
        return None

    async def handed_off(self) -> Awaitable[None]:
        return asyncio.sleep(0)  # nothing to wait for: the jobs are in this process's queue

    async def run(self, dispatcher: Dispatcher) -> None:
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
