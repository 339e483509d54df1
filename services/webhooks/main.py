"""Webhooks service: call events → delivery jobs → ordered, retried, signed HTTP deliveries.

`build()` is the composition root shared by `main()` (RabbitMQ), the scenario runner and the
demo (memory): it takes the bus, the job queue, the HTTP transport and the clock. On RabbitMQ
the events arrive in the shard queues (`queues.py`); in one process the bus hands them to an
`Intake` that feeds the memory job queue.
"""

import asyncio
import contextlib
import logging
from datetime import timedelta

from shared.bus import Bus
from shared.clock import Clock, SystemClock
from shared.events import WebhookEndpointDisabled
from shared.http_server import serving
from shared.lifecycle import wait_for_shutdown
from shared.logging import configure_logging
from shared.rabbit_bus import RabbitBus
from shared.settings import Settings
from shared.stamps import Stamper
from shared.topology import Topology

from .dispatcher import Dispatcher, JobQueue
from .http import create_app
from .jobs import Intake
from .metrics import WebhookMetrics
from .policy import RetryPolicy
from .queues import RabbitJobQueue
from .sender import AiohttpTransport, Sender, Transport, new_session
from .store import DeliveryStore

logger = logging.getLogger(__name__)

# how often abandoned blocks are looked for (a replica killed mid-release leaves one for at most
# RELEASE_GRACE plus this)
SWEEP_EVERY = timedelta(seconds=15)


class Notifier:
    """Operational events of this webhooks process, on the bus."""

    def __init__(self, bus: Bus, clock: Clock) -> None:
        self._bus = bus
        self._clock = clock
        self._stamp = Stamper("webhooks")

    async def endpoint_disabled(self, endpoint: str, reason: str) -> None:
        event = WebhookEndpointDisabled(
            occurred_at=self._clock.now(), endpoint=endpoint, reason=reason, **self._stamp.next()
        )
        await self._bus.publish(event)
        await self._bus.flush()


def build(
    settings: Settings,
    bus: Bus,
    queue: JobQueue,
    store: DeliveryStore,
    transport: Transport,
    clock: Clock,
    policy: RetryPolicy,
) -> tuple[Dispatcher, WebhookMetrics]:
    metrics = WebhookMetrics()
    dispatcher = Dispatcher(
        settings.endpoints,
        Sender(transport, clock),
        store,
        queue,
        policy=policy,
        clock=clock,
        metrics=metrics,
        on_disabled=Notifier(bus, clock).endpoint_disabled,
    )
    return dispatcher, metrics


async def housekeeping(dispatcher: Dispatcher, store: DeliveryStore, clock: Clock, keep_days: float) -> None:
    """Release abandoned blocks and prune the attempt log, every SWEEP_EVERY, for ever."""
    while True:
        try:
            await dispatcher.sweep()
            store.prune_attempts((clock.now() - timedelta(days=keep_days)).timestamp())
        except Exception:  # a broker or disk hiccup must not end the chores: try again next time
            logger.exception("webhooks housekeeping failed; trying again in %s", SWEEP_EVERY)
        await clock.sleep_until(clock.now() + SWEEP_EVERY)


async def main(settings: Settings) -> None:
    configure_logging(settings.log.level, settings.log.json_lines)
    if not settings.endpoints:
        logger.warning("no [webhook:NAME] endpoints configured: events are taken in and nothing is sent")
    clock = SystemClock()
    store = DeliveryStore(settings.webhooks.database)
    names = Topology(settings.bus.exchange)
    async with contextlib.AsyncExitStack() as stack:
        bus = await stack.enter_async_context(RabbitBus.configured(settings.bus, "webhooks"))
        session = await stack.enter_async_context(new_session())
        policy = RetryPolicy.configured(settings.webhooks)
        queue = await RabbitJobQueue.declare(bus, names, policy)
        dispatcher, metrics = build(settings, bus, queue, store, AiohttpTransport(session), clock, policy)
        metrics.registry.register(bus.collector())
        app = create_app(store, queue, metrics, clock, ready=lambda: bus.connected)
        await stack.enter_async_context(
            serving(app, settings.webhooks.http_host, settings.webhooks.http_port)
        )
        await queue.consume(dispatcher, Intake(settings.endpoints, dispatcher.handle))
        logger.info("webhooks started: %d endpoint(s), %d shards", len(settings.endpoints), names.shards)
        chores = asyncio.create_task(
            housekeeping(dispatcher, store, clock, settings.webhooks.attempt_log_days)
        )
        try:
            await wait_for_shutdown()
        finally:
            chores.cancel()
            await asyncio.gather(chores, return_exceptions=True)
    store.close()
    logger.info("webhooks stopped")
