"""The webhooks service on the real broker, delivering to a real local receiver."""

import asyncio
import contextlib
import itertools
import json
import random
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4
from zoneinfo import ZoneInfo

import aio_pika
import aiormq
import pytest

from services.webhooks import main as webhooks
from services.webhooks.policy import RetryPolicy
from services.webhooks.queues import RabbitJobQueue
from services.webhooks.sender import AiohttpTransport, new_session
from services.webhooks.shards import (
    LEGACY_INTAKE,
    declare_shard,
    declare_shards,
    retired_tier_queue,
    shards_exchange,
    tier_queue,
)
from services.webhooks.store import DeliveryStore
from shared.clock import SystemClock, VirtualClock
from shared.events import ExtensionPresence, WebhookEndpointDisabled, encode_event
from shared.rabbit_bus import RabbitBus
from shared.settings import BusSettings, EndpointSettings, Settings, WebhooksSettings
from shared.topology import SHARDS, WEBHOOKS_BINDINGS, Topology
from shared.values import QueueType
from simulation.driver import SimulatorDriver
from simulation.scenario import load_scenario
from tests.broker import close_connection, new_prefix, purge
from tests.conftest import EXAMPLES, check_webhooks
from tests.factories import AT, make_call_ended, make_call_ringing
from tests.fakes import Recorder, follow
from tests.receiver import Received, Receiver

pytestmark = pytest.mark.rabbitmq
UTC = ZoneInfo("UTC")
FAILING = "230801143327_640"  # attended-transfer-hold's first chain


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
    scenario = load_scenario(EXAMPLES / f"{name}.yaml")
    clock = VirtualClock(scenario.start.replace(tzinfo=UTC))
    await follow(SimulatorDriver.for_scenario(scenario, clock, UTC), bus, source="it")


@dataclass
class Service:
    bus: RabbitBus
    store: DeliveryStore
    settings: Settings
    connection_name: str
    queue: RabbitJobQueue


@contextlib.asynccontextmanager
async def webhooks_service(
    amqp_url: str,
    tmp_path: Path,
    endpoints: dict[str, EndpointSettings],
    names: Topology | None = None,
    keep_topology: bool = False,
) -> AsyncIterator[Service]:
    """The webhooks service in this process on the real broker, under a private prefix, retrying
    after 0.3, 0.6 and 1.2 s; its connection named uniquely (a test may drop it)."""
    schedule, connection_name = (0.3, 0.6, 1.2), f"webhooks it {uuid4().hex[:8]}"
    names = names or Topology(new_prefix())
    settings = Settings(
        endpoints=endpoints,
        bus=BusSettings(amqp_url=amqp_url, exchange=names.prefix),
        webhooks=WebhooksSettings(retry_schedule=schedule, jitter=0.2, database=tmp_path / "webhooks.db"),
    )
    try:
        async with (
            RabbitBus.connect(amqp_url, names=names, connection_name=connection_name) as bus,
            new_session() as session,
        ):
            policy = RetryPolicy(schedule, 0.2, random.Random(3))
            queue = await RabbitJobQueue(bus, policy, settings.endpoints).declare()
            store = await DeliveryStore.open(settings.webhooks.database)
            transport = AiohttpTransport(session)
            try:
                async with webhooks.running(settings, bus, queue, store, transport, SystemClock()):
                    yield Service(bus, store, settings, connection_name, queue)
            finally:
                await store.close()
    finally:
        if not keep_topology:
            await purge(amqp_url, names.prefix)


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
async def test_deliveries_retry_in_order_and_other_chains_go_on(
    amqp_url: str, tmp_path: Path, queue_type: QueueType
) -> None:
    # chain 640 (attended transfer) fails twice, then recovers; chain 642 is never held up; on
    # quorum queues too (the retry queues' TTL and dead-lettering back to the shards)
    names = Topology(new_prefix(), queue_type)
    async with (
        Receiver(fail_first_tries(FAILING, 2)) as receiver,
        webhooks_service(amqp_url, tmp_path, {"crm": EndpointSettings(url=receiver.url)}, names) as service,
    ):
        await play(service.bus, "attended-transfer-hold")
        await receiver.wait_for(lambda r: len(r.delivered()) == 9)
        failed = [a for a in await service.store.attempts() if a.outcome == "Failed"]
    delivered = [json.dumps(r.webhook()) for r in receiver.delivered()]
    assert (
        check_webhooks("attended-transfer-hold", delivered, recordings=False) == ""
    )  # complete, and in order per chain
    first = [r for r in receiver.requests if r.query["id"] == f"{FAILING}-0" and r.query["user"] == "201"]
    assert [r.status for r in first] == [503, 503, 200]  # failed twice, then delivered
    tries = [r.at for r in first]
    gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
    # the shortened schedule (0.3 s, 0.6 s, ±20 %), kept by RabbitMQ's TTL retry queues: each
    # delay waits in the queue of the next R10 value (0.25, 0.315, 0.4 …), never less
    assert 0.24 <= gaps[0] <= 0.4 + 0.25 and 0.48 <= gaps[1] <= 0.8 + 0.25, gaps
    assert Counter(r.status for r in receiver.requests) == {200: 9, 503: 2}
    assert [a.status for a in failed] == [503, 503], [(a.status, a.response, a.event_id) for a in failed]
    # the other chain's webhooks did not wait for the failing one's retries
    recovered = next(
        i for i, r in enumerate(receiver.requests) if r.query["id"].startswith(FAILING) and r.status == 200
    )
    other = [i for i, r in enumerate(receiver.requests) if r.query["id"].startswith("230801143707_642")]
    assert other and min(other) < recovered


