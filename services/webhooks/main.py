"""Webhooks service: call events → delivery jobs → ordered, retried, signed HTTP deliveries.

`running()` is the composition root shared by `main()` (RabbitMQ), the one-process runner and
tests (memory): it takes the settings, the bus, the job queue, the delivery store, the HTTP
transport and the clock. The job queue brings the events in: on RabbitMQ they arrive in the shard
queues (`queues.py`); in one process the memory queue takes them off the bus.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from shared.bus import Bus
from shared.chores import Chore, every
from shared.clock import Clock, SystemClock
from shared.events import WebhookEndpointDisabled
from shared.heap import HeapCollector
from shared.http_server import serving
from shared.keys import Keys
from shared.lifecycle import wait_for_shutdown
from shared.logging import configure_logging
from shared.rabbit_bus import RabbitBus
from shared.settings import Settings
from shared.stamps import Stamper
from shared.topology import SHARDS

from .dispatcher import Dispatcher
from .http import create_app
from .metrics import ReplicaCollector, WebhookMetrics
from .policy import RetryPolicy
from .ports import JobQueue
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


@dataclass
class Webhooks:
    dispatcher: Dispatcher
    metrics: WebhookMetrics
    store: DeliveryStore
    queue: JobQueue


@contextlib.asynccontextmanager
async def running(
    settings: Settings,
    bus: Bus,
    queue: JobQueue,
    store: DeliveryStore,
    transport: Transport,
    clock: Clock,
) -> AsyncIterator[Webhooks]:
    """Deliver what `queue` brings (events turned into jobs, and the service's own jobs) to the
    configured endpoints."""
    metrics = WebhookMetrics()
    dispatcher = Dispatcher(
        settings.endpoints,
        Sender(transport, clock),
        store,
        queue,
        policy=RetryPolicy.configured(settings.webhooks),
        clock=clock,
        metrics=metrics,
        on_disabled=Notifier(bus, clock).endpoint_disabled,
    )
    await queue.consume(dispatcher.handle)
    try:
        yield Webhooks(dispatcher, metrics, store, queue)
    finally:
        await queue.close()


def housekeeping(dispatcher: Dispatcher, store: DeliveryStore, clock: Clock, keep_days: float) -> Chore:
    """Release abandoned blocks and prune the attempt log, every SWEEP_EVERY."""

    async def sweep() -> None:
        await dispatcher.sweep()
        await store.prune_attempts((clock.now() - timedelta(days=keep_days)).timestamp())

    return Chore("webhooks housekeeping", sweep, every(SWEEP_EVERY), retry=SWEEP_EVERY)


async def main(settings: Settings) -> None:
    configure_logging(settings.log.level, settings.log.json_lines)
    if not settings.endpoints:
        logger.warning("no [webhook:NAME] endpoints configured: events are taken in and nothing is sent")
    clock = SystemClock()
    policy = RetryPolicy.configured(settings.webhooks)
    async with contextlib.AsyncExitStack() as stack:
        store = await DeliveryStore.open(settings.webhooks.database)
        stack.push_async_callback(store.close)
        bus = await stack.enter_async_context(RabbitBus.configured(settings.bus, "webhooks"))
        session = await stack.enter_async_context(new_session())
        queue = await RabbitJobQueue(bus, policy, settings.endpoints).declare()
        service = await stack.enter_async_context(
            running(settings, bus, queue, store, AiohttpTransport(session), clock)
        )
        service.metrics.registry.register(bus.collector())
        service.metrics.registry.register(HeapCollector())
        service.metrics.registry.register(ReplicaCollector(queue.replicas, lambda: len(queue.owned)))
        chore = housekeeping(service.dispatcher, store, clock, settings.webhooks.attempt_log_days)
        keys = Keys(settings.api.keys, settings.api.read_only_keys)
        app = create_app(
            store, queue, service.metrics, clock, keys, ready=lambda: bus.connected and not chore.failing
        )
        await stack.enter_async_context(
            serving(app, settings.webhooks.http_host, settings.webhooks.http_port)
        )
        logger.info(
            "webhooks started as replica %s: %d endpoint(s), %d shards",
            queue.members.me,
            len(settings.endpoints),
            SHARDS,
        )
        chores = asyncio.create_task(chore.run(clock), name=chore.name)
        try:
            await wait_for_shutdown()
        finally:
            chores.cancel()
            await asyncio.gather(chores, return_exceptions=True)
    logger.info("webhooks stopped")
