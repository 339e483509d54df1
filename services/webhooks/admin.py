"""Operators' tools: list and replay dead letters, read the attempt log."""

import re
from datetime import datetime, timedelta

from shared.clock import Clock
from shared.rabbit_bus import RabbitBus
from shared.settings import Settings, parse_duration
from shared.topology import Topology

from .dispatcher import JobQueue
from .jobs import Job
from .policy import RetryPolicy
from .queues import RabbitJobQueue
from .store import DeadDelivery, DeliveryStore


def parse_since(text: str | None, clock: Clock) -> float:
    """`--since`: an ISO time (PBX clock zone if naive: UTC) or a duration ago (`2h`, `30m`)."""
    if not text:
        return 0.0
    if re.match(r"^\s*\d+(\.\d+)?\s*(ms|s|min|m|h|d)?\s*$", text):
        try:
            return (clock.now() - timedelta(seconds=parse_duration(text))).timestamp()
        except OverflowError:
            raise ValueError(f"--since {text!r}: that is before any delivery could have been made") from None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--since {text!r}: give an ISO time (2026-11-28T09:00) or a duration ago (2h)"
        ) from None
    return when.timestamp() if when.tzinfo else when.replace(tzinfo=clock.now().tzinfo).timestamp()


async def replay(store: DeliveryStore, queue: JobQueue, dead: list[DeadDelivery], clock: Clock) -> None:
    """Send dead deliveries again from their first attempt, re-enabling their endpoints."""
    for endpoint in {d.endpoint for d in dead}:
        store.enable(endpoint)
    for delivery in dead:
        await queue.submit(Job.model_validate_json(delivery.job).model_copy(update={"attempt": 0}))
    await queue.flush()
    now = clock.now().timestamp()
    for delivery in dead:
        store.mark_replayed(delivery.id, now)


async def replay_through_broker(
    settings: Settings, store: DeliveryStore, dead: list[DeadDelivery], clock: Clock
) -> None:
    """`replay` from outside the service (the CLI): its own connection to the job queues."""
    names = Topology(settings.bus.exchange)
    async with RabbitBus.connect(
        settings.bus.amqp_url, names=names, connection_name="webhooks replay"
    ) as bus:
        queue = await RabbitJobQueue.declare(bus, names, RetryPolicy.configured(settings.webhooks))
        await replay(store, queue, dead, clock)
