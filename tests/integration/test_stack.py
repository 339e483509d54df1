"""The services as separate processes on the real broker, started as the units and compose do
(`callbridge monitor|api|webhooks|recordings`, installed by the install script): a scenario's
classic webhooks arrive in full, recording POSTs included, and their links download an MP3 that
decodes to the talk time; every service answers /healthz, /readyz and /metrics, and is unready
while RabbitMQ is stopped."""

import asyncio
import json
import re
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from shared.http_server import free_port
from tests import mp3
from tests.broker import rabbitmq_app
from tests.conftest import EXAMPLES, check_webhooks, expected_webhooks
from tests.deployment import SERVICES, Deployment
from tests.processes import log_of, logged, spawn
from tests.receiver import Receiver

pytestmark = pytest.mark.rabbitmq
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
T = TypeVar("T")
DEFAULT_MORE = "[webhooks]\nhttp_port = 0"


async def start(
    deployment: Deployment, config: Path, service: str, ready: bytes | None
) -> asyncio.subprocess.Process:
    """Start `service` as its systemd unit does (the same command, installed by the install
    script, with `config` as its configuration file), and wait for `ready` in its log."""
    process = await spawn(deployment.argv(service), deployment.environment(service, config))
    if ready is not None:
        await logged(process, ready, f"{service} died before it started")
    return process


@dataclass(frozen=True)
class Sections:
    """What a test adds to the configuration: `endpoint`, `recordings`, `api` and `monitor` add to
    the `[webhook:crm]`, `[recordings]`, `[api]` and `[monitor]` sections; `more` ends the file
    with sections of its own, its last one `[webhooks]`; `speed` is the simulator's. The PBX's
    recordings and the archive are in `recordings_in`, the recordings ledger at `ledger` (by
    default both in the configuration's folder)."""

    endpoint: str
    recordings: str
    speed: int = 100
    api: str = ""
    monitor: str = ""
    more: str = ""
    recordings_in: Path | None = None
    ledger: str | None = None


def stack_config(
    folder: Path, amqp_url: str, prefix: str, scenario: Path | None, port: int, sections: Sections
) -> Path:
    """A configuration for all services on a private prefix; without a scenario the simulator
    generates traffic."""
    config = folder / "callbridge.ini"
    recordings_in = sections.recordings_in or folder
    ledger = sections.ledger or folder / "recordings.db"
    simulator = f"scenario = {scenario}" if scenario else "calls_per_minute = 30\nseed = 7"
    config.write_text(f"""
[bus]
amqp_url = {amqp_url}
exchange = {prefix}
[api]
{sections.api or "http_port = 0"}
[monitor]
outbox = {folder / "monitor-outbox.db"}
{sections.monitor}
[simulator]
{simulator}
speed = {sections.speed}
recordings_dir = {recordings_in / "pbx"}
[recordings]
pbx_dir = {recordings_in / "pbx"}
archive_dir = {recordings_in / "archive"}
database = {ledger}
scan_interval = 0.2
settle = 0.3
quiet = 0.5
public_url = http://127.0.0.1:{port}
token_secret = a-long-random-string-for-the-test
{sections.recordings}
[webhook:crm]
{sections.endpoint}
{sections.more or DEFAULT_MORE}
database = {folder / "webhooks.db"}
""")
    return config


