"""Conversion jobs: the ledger's replica hands them out, any replica's workers convert them.

A job names the WAV and the archive file it becomes. A worker converts it in its process pool
and publishes `recording.converted` on the bus, which reaches the replica keeping the ledger
(`callbridge.recordings` has one active consumer). The jobs wait in a work queue
(`shared.work_queue`): on RabbitMQ the durable `callbridge.recordings.conversions`, which every
replica consumes with `workers` consumers of prefetch 1, so replicas compete for jobs and each
job is converted once (a worker that dies mid-job leaves it unacked, and another takes it); in
one process, `workers` tasks.
"""

import asyncio
import logging
from concurrent.futures import Executor
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from shared.bus import Bus
from shared.clock import Clock
from shared.events import RecordingConverted
from shared.rabbit_work_queue import Shape
from shared.stamps import Stamper

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


CONVERSIONS = Shape(ConversionJob, message_id=lambda job: job.target)
QUEUE = "recordings.conversions"  # `callbridge.recordings.conversions`
RETIRED_QUEUE = "recordings.convert"  # earlier versions: the same jobs, with no dead-letter exchange


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
