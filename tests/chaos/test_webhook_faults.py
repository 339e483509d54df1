"""Chaos for deliveries: two `callbridge webhooks` replicas as processes, on the real broker, and
endpoints that misbehave: one hangs (it answers nothing until the test lets it), one answers 429
with `Retry-After: 7` the first time for each chain, one is down (nothing listens) through the
first part of the retry schedule, and one works. Meanwhile the replicas' broker connections are
cut (not killed: their prefetched messages must not be delivered twice). What must hold: the
working endpoint gets everything while the hanging one still hangs; afterwards every endpoint has
every event, each chain's first arrivals in order, and a repeat only with the same webhook-id
and body."""

import asyncio
import contextlib
import json
import signal
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.webhooks.store import DeliveryStore
from shared.clock import VirtualClock
from shared.events import CallEvent
from shared.http_server import free_port
from shared.rabbit_bus import RabbitBus
from shared.topology import Topology
from simulation.driver import SimulatorDriver
from simulation.scenario import default_directory
from simulation.traffic import TrafficGenerator
from tests.broker import close_connection
from tests.fakes import Recorder, follow
from tests.processes import log_of, start_webhooks
from tests.receiver import Received, Receiver, in_chains
from tests.webhooks_ini import endpoint, webhooks_ini

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


async def test_endpoints_that_misbehave_cost_only_themselves_and_a_cut_connection_loses_nothing(
    amqp_url: str, broker_prefix: str, tmp_path: Path, recorder: Recorder
) -> None:
    answered_once: set[str] = set()

    def busy(request: Received, receiver: Receiver) -> tuple[int, dict[str, str]]:
        chain = json.loads(request.body)["data"]["chain_id"]
        if chain not in answered_once:
            answered_once.add(chain)
            return 429, {"Retry-After": "7"}
        return 200, {}

    hanging = asyncio.Event()
    down_port = free_port()
    async with Receiver() as works, Receiver(busy) as slow, Receiver(hold_until=hanging) as hangs:
        config = tmp_path / "callbridge.ini"
        calls = "events = call.#\n"
        endpoints = (
            endpoint("works", works.url, calls),
            endpoint("busy", slow.url, calls),
            endpoint("hangs", hangs.url, calls + "timeout = 10\n"),
            endpoint("down", f"http://127.0.0.1:{down_port}/hook", calls),
        )
        retries, database = "1s, 2s, 4s, 8s, 16s, 32s", str(tmp_path / "webhooks.db")
        ini = webhooks_ini(amqp_url, broker_prefix, database, retries, *endpoints, webhooks="jitter = 0\n")
        config.write_text(ini)
        environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        replicas = [await start_webhooks(config, environment) for _ in range(2)]
        try:
            async with RabbitBus.connect(
                amqp_url, names=Topology(broker_prefix), connection_name="faults"
            ) as bus:
                await bus.subscribe("observer", recorder, bindings=["#"])
                start = datetime(2026, 1, 5, 9, tzinfo=UTC)
                generator = TrafficGenerator(
                    default_directory(), seed=9, calls_per_minute=60, max_concurrent=20
                )
                steps = ((start + timedelta(seconds=t), s) for t, s in generator.steps(until=300))
                tracker = await follow(SimulatorDriver(default_directory(), steps, VirtualClock(start)), bus)
                published = [e for e in await recorder.wait_for(tracker.seq) if isinstance(e, CallEvent)]
            wanted = {str(e.event_id) for e in published}
            # the endpoint that works has it all while another hangs: one shard's line behind the
            # hanging one would take 10 s per chain in it
            await works.wait_for(lambda r: r.webhook_ids() >= wanted, timeout=15)
            assert not hangs.delivered()
            await asyncio.to_thread(close_connection, "callbridge webhooks")  # both replicas, mid-stream
            async with Receiver(port=down_port) as up:  # the endpoint that was down comes back
                hanging.set()
                for receiver in (slow, hangs, up):
                    await receiver.wait_for(lambda r: r.webhook_ids() >= wanted, timeout=180)
                for receiver in (works, slow, hangs, up):
                    assert receiver.first_arrivals() == in_chains(published)
        finally:
            for replica in replicas:
                with contextlib.suppress(ProcessLookupError):  # one that died: its log says why
                    replica.send_signal(signal.SIGTERM)
            codes = [await asyncio.wait_for(r.wait(), 30) for r in replicas]
            for replica, code in zip(replicas, codes, strict=True):
                if code != 0:
                    print(f"--- replica {replica.pid} ---\n{await log_of(replica)}")
            assert codes == [0, 0]
    assert len(answered_once) > 20  # every chain was refused once with a Retry-After
    for chain, requests in by_chain(slow).items():
        refused, accepted = requests[0], requests[-1]
        assert refused.status == 429 and accepted.at - refused.at >= 7, chain  # never sooner
    store = await DeliveryStore.open(tmp_path / "webhooks.db")
    failed = {a.event_id for a in await store.attempts(endpoint="down", limit=1000)}
    await store.close()
    assert failed  # the endpoint that was down failed first, and was retried until it came back


def by_chain(receiver: Receiver) -> dict[str, list[Received]]:
    chains: dict[str, list[Received]] = defaultdict(list)
    for request in receiver.requests:
        chains[json.loads(request.body)["data"]["chain_id"]].append(request)
    return chains
