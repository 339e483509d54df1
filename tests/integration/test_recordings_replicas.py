"""Two `callbridge recordings` replicas share the conversions; each file is converted once."""

import asyncio
import json
import re
import signal
from pathlib import Path

import httpx
import pytest
import yaml

from shared.http_server import free_port
from shared.rabbit_bus import RabbitBus
from shared.topology import RECORDINGS_BINDINGS, RECORDINGS_RETIRED, Topology
from tests.broker import bindings_of
from tests.deployment import Deployment
from tests.integration.test_stack import Sections, stack_config, start
from tests.processes import log_of
from tests.receiver import Receiver

pytestmark = pytest.mark.rabbitmq
CALLS = 12
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def busy_scenario(path: Path) -> Path:
    """Twelve queue calls, each answered by a recording agent and talked for half a minute."""
    steps = []
    for n in range(CALLS):
        label, t, agent = f"C{n}", n * 2.0, ("101", "102", "105")[n % 3]
        steps += [
            {
                "t": t,
                "do": "incoming",
                "call": label,
                "from": f"42077700{n:04d}",
                "did": "PragueDID",
                "to": "800",
            },
            {"t": t + 0.5, "do": "ring", "call": label, "dn": [agent]},
            {"t": t + 1, "do": "answer", "call": label, "dn": agent},
            {"t": t + 31, "do": "hangup", "call": label, "by": "external"},
        ]
    steps.sort(key=lambda step: step["t"])
    path.write_text(yaml.safe_dump({"start": "2026-01-05T09:00:00", "first_call_number": 1, "steps": steps}))
    return path


async def test_replicas_share_conversions_once_each(
    amqp_url: str, broker_prefix: str, tmp_path: Path, deployment: Deployment
) -> None:
    port = free_port()
    async with Receiver() as receiver:
        config = stack_config(
            tmp_path,
            amqp_url,
            broker_prefix,
            busy_scenario(tmp_path / "busy.yaml"),
            port,
            Sections(
                speed=50,
                endpoint=f"url = {receiver.url}\nevents = recording.ready",
                recordings="workers = 2\nmax_wait = 30\nhttp_port = 0",
            ),
        )
        async with RabbitBus.connect(amqp_url, names=Topology(broker_prefix)) as bus:  # an earlier version's
            await bus.declare("recordings", bindings=RECORDINGS_RETIRED, single_active=True)
        webhooks = await start(deployment, config, "webhooks", b"webhooks started")
        replicas = [await start(deployment, config, "recordings", b"recordings started") for _ in range(2)]
        try:
            monitor = await start(deployment, config, "monitor", None)
            assert await asyncio.wait_for(monitor.wait(), 60) == 0
            await receiver.wait_for(lambda r: len(r.delivered()) >= CALLS, timeout=60)
        finally:
            converted = await stopped(webhooks, replicas)
    assert all(converted), "both replicas converted some"  # the work was shared
    every = [path for paths in converted for path in paths]
    assert len(every) == len(set(every)) == CALLS  # each file once
    assert len({r.body for r in receiver.delivered()}) == CALLS  # one recording webhook per call
    # the ledger's queue takes only the events it needs (an earlier version's binding taken off)
    assert bindings_of(f"{broker_prefix}.recordings") == set(RECORDINGS_BINDINGS)


async def test_replicas_on_two_hosts_share_the_ledger_and_serve_each_others_links(
    amqp_url: str, broker_prefix: str, tmp_path: Path, deployment: Deployment, postgres_database: str
) -> None:
    """Two replicas configured from folders of their own share RabbitMQ, the ledger on PostgreSQL
    and the storage that both hosts mount (the PBX's recordings, the archive): each file is
    converted once, and any replica serves any link."""
    mounted = tmp_path / "mounted"
    ports = [free_port(), free_port()]
    async with Receiver() as receiver:
        configs = []
        for name, port in zip(("host-a", "host-b"), ports, strict=True):
            (tmp_path / name).mkdir()
            configs.append(
                stack_config(
                    tmp_path / name,
                    amqp_url,
                    broker_prefix,
                    busy_scenario(tmp_path / name / "busy.yaml"),
                    ports[0],  # the links' address: a load balancer would stand there
                    Sections(
                        speed=50,
                        endpoint=f"url = {receiver.url}\nformat = json\nsecret = {SECRET}\n"
                        "events = recording.ready",
                        recordings=f"workers = 1\nmax_wait = 30\nhttp_port = {port}",
                        recordings_in=mounted,
                        ledger=postgres_database,
                    ),
                )
            )
        webhooks = await start(deployment, configs[0], "webhooks", b"webhooks started")
        replicas = [
            await start(deployment, config, "recordings", b"recordings started") for config in configs
        ]
        try:
            monitor = await start(deployment, configs[0], "monitor", None)
            assert await asyncio.wait_for(monitor.wait(), 60) == 0
            await receiver.wait_for(lambda r: len(r.delivered()) >= CALLS, timeout=60)
            links = [url for r in receiver.delivered() for url in json.loads(r.body)["data"]["files"]]
            async with httpx.AsyncClient(timeout=10) as client:
                served = [
                    [(await client.get(re.sub(r":\d+/", f":{port}/", url, count=1))) for url in links]
                    for port in ports
                ]
        finally:
            converted = await stopped(webhooks, replicas)
    assert all(converted), "both replicas converted some"
    every = [path for paths in converted for path in paths]
    assert len(every) == len(set(every)) == len(links) == CALLS  # each file once
    for from_a, from_b in zip(*served, strict=True):
        assert from_a.status_code == from_b.status_code == 200
        assert from_a.headers["content-type"] == from_b.headers["content-type"] == "audio/mpeg"
        assert from_a.content == from_b.content and from_a.content[0] == 0xFF  # an MPEG frame


async def stopped(
    webhooks: asyncio.subprocess.Process, replicas: list[asyncio.subprocess.Process]
) -> list[list[str]]:
    """Stop the services; the WAVs each recordings replica converted, from its log."""
    for process in [webhooks, *replicas]:
        process.send_signal(signal.SIGTERM)
    logs = []
    for process in replicas:
        await asyncio.wait_for(process.wait(), 30)
        logs.append(await log_of(process))
    await webhooks.wait()
    return [re.findall(r"recording (\S+\.wav) → ", log) for log in logs]
