"""[bus] queue_type: a deployment whose queues are classic, switched to quorum. The service
refuses to start with one line that says what to do; `callbridge bus convert-queues` gives every
durable queue the new type with its messages in order; the service then delivers what waited."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services import queue_types
from shared.config_file import load_settings
from shared.rabbit_bus import RabbitBus
from tests.broker import _listed
from tests.conftest import check_webhooks
from tests.integration.test_webhooks_rabbitmq import play
from tests.processes import log_of, start_webhooks
from tests.receiver import Receiver

pytestmark = pytest.mark.rabbitmq


def callbridge(config: Path, *words: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "services.cli", "--config", str(config), *words]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def types_of(names: list[str]) -> dict[str, str]:
    return {row[0]: row[1] for row in _listed("list_queues", "name", "type") if row[0] in names}


async def test_classic_queues_switched_to_quorum_keep_their_messages(
    amqp_url: str, broker_prefix: str, tmp_path: Path
) -> None:
    async with Receiver() as receiver:
        config = tmp_path / "callbridge.ini"
        base = (
            f"[bus]\namqp_url = {amqp_url}\nexchange = {broker_prefix}\n"
            f"[webhooks]\ndatabase = {tmp_path / 'webhooks.db'}\nhttp_port = 0\n"
            f"[recordings]\ndatabase = {tmp_path / 'recordings.db'}\n"
            f"[webhook:crm]\nurl = {receiver.url}\n"
        )
        config.write_text(base)  # classic: the queues declared, a call waiting in them
        classic = load_settings(config)
        async with RabbitBus.configured(classic.bus, "classic deployment") as bus:
            await queue_types.webhooks.declare_durable(bus, classic)
            await queue_types.recordings.declare_durable(bus)
            await play(bus, "attended-transfer-hold")
        config.write_text(base.replace("[bus]\n", "[bus]\nqueue_type = quorum\n"))
        durable = queue_types.durable_queues(load_settings(config))
        assert set(types_of(durable).values()) == {"classic"}

        refused = callbridge(config, "webhooks")
        assert refused.returncode == 2
        [line] = refused.stderr.strip().splitlines()[-1:]
        assert line.startswith("callbridge: error: queue ") and "is a classic queue but" in line, line
        assert "callbridge bus convert-queues" in line and "Traceback" not in refused.stderr

        converted = callbridge(config, "bus", "convert-queues")
        assert converted.returncode == 0, converted.stderr
        assert set(types_of(durable).values()) == {"quorum"} and len(types_of(durable)) == len(durable)
        waiting = sum(int(line.split("\t")[1].split()[0]) for line in converted.stdout.splitlines())
        assert waiting >= 9  # the call's webhooks waited in the shards (and the recordings queue)
        assert not types_of([f"{name}.converting" for name in durable])  # no holding queue left

        service = await start_webhooks(config, {})
        try:
            await receiver.wait_for(lambda r: len(r.delivered()) >= 9)
        finally:
            service.terminate()
            await service.wait()
        assert b"Traceback" not in (await log_of(service)).encode()
    # what waited through the conversion arrives once each, in the order it was published
    delivered = [json.dumps(r.webhook()) for r in receiver.delivered()]
    assert check_webhooks("attended-transfer-hold", delivered, recordings=False) == ""
