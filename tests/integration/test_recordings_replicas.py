"""Two `callbridge recordings` replicas share the conversions; each file is converted once."""

import asyncio
import re
import signal
from pathlib import Path

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
            for process in [webhooks, *replicas]:
                process.send_signal(signal.SIGTERM)
            logs = []
            for process in replicas:
                await asyncio.wait_for(process.wait(), 30)
                logs.append(await log_of(process))
            await webhooks.wait()
    converted = [re.findall(r"recording (\S+\.wav) → ", log) for log in logs]
    assert all(converted), "both replicas converted some"  # the work was shared
    every = [path for paths in converted for path in paths]
    assert len(every) == len(set(every)) == CALLS  # each file once
    assert len({r.body for r in receiver.delivered()}) == CALLS  # one recording webhook per call
    # the ledger's queue takes only the events it needs (an earlier version's binding taken off)
    assert bindings_of(f"{broker_prefix}.recordings") == set(RECORDINGS_BINDINGS)
