"""`callbridge monitor` on the real broker: a scenario's events arrive complete, in order, numbered."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.webhooks.classic import classic_payload
from services.webhooks.shards import declare_shards, shard_queue
from shared.events import CallEvent, Message, parse_event
from shared.rabbit_bus import RabbitBus
from shared.topology import SHARDS, Topology
from tests.conftest import EXAMPLES, check_webhooks

pytestmark = pytest.mark.rabbitmq


def monitor_env(amqp_url: str, prefix: str, scenario: Path, recordings: Path) -> dict[str, str]:
    return os.environ | {
        "CALLBRIDGE_CONFIG": "",
        "CALLBRIDGE_BUS_AMQP_URL": amqp_url,
        "CALLBRIDGE_BUS_EXCHANGE": prefix,
        "CALLBRIDGE_SIMULATOR_SCENARIO": str(scenario),
        "CALLBRIDGE_SIMULATOR_SPEED": "200",
        "CALLBRIDGE_SIMULATOR_RECORDINGS_DIR": str(recordings),
        "CALLBRIDGE_MONITOR_ID": "it",
        "CALLBRIDGE_MONITOR_OUTBOX": str(recordings / "monitor-outbox.db"),
    }


async def test_monitor_publishes_a_scenario_durably_and_in_order(
    amqp_url: str, tmp_path: Path, broker_prefix: str
) -> None:
    prefix = broker_prefix
    scenario = EXAMPLES / "attended-transfer-hold.yaml"
    names = Topology(prefix)
    async with RabbitBus.connect(amqp_url, names=names, connection_name="webhooks queues") as bus:
        await declare_shards(await bus.open_channel(), names)  # the webhooks service has started once
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "monitor",
        env=monitor_env(amqp_url, prefix, scenario, tmp_path),
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    assert b"guest:guest" not in stderr  # the broker password is never logged

    # The monitor has exited: its call events wait in the durable shard queues.
    async with RabbitBus.connect(amqp_url, names=names, connection_name="test consumer") as bus:
        channel = await bus.open_channel()
        shards: list[list[Message]] = []
        for shard in range(SHARDS):
            queue = await channel.declare_queue(shard_queue(names, shard), passive=True)
            shards.append([])
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                shards[-1].append(parse_event(message.body))
    events = sorted((e for queue in shards for e in queue), key=lambda e: e.seq)
    call_events = [e for e in events if isinstance(e, CallEvent)]
    assert len(call_events) == len(events) == 11  # two chain starts and the nine classic call events
    for queue in shards:  # in publish order
        assert [e.seq for e in queue] == sorted(e.seq for e in queue)
    for chain in {e.chain_id for e in call_events}:  # a chain's events all in its one queue
        assert sum(any(isinstance(e, CallEvent) and e.chain_id == chain for e in q) for q in shards) == 1
    assert len({e.source for e in events}) == 1 and events[0].source.startswith("it/")

    actual = [json.dumps(p) for p in map(classic_payload, events) if p is not None]
    assert check_webhooks("attended-transfer-hold", actual, recordings=False) == ""
    recorded = [p.parent.name for p in tmp_path.glob("*/*.wav")]  # noqa: ASYNC240 (a test's scratch folder)
    assert sorted(recorded) == ["201", "205"]  # 204, who took the second call, records nothing


def test_monitor_without_a_broker_says_so(tmp_path: Path) -> None:
    env = monitor_env(
        "amqp://guest:hunter2@127.0.0.1:1/", "test.none", EXAMPLES / "outgoing-transfer.yaml", tmp_path
    )
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "monitor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "RabbitMQ not reachable at amqp://guest:***@127.0.0.1:1/" in result.stderr
    assert "hunter2" not in result.stderr
