"""API service: a state cache fed by the bus, the classic REST methods over it, commands by RPC.

`running()` is the composition root that `main()` (on RabbitMQ), the one-process demo and the
tests share. Each replica has its own exclusive queue (`API_BINDINGS`), which takes the
monitor's events in its batches (`pbx.batch`) and the other services' events: its cache and its
live stream; a restarted replica starts again from a snapshot, so the queue need not outlive it.
"""

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from shared.bus import Bus
from shared.events import Message, each_event, unpacked
from shared.heap import HeapCollector
from shared.http_server import serving
from shared.lifecycle import wait_for_shutdown
from shared.logging import configure_logging
from shared.rabbit_bus import RabbitBus
from shared.settings import ApiSettings, ConfigError, Settings
from shared.topology import API_BINDINGS

from .admin_proxy import WebhooksAdmin
from .cache import StateCache
from .chains import RecentChains
from .dashboard import mount_dashboard
from .http import create_app
from .live import QueueDay
from .metrics import ApiMetrics
from .stream import EventStream

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Api:
    app: FastAPI
    cache: StateCache
    stream: EventStream


@contextlib.asynccontextmanager
async def running(
    settings: Settings,
    bus: Bus,
    connected: Callable[[], bool] = lambda: True,
    metrics: ApiMetrics | None = None,
) -> AsyncIterator[Api]:
    """Subscribe the cache and the stream, ask for the first snapshot, and build the app (which
    the caller serves: on uvicorn, or in-process in tests)."""
    api = settings.api
    check_keys(api)
    metrics = metrics or ApiMetrics()
    cache = StateCache(bus, api.command_timeout)
    stream = EventStream(api.stream_buffer)
    chains, day = RecentChains(api.recent_chains), QueueDay(settings.pbx.zone)  # the dashboard's

    async def on_event(message: Message) -> None:
        for event in each_event(message):  # the monitor's come in batches
            metrics.events.inc()
            await cache.handle(event)
            for each in unpacked(event):  # the stream and the dashboard show each call's state
                await stream.handle(each)
                chains.handle(each)
                day.handle(each)

    await bus.subscribe("api", on_event, bindings=API_BINDINGS, exclusive=True)
    cache.start()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            app = create_app(cache, stream, bus, api, metrics, connected)
            mount_dashboard(app, chains, day, WebhooksAdmin(api.webhooks_admin_url, http))
            yield Api(app, cache, stream)
    finally:
        await cache.close()


def check_keys(settings: ApiSettings) -> None:
    if not settings.keys and not settings.read_only_keys:
        raise ConfigError("[api] keys (or $CALLBRIDGE_API_KEYS): no API key is configured: nobody could call")


async def main(settings: Settings) -> None:
    check_keys(settings.api)  # before the broker: the missing key is the news, not a broker away
    configure_logging(settings.log.level, settings.log.json_lines)
    api = settings.api
    metrics = ApiMetrics()
    async with (
        RabbitBus.configured(settings.bus, "api") as bus,
        running(settings, bus, lambda: bus.connected, metrics) as service,
        serving(service.app, api.http_host, api.http_port, cert=api.tls_cert, key=api.tls_key),
    ):
        metrics.registry.register(bus.collector())
        metrics.registry.register(HeapCollector())
        scheme = "https" if api.tls_cert else "http"
        logger.info("api started on %s://%s:%d", scheme, api.http_host, api.http_port)
        await wait_for_shutdown()
    logger.info("api stopped")