async def test_a_scenario_through_the_whole_stack(
    amqp_url: str, broker_prefix: str, tmp_path: Path, deployment: Deployment
) -> None:
    port = free_port()
    async with Receiver() as receiver:
        config = stack_config(
            tmp_path,
            amqp_url,
            broker_prefix,
            EXAMPLES / "attended-transfer-hold.yaml",
            port,
            Sections(
                endpoint=f"url = {receiver.url}\nrecording_call_info = true",
                recordings=f"max_wait = 20\nhttp_host = 127.0.0.1\nhttp_port = {port}",
            ),
        )
        services = [
            await start(deployment, config, "webhooks", b"webhooks started"),
            await start(deployment, config, "recordings", b"recordings started"),
        ]
        try:
            monitor = await start(deployment, config, "monitor", None)
            assert await asyncio.wait_for(monitor.wait(), 60) == 0
            expected = len(expected_webhooks("attended-transfer-hold"))
            await receiver.wait_for(lambda r: len(r.delivered()) >= expected, timeout=60)
            posts = [r for r in receiver.delivered() if r.method == "POST"]
            async with httpx.AsyncClient() as client:
                link = str(json.loads(posts[0].body)["FILES"][0])
                download = await client.get(link)
                refused = await client.get(link.split("?")[0])
                metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        finally:
            for process in services:
                process.send_signal(signal.SIGTERM)
            codes = [await asyncio.wait_for(process.wait(), 30) for process in services]
    assert codes == [0, 0]  # both stop cleanly on SIGTERM
    plain = [r.webhook() for r in receiver.delivered()]  # the contract's form: recordings without call info
    lines = [json.dumps({"FILES": w["FILES"], "id": w["id"]} if "FILES" in w else w) for w in plain]
    assert check_webhooks("attended-transfer-hold", lines) == ""
    body = json.loads(posts[0].body)
    assert body["event"] == "incoming" and "title" in body  # recording_call_info: the link's call-end fields
    assert (download.status_code, download.headers["content-type"]) == (200, "audio/mpeg")
    assert refused.status_code == 403  # no token, no file
    converted = re.search(r"^callbridge_recordings_converted_total (\S+)$", metrics, re.M)
    assert converted is not None and float(converted.group(1)) == len(posts)  # a file per recorded link here
    assert "callbridge_recordings_failed_total 0.0" in metrics
    downloaded = tmp_path / "downloaded.mp3"
    downloaded.write_bytes(download.content)
    talk = {"230801143327_640-1": 64.7, "230801143327_640-2": 119.9}[body["id"]]  # hold included
    assert 0 <= mp3.decode(downloaded).seconds - talk < 0.3


async def test_the_api_as_a_process_answers_from_the_monitors_state(
    amqp_url: str, broker_prefix: str, tmp_path: Path, deployment: Deployment
) -> None:
    port, key = free_port(), "process-test-key-0123456789"
    config = stack_config(
        tmp_path,
        amqp_url,
        broker_prefix,
        None,
        free_port(),
        Sections(
            endpoint="url = http://127.0.0.1:9/",
            recordings="",
            speed=1,
            api=f"http_port = {port}\nkeys = {key}",
        ),
    )
    api = await start(
        deployment, config, "api", b"api started"
    )  # before the monitor: it waits for a snapshot
    monitor = await start(deployment, config, "monitor", None)
    url = f"http://127.0.0.1:{port}"
    try:
        await logged(api, b"loaded", "the api died before it had the monitor's state")
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=10) as client:
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/all.ext.get")).json()["count"] == 6
            async with client.stream("GET", "/events", params={"types": "extension.forwarding"}) as stream:
                lines = stream.aiter_lines()
                assert await anext(lines) == ": callbridge events"
                sent = await client.get("/ext.fwd.set", params={"num": "104", "status": "Custom 2"})
                assert sent.json() == {"result": "success", "reason": "", "callID": None}
                async with asyncio.timeout(10):
                    async for line in lines:
                        if line.startswith("data: "):
                            assert json.loads(line[6:])["profile"] == "Custom 2"
                            break
            assert (await client.get("/ext.state.get", params={"num": "104"})).json()["fwdName"] == "Custom 2"
            assert (
                await client.get("/ext.state.get", params={"num": "104", "key": "wrong"})
            ).status_code == 200
            assert (await client.get("/ext.state.get", headers={"X-API-Key": "wrong"})).status_code == 401
            assert "callbridge_api_requests_total" in (await client.get("/metrics")).text
    finally:
        for process in (monitor, api):
            process.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(process.wait(), 30) for process in (monitor, api)]
    assert codes == [0, 0]


async def _until_status(client: httpx.AsyncClient, path: str, status: int) -> None:
    await _until(lambda: client.get(path), lambda response: response.status_code == status)


