"""Conversion jobs: the ledger's replica hands them out, any replica's workers convert them.

A job names the WAV and the archive file it becomes. A worker converts it in its process pool
and publishes `recording.converted` on the bus, which reaches the replica keeping the ledger
(`callbridge.recordings` has one active consumer). On RabbitMQ the jobs wait in the durable
`callbridge.recordings.convert` queue, which every replica consumes with `workers` consumers of
prefetch 1: replicas compete for jobs and each job is converted once (a worker that dies
mid-job leaves it unacked, and another takes it). In one process the jobs simply run as tasks.
"""

import asyncio
import logging
from concurrent.futures import Executor
from pathlib import Path

from aio_pika.abc import AbstractChannel
from pydantic import BaseModel, ConfigDict

from shared.bus import Bus
from shared.clock import Clock
from shared.events import RecordingConverted
from shared.rabbit_bus import RabbitBus
from shared.rabbit_publisher import persistent
from shared.stamps import Stamper
from shared.topology import Topology

from .transcode import CorruptRecording, transcode

logger = logging.getLogger(__name__)


class ConversionJob(BaseModel):
    model_config = ConfigDict(frozen=True)

    chain_id: str
    link: int
    source: str
    target: str
    bitrate: int
    quality: int
    keep_wav: bool


class Worker:
    """Converts one job in the process pool and reports the result on the bus."""

    def __init__(self, bus: Bus, executor: Executor, clock: Clock) -> None:
        self._bus = bus
        self._executor = executor
        self._clock = clock
        self._stamp = Stamper("recordings-worker")

    async def __call__(self, job: ConversionJob) -> None:
        source, target = Path(job.source), Path(job.target)
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                self._executor, transcode, source, target, job.bitrate, job.quality, not job.keep_wav
            )
        except CorruptRecording as error:
            logger.error("recording %s skipped: %s", source, error)
            outcome = {"ok": False, "reason": str(error)}
        else:
            logger.info("recording %s → %s (%.0f s of audio)", source, target, result.seconds)
            outcome = {"ok": True, "seconds": result.seconds}
        await self._bus.publish(
            RecordingConverted(
                occurred_at=self._clock.now(),
                chain_id=job.chain_id,
                link=job.link,
                wav=job.source,
                mp3=job.target,
                **outcome,
                **self._stamp.next(),
            )
        )
        await self._bus.flush()


class LocalConversions:
    """Jobs as tasks of this process (the scenario runner, tests)."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, job: ConversionJob) -> None:
        task = asyncio.create_task(self._worker(job))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def drain(self) -> None:
        while self._running:
            await asyncio.gather(*set(self._running))


class QueuedConversions:
    """Jobs in RabbitMQ's `callbridge.recordings.convert`, consumed by every replica's workers."""

    def __init__(self, bus: RabbitBus, channel: AbstractChannel, queue: str) -> None:
        self._bus = bus
        self._channel = channel
        self._queue = queue
        self._publisher = bus.publisher()

    @classmethod
    async def declare(cls, bus: RabbitBus, names: Topology) -> "QueuedConversions":
        channel = await bus.open_channel()
        queue = await channel.declare_queue(names.queue("recordings.convert"), durable=True)
        return cls(bus, channel, queue.name)

    async def start(self, worker: Worker, consumers: int) -> None:
        for _ in range(consumers):  # each takes one job at a time: fair dispatch across replicas
            channel = await self._bus.open_channel(prefetch=1)
            # declared (not just looked up), so that the robust channel restores its consumer
            queue = await channel.declare_queue(self._queue, durable=True)
            self._bus.consume(queue, ConversionJob.model_validate_json, worker)

    async def submit(self, job: ConversionJob) -> None:
        message = persistent(job.model_dump_json().encode(), message_id=job.target, kind="recordings.convert")
        await self._publisher.send(self._channel.default_exchange, self._queue, message)
        await self._publisher.flush()

    async def drain(self) -> None:
        return None
