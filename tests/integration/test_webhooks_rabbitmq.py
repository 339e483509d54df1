"""The webhooks service on the real broker, delivering to a real local receiver."""

import json
import random
from collections import Counter
from pathlib import Path
from uuid import uuid4
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.monitor import main as monitor
from services.monitor.drivers import SimulatorDriver
from services.monitor.scenario import load_scenario
from services.webhooks import main as webhooks
from services.webhooks.policy import RetryPolicy
from services.webhooks.queues import RabbitJobQueue
from services.webhooks.store import DeliveryStore
from shared.clock import SystemClock, VirtualClock
from shared.rabbit_bus import RabbitBus
from shared.settings import EndpointSettings, Settings, WebhooksSettings
from shared.topology import WEBHOOKS_BINDINGS, Topology
from tests.conftest import SHARED, check_webhooks
from tests.receiver import Received, Receiver

pytestmark = pytest.mark.rabbitmq
UTC = ZoneInfo("UTC")
FAILING = "210701165649_698"  # attended-transfer's first chain


def fail_first_tries(chain: str, failures: int, status: int = 503) -> object:
    """An answer: the first `failures` requests of `chain` fail, everything else succeeds."""

    def answer(request: Received, receiver: Receiver) -> tuple[int, dict[str, str]]:
        tried = sum(str(r.query.get("id", "")).startswith(chain) for r in receiver.requests)
        return (
            (status, {})
            if str(request.query.get("id", "")).startswith(chain) and tried < failures
            else (200, {})
        )

    return answer


async def play(bus: RabbitBus, name: str) -> None:
    scenario = load_scenario(SHARED / "scenarios" / f"{name}.yaml")
    clock = VirtualClock(scenario.start.replace(tzinfo=UTC))
    await monitor.run(SimulatorDriver.for_scenario(scenario, clock, UTC), bus, zone=UTC, source="it")


async def test_deliveries_retry_in_order_and_other_chains_go_on(amqp_url: str, tmp_path: Path) -> None:
    names = Topology(f"test.{uuid4().hex[:12]}")
    # chain 698 (attended transfer) fails twice, then recovers; chain 700 is never held up
    async with (
        Receiver(fail_first_tries(FAILING, 2)) as receiver,
        RabbitBus.connect(amqp_url, names=names, connection_name="webhooks it") as bus,
        httpx.AsyncClient() as client,
    ):
        try:
            settings = Settings(
                endpoints={"crm": EndpointSettings(url=receiver.url)},
                webhooks=WebhooksSettings(retry_schedule=(0.3, 0.6, 1.2), jitter=0.2, shards=4),
            )
            policy = RetryPolicy(settings.webhooks.retry_schedule, 0.2, random.Random(3))
            queue = await RabbitJobQueue.declare(bus, names, 4, policy)
            store = DeliveryStore(tmp_path / "webhooks.db")
            dispatcher, intake, _ = webhooks.build(
                settings, bus, queue, store, [client], SystemClock(), policy
            )
            await queue.consume(dispatcher)
            await bus.subscribe("webhooks", intake, bindings=WEBHOOKS_BINDINGS)
            await play(bus, "attended-transfer")
            await receiver.wait_for(lambda r: len(r.delivered()) == 7)
        finally:
            await bus.delete_topology()
    delivered = [json.dumps(r.webhook()) for r in receiver.delivered()]
    assert check_webhooks("attended-transfer", delivered, tmp_path) == ""  # complete, and in order per chain
    ids = [str(r.query["id"]) for r in receiver.requests]
    assert ids.count("210701165649_698-0") == 3  # failed twice, then delivered
    assert Counter(r.status for r in receiver.requests) == {200: 7, 503: 2}
    assert [a.status for a in store.attempts() if a.outcome == "Failed"] == [503, 503]
    # the other chain's webhooks did not wait for the failing one's retries
    recovered = next(
        i for i, r in enumerate(receiver.requests) if r.query["id"].startswith(FAILING) and r.status == 200
    )
    other = [i for i, r in enumerate(receiver.requests) if r.query["id"].startswith("210701165739_700")]
    assert other and min(other) < recovered