async def test_every_service_reports_health_and_turns_unready_whilerabbitmq_app_is_stopped(
    amqp_url: str, broker_prefix: str, tmp_path: Path, deployment: Deployment
) -> None:
    ports = {service: free_port() for service in SERVICES}
    key, token, secret = "health-test-key-0123456789", "a-long-random-string-for-the-test", WEBHOOK_SECRET
    config = stack_config(
        tmp_path,
        amqp_url,
        broker_prefix,
        None,
        ports["recordings"],
        Sections(
            speed=1,
            endpoint=f"url = http://127.0.0.1:9/\nformat = json\nsecret = {secret}",
            recordings=f"http_port = {ports['recordings']}\nhttp_host = 127.0.0.1",
            api=f"http_port = {ports['api']}\nkeys = {key}",
            monitor=f"http_port = {ports['monitor']}",
            more=f"[log]\njson_lines = true\n[webhooks]\nhttp_port = {ports['webhooks']}",
        ),
    )
    started = {"monitor": b"started on the simulator driver", "api": b"api started"}
    processes = {
        s: await start(deployment, config, s, started.get(s, f"{s} started".encode())) for s in SERVICES
    }
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            urls = {service: f"http://127.0.0.1:{port}" for service, port in ports.items()}
            for service, url in urls.items():
                assert (await client.get(f"{url}/healthz")).json() == {"status": "alive"}, service
                await _until_status(client, f"{url}/readyz", 200)
                metrics = (await client.get(f"{url}/metrics")).text
                assert "callbridge_bus_connected 1.0" in metrics, service
                [frozen] = await _samples(client, url, "callbridge_gc_frozen_objects")
                assert frozen > 10_000, service  # its long-lived objects are left out of collections
                assert await _health_check(deployment, config, service) == 0, service
            published = 'callbridge_monitor_events_published_total{type="pbx.directory"}'
            assert await _samples(client, urls["monitor"], "callbridge_monitor_driver_waiting") == [0.0]
            assert await _samples(client, urls["monitor"], published) == [1.0]
            # every consumer's lag: the messages waiting in its queues
            await _until(lambda: _samples(client, urls["webhooks"], "callbridge_bus_queue_waiting"))
            await _until(lambda: _samples(client, urls["api"], "callbridge_bus_consumed_total"))
            await asyncio.to_thread(rabbitmq_app, "stop_app")
            try:
                for service, url in urls.items():
                    await _until_status(client, f"{url}/readyz", 503)
                    assert "RabbitMQ" in (await client.get(f"{url}/readyz")).text, service
                    alive = await client.get(f"{url}/healthz")
                    assert alive.status_code == 200, service  # alive all the same
                    assert await _health_check(deployment, config, service) == 1, service
            finally:
                await asyncio.to_thread(rabbitmq_app, "start_app")
            for url in urls.values():
                await _until_status(client, f"{url}/readyz", 200)  # reconnected, each of them
                counted = partial(_samples, client, url, "callbridge_bus_reconnects_total")
                await _until(counted, lambda found: found[0] >= 1)
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        codes = {s: await asyncio.wait_for(p.wait(), 30) for s, p in processes.items()}
    assert codes == dict.fromkeys(SERVICES, 0)
    for service, process in processes.items():
        log = await log_of(process)
        for line in log.splitlines():  # one format: JSON lines, as configured
            entry = json.loads(line)
            assert {"time", "level", "logger", "message"} <= set(entry), line
        for secret_text in (key, token, secret, "guest:guest"):
            assert secret_text not in log, (service, secret_text)


async def _health_check(deployment: Deployment, config: Path, service: str) -> int:
    """The compose file's health check of `service` (`callbridge health SERVICE`): its exit status."""
    check = await asyncio.create_subprocess_exec(
        *deployment.health(service),
        env=deployment.environment(service, config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await check.wait()


async def _samples(client: httpx.AsyncClient, url: str, name: str) -> list[float]:
    """The values of `name` (a metric and its labels, or a metric with any labels) in /metrics."""
    text = (await client.get(f"{url}/metrics")).text
    pattern = re.escape(name) + (r"(?:\{[^}]*\})?" if "{" not in name else "")
    return [float(value) for value in re.findall(rf"^{pattern} (\S+)$", text, re.M)]


async def _until(ask: Callable[[], Awaitable[T]], good: Callable[[T], object] = bool) -> None:
    """Ask until the answer is good (another process's state: nothing to await but it)."""
    async with asyncio.timeout(40):
        while not good(await ask()):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