async def test_retry_after_is_honoured_through_the_retry_queues(amqp_url: str, tmp_path: Path) -> None:
    def answer(request: Received, receiver: Receiver) -> tuple[int, dict[str, str]]:
        return (429, {"retry-after": "2"}) if len(receiver.requests) == 0 else (200, {})

    async with (
        Receiver(answer) as receiver,
        webhooks_service(
            amqp_url, tmp_path, {"crm": EndpointSettings(url=receiver.url, events=("call.ended",))}
        ) as service,
    ):
        await play(service.bus, "outgoing-transfer")
        await receiver.wait_for(lambda r: len(r.delivered()) == 3)
    first = receiver.requests[0]
    assert first.status == 429
    retried = [r for r in receiver.requests if r.query["id"] == first.query["id"]]
    assert [r.status for r in retried] == [429, 200]
    assert retried[1].at - retried[0].at >= 1.95  # not the schedule's 0.3 s: the receiver asked for 2 s


async def test_gone_disables_and_replay_sends_again(
    amqp_url: str, tmp_path: Path, recorder: Recorder
) -> None:
    gone = True

    def answer(request: Received, receiver: Receiver) -> tuple[int, dict[str, str]]:
        return (410, {}) if gone else (200, {})

    async with (
        Receiver(answer) as receiver,
        webhooks_service(amqp_url, tmp_path, {"crm": EndpointSettings(url=receiver.url)}) as service,
    ):
        await service.bus.subscribe("ops", recorder, bindings=["webhooks.#"])
        await play(service.bus, "outgoing-transfer")
        [disabled] = await recorder.wait_for(1)
        assert isinstance(disabled, WebhookEndpointDisabled) and disabled.endpoint == "crm"
        async with asyncio.timeout(10):  # the store announces nothing: look until all 6 are kept
            while len(await service.store.dead()) < 6:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        # nothing more was sent to the disabled endpoint: only what was in flight as the first
        # 410 came, at most one per chain (each chain has a lane of its own, side by side)
        chains = {r.query["id"].split("-")[0] for r in receiver.requests}
        assert len(receiver.requests) == len(chains) <= 2
        gone = False
        config = tmp_path / "callbridge.ini"
        config.write_text(
            f"[bus]\namqp_url = {amqp_url}\nexchange = {service.settings.bus.exchange}\n"
            f"[webhooks]\ndatabase = {service.settings.webhooks.database}\n"
            f"[webhook:crm]\nurl = {receiver.url}\n"
        )
        listing = await run_cli("--config", str(config), "webhooks", "dead", "list", "--endpoint", "crm")
        assert listing.count("\tcrm\t") == 6 and "410 Gone" in listing
        await run_cli("--config", str(config), "webhooks", "dead", "replay", "--since", "1h")
        await receiver.wait_for(lambda r: len(r.delivered()) == 6)
        assert await service.store.dead() == []
    replayed = [json.dumps(r.webhook()) for r in receiver.delivered()]
    assert check_webhooks("outgoing-transfer", replayed, recordings=False) == ""  # in order, complete


