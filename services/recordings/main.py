"""Recordings service: PBX WAVs → verified MP3s in the archive → `recording.ready` → webhooks;
the archive served over HTTPS with signed links, and pruned every night.

`running()` is the composition root that `main()` (RabbitMQ, a conversion queue every replica
works from), the one-process runner and tests (a memory work queue) share. `live`: the folder
is watched and the archive pruned as time goes by; without it the caller drives the passes
(`scan`, `drain`, `announce`: a scenario's recordings, converted once its calls are over).
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from prometheus_client import CollectorRegistry

from shared.bus import Bus
from shared.chores import Chore, every
from shared.clock import Clock, SystemClock
from shared.heap import HeapCollector
from shared.http_server import serving
from shared.lifecycle import wait_for_shutdown
from shared.logging import configure_logging
from shared.rabbit_bus import RabbitBus
from shared.rabbit_work_queue import RabbitWorkQueue, retire
from shared.settings import ConfigError, RecordingsSettings, Settings
from shared.topology import RECORDINGS_BINDINGS, RECORDINGS_RETIRED, Topology
from shared.work_queue import WorkQueue

from .http import create_app
from .metrics import RecordingsMetrics
from .retention import nightly
from .service import Recordings
from .transcode import processes
from .work import CONVERSIONS, QUEUE, RETIRED_QUEUE, ConversionJob, Pool, Worker

logger = logging.getLogger(__name__)


def token_secret(settings: RecordingsSettings) -> bytes:
    """The secret that signs download links: required, so that a link works on every replica and
    after a restart."""
    if settings.token_secret is None:
        raise ConfigError(
            "[recordings] token_secret is required: any long random string, the same for every "
            "replica (for example: openssl rand -base64 32)"
        )
    return settings.token_secret.get_secret_value().encode()


@contextlib.asynccontextmanager
async def running(
    settings: Settings,
    bus: Bus,
    clock: Clock,
    conversions: WorkQueue[ConversionJob],
    *,
    secret: bytes,
    live: bool = True,
) -> AsyncIterator[Recordings]:
    config = settings.recordings
    recordings = await Recordings.open(config, bus, clock, conversions, zone=settings.pbx.zone, secret=secret)
    # one replica at a time keeps the ledger of links and files; the others stand by
    await bus.subscribe("recordings", recordings.on_event, bindings=RECORDINGS_BINDINGS, single_active=True)
    recordings.chores = [
        Chore("recordings watch", recordings.turn, every(timedelta(seconds=config.scan_interval))),
        nightly(config.archive_dir, config.retention_days, config.cleanup_hour, settings.pbx.zone),
    ]
    tasks = [asyncio.create_task(c.run(clock), name=c.name) for c in recordings.chores] if live else []
    try:
        yield recordings
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await recordings.drain()
        await recordings.close()


def durable_queues(names: Topology) -> list[str]:
    """The service's durable queues: the calls it follows, the conversion jobs."""
    return [names.queue("recordings"), names.queue(QUEUE)]


async def declare_durable(bus: RabbitBus) -> None:
    """Declare `durable_queues` (and their bindings) as the service does at start."""
    await bus.declare("recordings", bindings=RECORDINGS_BINDINGS, single_active=True)
    await RabbitWorkQueue(bus, QUEUE, CONVERSIONS).declare()


async def main(settings: Settings) -> None:
    configure_logging(settings.log.level, settings.log.json_lines)
    config = settings.recordings
    clock = SystemClock()
    secret = token_secret(config)
    with Pool(lambda: processes(config.workers)) as pool:
        async with contextlib.AsyncExitStack() as stack:
            bus = await stack.enter_async_context(RabbitBus.configured(settings.bus, "recordings"))
            conversions = await RabbitWorkQueue(bus, QUEUE, CONVERSIONS, config.workers).declare()
            worker = Worker(bus, pool, clock)
            await conversions.consume(worker)
            await retire(bus, bus.names.queue(RETIRED_QUEUE), ConversionJob.model_validate_json, worker)
            recordings = await stack.enter_async_context(
                running(settings, bus, clock, conversions, secret=secret)
            )
            await bus.unbind("recordings", RECORDINGS_RETIRED)
            registry = CollectorRegistry()
            registry.register(RecordingsMetrics(recordings, pool))
            registry.register(bus.collector())
            registry.register(HeapCollector())
            app = create_app(
                config.archive_dir,
                secret,
                clock,
                ready=lambda: bus.connected and recordings.healthy() and not worker.failing,
                metrics=registry,
                metrics_from=config.metrics_from,
            )
            await stack.enter_async_context(
                serving(app, config.http_host, config.http_port, cert=config.tls_cert, key=config.tls_key)
            )
            logger.info("recordings started: %s → %s", config.pbx_dir, config.archive_dir)
            await wait_for_shutdown()
    logger.info("recordings stopped")
