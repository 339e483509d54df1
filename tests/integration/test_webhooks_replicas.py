"""Two `callbridge webhooks` processes; one is killed with SIGKILL in the middle of deliveries.

Nothing may be lost, every duplicate must carry the webhook-id of its original, and each call
chain must still arrive in order (counting first arrivals).
"""

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aio_pika.abc import AbstractChannel, AbstractQueue
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from services.webhooks.members import OwnedShards
from shared.clock import VirtualClock
from shared.events import CallEvent
from shared.rabbit_bus import RabbitBus
from shared.rabbit_consumer import consume, watch_waiting
from shared.settings import EndpointSettings
from shared.topology import SHARDS, Topology
from simulation.driver import SimulatorDriver
from simulation.scenario import default_directory
from simulation.traffic import TrafficGenerator
from tests.factories import make_call_ended, make_call_ringing
from tests.fakes import Recorder, follow
from tests.integration.test_webhooks_rabbitmq import webhooks_service
from tests.processes import start_webhooks
from tests.receiver import Receiver, in_chains, refusing_once
from tests.webhooks_ini import SECRET, endpoint, webhooks_ini

pytestmark = pytest.mark.rabbitmq


async def test_sigkill_mid_delivery_loses_nothing_and_keeps_order(
    amqp_url: str, tmp_path: Path, recorder: Recorder, broker_prefix: str
) -> None:
    prefix = broker_prefix
    answer, failures = refusing_once("7")  # some chains fail once, then recover

    async with Receiver(answer, delay=0.01) as receiver:
        config = tmp_path / "callbridge.ini"
        crm = endpoint("crm", receiver.url, "timeout = 2\n")
        database = str(tmp_path / "webhooks.db")
        config.write_text(webhooks_ini(amqp_url, prefix, database, "300ms, 600ms, 1s, 2s, 5s", crm))
        first = await start_webhooks(config, dict(os.environ))
        second = await start_webhooks(config, dict(os.environ))
        async with RabbitBus.connect(amqp_url, names=Topology(prefix), connection_name="replicas it") as bus:
            try:
                await bus.subscribe("observer", recorder, bindings=["#"])
                generator = TrafficGenerator(
                    default_directory(), seed=5, calls_per_minute=120, max_concurrent=50
                )
                start = datetime(2026, 1, 5, 9, tzinfo=UTC)
                steps = ((start + timedelta(seconds=t), s) for t, s in generator.steps(until=600))
                clock = VirtualClock(start)
                driver = SimulatorDriver(default_directory(), steps, clock)
                tracker = await follow(driver, bus, source="it")
                published = [e for e in await recorder.wait_for(tracker.seq) if isinstance(e, CallEvent)]
                expected = {str(e.event_id) for e in published}
                await receiver.wait_for(lambda r: len(r.delivered()) >= len(expected) // 4)
                first.send_signal(signal.SIGKILL)  # the active replica, mid-stream
                await first.wait()
                # killed while releasing a chain's held deliveries, the replica leaves that chain
                # blocked until the block is due (the endpoint's timeout, 2 s, and RELEASE_GRACE, 60 s)
                # and the next sweep (15 s)
                await receiver.wait_for(
                    lambda r: {req.headers["webhook-id"] for req in r.delivered()} >= expected, timeout=180
                )
            finally:
                for replica in (first, second):
                    if replica.returncode is None:
                        replica.send_signal(signal.SIGTERM)
                        await replica.wait()
    assert first.returncode == -signal.SIGKILL
    verifier = Webhook(SECRET)
    for request in receiver.delivered():
        verifier.verify(request.body, request.headers)  # every delivery, duplicates too, is signed
    # per chain, first arrivals come in publish order; duplicates repeat their original exactly
    sent = in_chains(published)
    assert receiver.first_arrivals() == sent
    assert len(sent) > 100 and failures  # many chains; some failed and were held back meanwhile
    print(
        f"{len(published)} events in {len(sent)} chains, {len(receiver.requests)} requests, "
        f"{len(receiver.delivered()) - len(published)} duplicates, {len(failures)} chains failed once"
    )


async def test_replicas_share_the_shards_and_hand_them_over_in_order(
    amqp_url: str, tmp_path: Path, broker_prefix: str
) -> None:
    """A second replica joins while calls are delivered, takes about half of the shards, and
    leaves again: each chain's webhooks arrive complete, in order, and none twice."""
    names = Topology(broker_prefix)
    chains = [f"260105090000_{n}" for n in range(120)]
    async with Receiver(delay=0.003) as receiver:
        endpoints = {"crm": EndpointSettings(url=receiver.url, format="json", secret=(SecretStr(SECRET),))}
        async with webhooks_service(amqp_url, tmp_path, endpoints, names=names, keep_topology=True) as first:
            assert first.queue.owned == frozenset(range(SHARDS))  # alone: every shard
            sent = asyncio.create_task(publish_chains(first.bus, chains, rounds=6, pause=0.5))
            async with webhooks_service(
                amqp_url, tmp_path, endpoints, names=names, keep_topology=True
            ) as second:
                await until(
                    lambda: (
                        first.queue.owned
                        and second.queue.owned
                        and (
                            first.queue.owned | second.queue.owned == frozenset(range(SHARDS))
                            and not first.queue.owned & second.queue.owned
                        )
                    )
                )
                shared = (len(first.queue.owned), len(second.queue.owned))
                await until(lambda: len(receiver.delivered()) > len(chains) * 3)  # working side by side
            await until(lambda: first.queue.owned == frozenset(range(SHARDS)))  # the second left
            published = await sent
            await receiver.wait_for(lambda r: len(r.delivered()) >= len(published))
    assert receiver.first_arrivals() == in_chains(published)  # complete, in order per chain
    assert len(receiver.delivered()) == len(published)  # nothing twice
    assert all(12 <= n <= 52 for n in shared), shared


async def publish_chains(bus: RabbitBus, chains: list[str], rounds: int, pause: float) -> list[CallEvent]:
    """`rounds` events per chain (ringing again and again, then the end), a round every `pause` s."""
    published: list[CallEvent] = []
    for n in range(rounds):
        for number, chain in enumerate(chains):
            make = make_call_ended if n == rounds - 1 else make_call_ringing
            event = make(chain_id=chain, call_number=number, link=n + 1)
            await bus.publish(event)
            published.append(event)
        await bus.flush()
        await asyncio.sleep(pause)
    return published


async def until(condition: Callable[[], object], timeout: float = 20.0) -> None:
    """Look every 50 ms until `condition()` holds (what the replicas own is not announced)."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_shards_let_go_at_once_leave_the_connection_clean(
    amqp_url: str, broker_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A replica that takes shards and lets them go straight away (it heard another replica just
    after it started) lets each shard's backlog question finish: none is cancelled mid-answer,
    which would make aiormq close the channel under it and could jam the connection's reader."""
    names = Topology(broker_prefix)
    async with RabbitBus.connect(amqp_url, names=names, connection_name="let go") as bus:

        async def open_shard(shard: int) -> tuple[AbstractChannel, AbstractQueue]:
            channel = await bus.open_channel(prefetch=10)
            return channel, await channel.declare_queue(names.queue(f"letgo.{shard}"), durable=True)

        async def ignore(body: bytes) -> None:
            return None

        async def consume_shard(queue: AbstractQueue, until: asyncio.Event) -> None:
            await consume(queue, bytes, ignore, side_by_side=True, until=until)

        shards = OwnedShards(open_shard, consume_shard, watch_waiting)
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                await shards.take(frozenset(range(16)))
                await shards.take(frozenset())
        assert not [r for r in caplog.records if "because RPC call" in r.getMessage()]
        assert shards.owned == frozenset()
        channel = await bus.open_channel()  # the connection still answers
        await channel.declare_queue(names.queue("letgo.after"), durable=True)
        await channel.close()
