"""Operators' tools (`callbridge webhooks dead list|replay`, `webhooks attempts`): list and
replay dead letters, read the attempt log, in the delivery store the service keeps."""

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from shared import lifecycle
from shared.clock import Clock
from shared.database import is_postgres
from shared.rabbit_bus import RabbitBus
from shared.settings import ConfigError, Settings
from shared.values import parse_duration

from .jobs import Job
from .policy import RetryPolicy
from .ports import JobQueue
from .queues import RabbitJobQueue
from .store import Attempt, DeadDelivery, DeliveryStore

T = TypeVar("T")
REPLAY_BATCH = 500


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


async def replay(store: DeliveryStore, queue: JobQueue, dead: list[DeadDelivery], clock: Clock) -> int:
    """Send dead deliveries again from their first attempt, re-enabling their endpoints; each
    once, however many replays run at once (a double click, two operators): claimed first, and
    given back if they could not be queued. Returns how many this replay sent."""
    now = clock.now().timestamp()
    claimed = [delivery for delivery in dead if await store.claim_replay(delivery.id, now)]
    for endpoint in {d.endpoint for d in claimed}:
        await store.enable(endpoint)
    try:
        for delivery in claimed:
            await queue.submit(
                Job.model_validate_json(delivery.job).model_copy(update={"attempt": 0, "replayed": True})
            )
        await queue.flush()
    except Exception:
        for delivery in claimed:
            await store.release_replay(delivery.id)
        raise
    return len(claimed)


async def replay_selected(
    store: DeliveryStore,
    queue: JobQueue,
    clock: Clock,
    *,
    endpoint: str | None,
    since: float,
    dead_id: int | None = None,
) -> int:
    """Replay every dead letter the filters select (one by `dead_id`, or by endpoint and time), a
    batch at a time, so memory stays bounded however many there are."""
    total = 0
    while letters := await store.dead(endpoint=endpoint, since=since, dead_id=dead_id, limit=REPLAY_BATCH):
        sent = await replay(store, queue, letters, clock)
        if not sent:  # another replay took them all meanwhile
            break
        total += sent
    return total


async def replay_through_broker(
    settings: Settings, store: DeliveryStore, clock: Clock, *, endpoint: str | None, since: float
) -> int:
    """`replay_selected` from outside the service (the CLI): its own connection to the job queues."""
    async with RabbitBus.configured(settings.bus, "webhooks replay") as bus:
        policy = RetryPolicy.configured(settings.webhooks)
        queue = await RabbitJobQueue(bus, policy, settings.endpoints).declare()
        return await replay_selected(store, queue, clock, endpoint=endpoint, since=since)


def existing(address: str) -> str:
    """`address`, if the webhooks service's delivery store is there already: a file path mistyped
    in the configuration is an error, not an empty store."""
    if not is_postgres(address) and not Path(address).is_file():
        raise ConfigError(f"no delivery store at {address}: is [webhooks] database the webhooks service's?")
    return address


def in_store(address: str, use: Callable[[DeliveryStore], Awaitable[T]]) -> T:
    """`use` the delivery store at `address` (which must be there already), then close it: the
    command line's way in."""

    async def using() -> T:
        store = await DeliveryStore.open(existing(address))
        try:
            return await use(store)
        finally:
            await store.close()

    return lifecycle.run(using())


def since(text: str | None, clock: Clock) -> float:
    try:
        return parse_since(text, clock)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def dead_line(dead: DeadDelivery) -> str:
    when = datetime.fromtimestamp(dead.at, UTC)
    fields = (dead.id, f"{when:%Y-%m-%d %H:%M:%S}Z", dead.endpoint, dead.event_type, dead.chain, dead.reason)
    return "\t".join(map(str, fields))


def attempt_line(attempt: Attempt) -> str:
    when = datetime.fromtimestamp(attempt.at, UTC)
    status = attempt.status if attempt.status is not None else "-"
    return (
        f"{when:%Y-%m-%d %H:%M:%S}Z\t{attempt.endpoint}\t{attempt.event_type}\t{attempt.chain}"
        f"\tattempt {attempt.attempt}\t{status}\t{attempt.outcome}\t{attempt.latency_ms:.0f} ms"
        f"\t{attempt.response[:80]!r}"
    )


def deliveries(count: int) -> str:
    return f"{count} dead deliver{'y' if count == 1 else 'ies'}"