async def run_cli(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
async def test_deliveries_go_on_after_the_connection_drops(
    amqp_url: str, tmp_path: Path, queue_type: QueueType
) -> None:
    async with (
        Receiver() as receiver,
        webhooks_service(
            amqp_url,
            tmp_path,
            {"crm": EndpointSettings(url=receiver.url)},
            Topology(new_prefix(), queue_type),
        ) as service,
    ):
        await play(service.bus, "outgoing-transfer")
        await receiver.wait_for(lambda r: len(r.delivered()) == 6)
        before = service.bus.reconnects
        await asyncio.to_thread(close_connection, service.connection_name)
        async with asyncio.timeout(30):
            await service.bus.wait_reconnected(before)
        await play(service.bus, "missed-calls")  # through restored consumers, or not at all
        await receiver.wait_for(
            lambda r: len({json.dumps(x.query) for x in r.delivered()}) == 6 + 11, timeout=30
        )
    after = [r.webhook() for r in receiver.delivered() if str(r.query["id"]).startswith("23050")]
    unique = list({json.dumps(w): w for w in after})  # a delivery cut by the drop may come twice
    assert check_webhooks("missed-calls", unique, recordings=False) == ""


async def test_events_go_straight_to_their_chains_shard_queue(amqp_url: str, broker_prefix: str) -> None:
    names = Topology(broker_prefix)
    chains = [f"211230100614_{n}" for n in range(40)]
    sent = [make_call_ringing(chain_id=c, call_number=n) for n, c in enumerate(chains)]
    sent += [make_call_ended(chain_id=c, call_number=n) for n, c in enumerate(chains)]
    presence = ExtensionPresence(occurred_at=AT, source="test/1", seq=1, extension="101", busy=True)
    async with RabbitBus.connect(amqp_url, names=names, connection_name="shard routing it") as bus:
        channel = await bus.open_channel()
        await declare_shards(channel, names)  # as the webhooks service does at its start
        queues = [await declare_shard(channel, names, shard) for shard in range(SHARDS)]
        for event in [*sent, presence]:
            await bus.publish(event)
        await bus.flush()
        found: dict[int, list[str]] = {}
        for shard, queue in enumerate(queues):
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                found.setdefault(shard, []).append(str(message.message_id))
    wanted = {str(e.event_id): names.shard_of(e.chain_id) for e in sent}
    assert sorted(i for ids in found.values() for i in ids) == sorted(wanted)  # each once; no presence
    assert all(wanted[i] == shard for shard, ids in found.items() for i in ids)  # in its chain's shard
    order = [str(e.event_id) for e in sent]
    assert all(ids == sorted(ids, key=order.index) for ids in found.values())  # in publish order
    assert len(found) > 10  # spread over the shards


async def test_an_earlier_versions_intake_queue_is_delivered_then_retired(
    amqp_url: str, tmp_path: Path, broker_prefix: str
) -> None:
    names = Topology(broker_prefix)
    earlier = [make_call_ringing(link=n, extension=str(101 + n)) for n in range(3)]
    async with RabbitBus.connect(amqp_url, names=names, connection_name="legacy it") as bus:
        channel = await bus.open_channel()
        legacy = await channel.declare_queue(  # as an earlier version left it, holding 3 events
            names.queue(LEGACY_INTAKE),
            durable=True,
            arguments={"x-single-active-consumer": True, "x-dead-letter-exchange": names.dead_exchange},
        )
        for pattern in WEBHOOKS_BINDINGS:
            await legacy.bind(names.events_exchange, pattern)
        for event in earlier:  # published as that version did: no CC, no shard
            await bus.publish_raw(event.type, encode_event(event))
        await bus.flush()
    async with Receiver() as receiver:
        endpoint = {"crm": EndpointSettings(url=receiver.url)}
        async with webhooks_service(amqp_url, tmp_path, endpoint, names=names, keep_topology=True) as service:
            await receiver.wait_for(lambda r: len(r.delivered()) == 3)
            await service.bus.publish_raw("call.ringing", encode_event(make_call_ringing(link=9)))
            await service.bus.flush()
            kept = await channel_probe(service.bus, names.queue(LEGACY_INTAKE))
            assert kept == 0  # unbound: it takes nothing more
        assert [r.query["id"] for r in receiver.delivered()] == [e.call_id for e in earlier]
        async with webhooks_service(amqp_url, tmp_path, endpoint, names=names) as service:
            assert await channel_probe(service.bus, names.queue(LEGACY_INTAKE)) is None  # deleted


async def test_an_earlier_versions_retry_queues_are_deleted_once_empty(
    amqp_url: str, broker_prefix: str
) -> None:
    names = Topology(broker_prefix)
    policy = RetryPolicy((5, 300), 0.2)
    async with RabbitBus.connect(amqp_url, names=names, connection_name="old tiers it") as bus:
        channel = await bus.open_channel()
        for tier, waiting in ((5, 0), (300, 1)):  # as an earlier version left them
            await channel.declare_queue(
                retired_tier_queue(names, tier),
                durable=True,
                arguments={"x-dead-letter-exchange": shards_exchange(names)},
            )
            for _ in range(waiting):
                await channel.default_exchange.publish(
                    aio_pika.Message(b"{}", expiration=3600), routing_key=retired_tier_queue(names, tier)
                )
        await RabbitJobQueue(bus, policy, {}).declare()
        assert await channel_probe(bus, retired_tier_queue(names, 5)) is None  # empty: deleted
        assert await channel_probe(bus, retired_tier_queue(names, 300)) == 1  # kept until it empties
        assert await channel_probe(bus, tier_queue(names, policy.tier(300))) == 0


async def channel_probe(bus: RabbitBus, queue: str) -> int | None:
    """How many messages wait in `queue`; None when there is no such queue."""
    channel = await bus.open_channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return None
    await channel.close()
    return declared.declaration_result.message_count
