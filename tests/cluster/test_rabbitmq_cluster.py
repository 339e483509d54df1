"""callbridge on a 3-node RabbitMQ cluster with quorum queues (tests/rabbitmq_cluster.py): the node that
leads the queues is stopped while webhooks are being delivered; every webhook still arrives, each
call chain in order, a repeat only with its original's id; the node comes back and the cluster
is whole again."""

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.clock import VirtualClock
from shared.events import CallEvent
from shared.rabbit_bus import RabbitBus
from shared.topology import Topology
from simulation.driver import SimulatorDriver
from simulation.scenario import default_directory
from simulation.traffic import TrafficGenerator
from tests.fakes import Recorder, follow
from tests.processes import log_of, start_webhooks
from tests.rabbitmq_cluster import Cluster, available
from tests.receiver import Receiver, in_chains, refusing_once
from tests.webhooks_ini import endpoint, webhooks_ini

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
PREFIX = "cbcluster"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    if why := available():
        pytest.fail(f"the cluster test cannot run here: {why}")
    formed = Cluster(tmp_path / "cluster")
    try:
        formed.form()
        yield formed
    finally:
        formed.destroy()


async def test_the_node_leading_the_queues_stops_mid_delivery_and_nothing_is_lost(
    cluster: Cluster, tmp_path: Path, recorder: Recorder
) -> None:
    answer, refused = refusing_once("3")  # some chains wait in a retry queue

    async with Receiver(answer, delay=0.02) as receiver:
        config = tmp_path / "callbridge.ini"
        retries, crm = "500ms, 1s, 2s, 5s, 10s", endpoint("crm", receiver.url)
        more = {"bus": "queue_type = quorum\n", "webhooks": "jitter = 0\n"}
        config.write_text(
            webhooks_ini(cluster.urls, PREFIX, str(tmp_path / "webhooks.db"), retries, crm, **more)
        )
        webhooks = await start_webhooks(config, {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, timeout=60)
        try:
            names = Topology(PREFIX, "quorum")
            async with RabbitBus.connect(cluster.urls, names=names, connection_name="cluster test") as bus:
                await bus.subscribe("observer", recorder, bindings=["#"])
                clock = GatedClock(START, gate=START + timedelta(minutes=3))
                steps = TrafficGenerator(
                    default_directory(), seed=3, calls_per_minute=60, max_concurrent=20
                ).steps(until=360)
                driver = SimulatorDriver(
                    default_directory(), ((START + timedelta(seconds=t), s) for t, s in steps), clock
                )
                monitor = asyncio.create_task(follow(driver, bus, source="cluster"))
                await clock.reached.wait()  # three of six minutes published: the monitor waits
                leaders = set(cluster.leaders(f"{PREFIX}.").values())
                assert len(leaders) == 1, leaders  # declared through node 1: led from there
                leader = next(node for node in cluster.nodes if node.name in leaders)
                await receiver.wait_for(lambda r: len(r.webhook_ids()) >= 100, timeout=60)
                await asyncio.to_thread(cluster.stop, leader)  # mid-delivery
                clock.open.set()  # the monitor goes on, through another node
                tracker = await monitor
                async with asyncio.timeout(60):  # the observer has heard it all (perhaps twice)
                    while not any(e.seq == tracker.seq for e in recorder.events):
                        await recorder.wait_for(len(recorder.events) + 1, timeout=60)
                unique = {str(e.event_id): e for e in recorder.events if isinstance(e, CallEvent)}
                published = list(unique.values())
                # a retry lost as its node went down comes from the delivery store within
                # BLOCK_GRACE and a sweep (services/webhooks/dispatcher.py)
                await receiver.wait_for(lambda r: r.webhook_ids() >= set(unique), timeout=120)
            await asyncio.to_thread(cluster.start, leader)
            assert cluster.running() == {node.name for node in cluster.nodes}  # healed
        finally:
            with contextlib.suppress(ProcessLookupError):
                webhooks.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(webhooks.wait(), 60)
            print(await log_of(webhooks))  # shown where the test fails
    assert code == 0
    assert receiver.first_arrivals() == in_chains(published)  # all, each chain in order
    assert refused  # some waited in a retry queue across the node's loss
    print(
        f"{len(published)} events, {len(receiver.requests)} requests, "
        f"{len(receiver.delivered()) - len(published)} repeated, leader was {leader.name}"
    )


START = datetime(2026, 1, 5, 9, tzinfo=UTC)


class GatedClock(VirtualClock):
    """A virtual clock that stops at `gate` until `open` is set (`reached` says it is there)."""

    def __init__(self, start: datetime, gate: datetime) -> None:
        super().__init__(start)
        self._gate = gate
        self.reached, self.open = asyncio.Event(), asyncio.Event()

    async def sleep_until(self, when: datetime) -> None:
        if when >= self._gate and not self.open.is_set():
            self.reached.set()
            await self.open.wait()
        await super().sleep_until(when)
