"""Webhooks replicas on two "hosts": each runs in a folder of its own and shares only RabbitMQ and
PostgreSQL (`[webhooks] database = postgresql://…`) with the other.

A chain's first webhook fails, so it waits for a retry and the chain's later webhooks are held in
the shared store; the replica that owns the chain's shard is killed with SIGKILL. The other takes
the shard over, delivers the retry and releases what was held, in order. Another chain fails for
good: its dead letters, and the attempt log, are one list whichever host is asked, through the
command line or through a replica's HTTP side.
"""

import asyncio
import contextlib
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.webhooks.members import owner
from shared.events import CallEvent
from shared.http_server import free_port
from shared.rabbit_bus import RabbitBus
from shared.topology import SHARDS, Topology
from tests.factories import make_call_ended, make_call_ringing
from tests.processes import LOGS, log_of, logged, start_webhooks
from tests.receiver import Received, Receiver, in_chains
from tests.webhooks_ini import endpoint, webhooks_ini

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgresql]
KEY = "hosts-test-key-0123456789"
RETRYING, DOOMED = "260105090000_1", "260105090000_2"  # the chain that waits, the one that dies


class Host:
    """A folder with its own callbridge.ini, and the webhooks replica running from it."""

    def __init__(self, folder: Path, config: str) -> None:
        folder.mkdir()
        self.folder = folder
        self.config = folder / "callbridge.ini"
        self.port = free_port()
        self.config.write_text(config.replace("{port}", str(self.port)))
        self.replica: asyncio.subprocess.Process | None = None
        self.replica_id = ""

    async def start(self) -> asyncio.subprocess.Process:
        environment = {"PATH": "/usr/bin:/bin", "HOME": str(self.folder)}
        self.replica = await start_webhooks(self.config, environment, cwd=self.folder)
        started = next(line for line in LOGS.lines[self.replica.pid] if b"webhooks started" in line)
        found = re.search(rb"as replica (\S+):", started)
        assert found, started
        self.replica_id = found.group(1).decode()
        return self.replica

    def command(self, *words: str) -> str:
        """`callbridge webhooks …` on this host: what it prints."""
        argv = [sys.executable, "-m", "services.cli", "--config", str(self.config), "webhooks", *words]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=self.folder, check=True)
        return done.stdout

    async def http(self, path: str) -> object:
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.get(f"http://127.0.0.1:{self.port}{path}", headers={"X-API-Key": KEY})
        answer.raise_for_status()
        return answer.json()

    async def figure(self, name: str) -> float:
        """One of the replica's Prometheus figures (an unlabelled gauge)."""
        async with httpx.AsyncClient(timeout=10) as client:
            text = (await client.get(f"http://127.0.0.1:{self.port}/metrics")).text
        return next(
            s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name
        )

    async def stop(self) -> int | None:
        if self.replica is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            self.replica.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.replica.wait(), 30)
        if code not in (0, -signal.SIGKILL):
            print(f"--- {self.folder.name} ---\n{await log_of(self.replica)}")
        return code


