"""Conversion jobs: the ledger's replica hands them out, any replica's workers convert them.

A job names the WAV and the archive file it becomes. A worker converts it in its process pool
and publishes `recording.converted` on the bus, which reaches the replica keeping the ledger
(`callbridge.recordings` has one active consumer). The jobs wait in a work queue
(`shared.work_queue`): on RabbitMQ the durable `callbridge.recordings.conversions`, which every
replica consumes with `workers` consumers of prefetch 1, so replicas compete for jobs and each
job is converted once (a worker that dies mid-job leaves it unacked, and another takes it); in
one process, `workers` tasks.

A conversion that cannot finish for a passing reason (a full disk; the pool broken because a
worker process was killed, by the OOM killer for instance: the pool is started again) is tried
again with the same job (`shared.bus.Transient`), as long as it takes; a job on which the pool
broke POOL_DEATHS times is reported failed rather than tried for ever.
"""

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pydantic import BaseModel, ConfigDict

from shared.bus import Bus, Transient
from shared.clock import Clock
from shared.events import RecordingConverted
from shared.rabbit_work_queue import Shape
from shared.stamps import Stamper

from .transcode import Converted, CorruptRecording, transcode

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


POOL_DEATHS = 3


class Pool:
    """The executor conversions run in (`make` makes it), made again when it breaks."""

    def __init__(self, make: Callable[[], Executor]) -> None:
        self._make = make
        self._executor = make()
        self.restarts = 0

    async def run(self, function: Callable[..., Converted], *args: Any) -> Converted:
        executor = self._executor
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, function, *args)
        except BrokenProcessPool:
            if executor is self._executor:  # not made again yet by another job that saw it break
                self.restarts += 1
                logger.error("a conversion process died (killed, or out of memory); the pool starts again")
                executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._make()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._executor.shutdown()


class Worker:
    """Converts one job in the pool and reports the result on the bus. `failing` is set while the
    last try of a job failed in passing (a full disk, the pool broken), for readiness."""

    def __init__(self, bus: Bus, pool: Pool, clock: Clock) -> None:
        self._bus = bus
        self._pool = pool
        self._clock = clock
        self._stamp = Stamper("recordings-worker")
        self._pool_deaths: Counter[str] = Counter()
        self.failing = False

    async def _convert(self, job: ConversionJob) -> Converted:
        source, target = Path(job.source), Path(job.target)
        try:
            converted = await self._pool.run(
                transcode, source, target, job.bitrate, job.quality, not job.keep_wav
            )
        except BrokenProcessPool:
            self._pool_deaths[job.target] += 1
            if self._pool_deaths[job.target] >= POOL_DEATHS:
                del self._pool_deaths[job.target]
                raise CorruptRecording(f"its conversion process died {POOL_DEATHS} times") from None
            self.failing = True
            raise Transient("the conversion process died") from None
        except OSError as error:
            self.failing = True
            raise Transient(f"{target} cannot be written: {error.strerror or error}") from error
        self._pool_deaths.pop(job.target, None)
        self.failing = False
        return converted

    async def __call__(self, job: ConversionJob) -> None:
        source, target = Path(job.source), Path(job.target)
        try:
            result = await self._convert(job)
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