async def test_a_replica_killed_on_one_host_is_continued_in_order_on_another(
    amqp_url: str, broker_prefix: str, postgres_database: str, tmp_path: Path
) -> None:
    killed = asyncio.Event()

    def answer(request: Received, receiver: Receiver) -> tuple[int, dict[str, str]]:
        chain = json.loads(request.body)["data"]["chain_id"]
        if chain == DOOMED or (chain == RETRYING and not killed.is_set()):
            return 503, {}
        return 200, {}

    async with Receiver(answer) as receiver:
        retries, crm = "500ms, 500ms, 500ms, 500ms, 500ms, 1s", endpoint("crm", receiver.url, "timeout = 2\n")
        more = {"api": f"keys = {KEY}\n", "webhooks": "jitter = 0\n", "http_port": "{port}"}
        config = webhooks_ini(amqp_url, broker_prefix, postgres_database, retries, crm, **more)
        hosts = [Host(tmp_path / name, config) for name in ("host-a", "host-b")]
        try:
            for host in hosts:
                await host.start()
            for host in hosts:  # each has heard the other: they agree on who owns what
                assert host.replica
                await logged(host.replica, b"webhooks replicas: 2", "a replica died", timeout=15)
            await shared_out(hosts)
            names = Topology(broker_prefix)
            members = {host.replica_id for host in hosts}
            doomed_host, survivor = sorted(
                hosts, key=lambda h: h.replica_id != owner(names.shard_of(RETRYING), members)
            )
            published = await publish(amqp_url, names)
            wanted = {str(e.event_id) for e in published}
            first = str(next(e.event_id for e in published if e.chain_id == RETRYING))
            # the chain's first webhook failed twice (a retry is pending) and the rest is held
            await receiver.wait_for(lambda r: sum(q.headers["webhook-id"] == first for q in r.requests) >= 2)
            assert await held(postgres_database, RETRYING) == 2
            assert doomed_host.replica
            doomed_host.replica.send_signal(signal.SIGKILL)
            assert await doomed_host.replica.wait() == -signal.SIGKILL
            killed.set()
            doomed = {str(e.event_id) for e in published if e.chain_id == DOOMED}
            await receiver.wait_for(lambda r: r.webhook_ids() >= wanted - doomed, timeout=60)
            await doomed_host.start()  # the host comes back: one list, wherever asked
            dead = await until_dead(survivor, 3)
            listings = [host.command("dead", "list") for host in hosts]
            attempts = [host.command("attempts", "--limit", "1000") for host in hosts]
            over_http = [await host.http("/dead") for host in hosts]
            logs_over_http = [await host.http("/attempts?limit=1000") for host in hosts]
        finally:
            codes = [await host.stop() for host in hosts]
    assert codes == [0, 0]
    assert receiver.first_arrivals() == in_chains(e for e in published if e.chain_id != DOOMED)
    assert {d["chain"] for d in dead} == {DOOMED} and len(dead) == 3  # its webhooks, given up on
    assert listings[0] == listings[1] and DOOMED in listings[0]
    assert attempts[0] == attempts[1] and RETRYING in attempts[0]
    assert over_http[0] == over_http[1] == dead
    assert logs_over_http[0] == logs_over_http[1]
    retried = [a for a in logs_over_http[0] if isinstance(a, dict) and a["chain"] == RETRYING]
    assert {a["outcome"] for a in retried} == {"Delivered", "Failed"}, retried


async def shared_out(hosts: list[Host]) -> None:
    """Wait until the replicas' figures show the shards split between them, each about half."""
    async with asyncio.timeout(15):
        while True:
            owned = [await host.figure("callbridge_webhooks_shards_owned") for host in hosts]
            replicas = [await host.figure("callbridge_webhooks_replicas") for host in hosts]
            if sum(owned) == SHARDS and replicas == [2, 2]:
                break
            await asyncio.sleep(0.1)  # the hand-over is not announced: look again
    assert all(SHARDS / 4 < n < SHARDS * 3 / 4 for n in owned), owned


async def publish(amqp_url: str, names: Topology) -> list[CallEvent]:
    """Three webhooks for each of 20 chains, the retrying and the doomed one among them."""
    chains = [f"260105090000_{n}" for n in range(1, 21)]
    published: list[CallEvent] = []
    async with RabbitBus.connect(amqp_url, names=names, connection_name="hosts test") as bus:
        for link in (1, 2, 3):
            for number, chain in enumerate(chains):
                make = make_call_ended if link == 3 else make_call_ringing
                event = make(chain_id=chain, call_number=number, link=link)
                await bus.publish(event)
                published.append(event)
            await bus.flush()
    return published


async def held(database: str, chain: str) -> int:
    """How many of `chain`'s deliveries wait in the shared store behind its blocker."""
    async with await psycopg.AsyncConnection.connect(database) as connection:
        cursor = await connection.execute("SELECT count(*) FROM held WHERE key LIKE %s", (f"%|{chain}",))
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def until_dead(host: Host, count: int) -> list[dict[str, object]]:
    """The dead letters as `host` lists them over HTTP, once there are `count` (dead-lettering
    follows the retry schedule, which nothing announces: look every 100 ms)."""
    async with asyncio.timeout(60):
        while len(dead := await host.http("/dead")) < count:  # type: ignore[arg-type]  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    assert isinstance(dead, list)
    return dead
