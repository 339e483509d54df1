"""The services as separate processes on the real broker, started as the units and compose do
(`callbridge --config FILE monitor|webhooks|recordings`): a scenario's classic webhooks arrive in
full, recording POSTs included, and their links download an MP3 that decodes to the talk time."""

import asyncio
import json
import re
import shutil
import signal
import sys
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from shared.http_server import free_port
from tests.conftest import SHARED, check_webhooks, expected_webhooks
from tests.integration.test_bus_contract import _close_connection as close_connection
from tests.receiver import Receiver

pytestmark = pytest.mark.rabbitmq


class Logs:
    """Each started service's log, read line by line as it comes (a pipe left full would stop
    the service at its next log line)."""

    def __init__(self) -> None:
        self.lines: dict[int, list[bytes]] = {}
        self.readers: dict[int, asyncio.Task[None]] = {}
        self.news: dict[int, asyncio.Event] = {}  # set when a line arrives or the log ends

    async def read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        try:
            while line := await process.stderr.readline():
                self.lines[process.pid].append(line)
                self.news[process.pid].set()
        finally:
            self.news[process.pid].set()


LOGS = Logs()


async def start(config: Path, service: str, ready: bytes | None) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "--config", str(config), service, stderr=asyncio.subprocess.PIPE
    )
    LOGS.lines[process.pid], LOGS.news[process.pid] = [], asyncio.Event()
    LOGS.readers[process.pid] = asyncio.create_task(LOGS.read(process))
    if ready is not None:
        await logged(process, ready, f"{service} died before it started")
    return process


async def logged(process: asyncio.subprocess.Process, text: bytes, died: str = "the service died") -> None:
    """Wait until the service's log has a line with `text`."""
    news, reader = LOGS.news[process.pid], LOGS.readers[process.pid]
    async with asyncio.timeout(30):
        while not any(text in line for line in LOGS.lines[process.pid]):
            assert not reader.done(), died
            news.clear()
            await news.wait()


async def log_of(process: asyncio.subprocess.Process) -> str:
    """The whole log of a service that has ended."""
    await LOGS.readers[process.pid]
    return b"".join(LOGS.lines[process.pid]).decode()


def stack_config(
    folder: Path,
    amqp_url: str,
    scenario: Path | None,
    port: int,
    *,
    endpoint: str,
    recordings: str,
    speed: int = 100,
    api: str = "",
) -> Path:
    """A configuration for all services on a private prefix; `endpoint`, `recordings` and `api`
    add to the `[webhook:crm]`, `[recordings]` and `[api]` sections. Without a scenario the
    simulator generates traffic."""
    config = folder / "callbridge.ini"
    simulator = f"scenario = {scenario}" if scenario else "calls_per_minute = 30\nseed = 7"
    config.write_text(f"""
[bus]
amqp_url = {amqp_url}
exchange = test.{uuid4().hex[:12]}
[api]
{api or "http_port = 0"}
[simulator]
{simulator}
speed = {speed}
recordings_dir = {folder / "pbx"}
[recordings]
pbx_dir = {folder / "pbx"}
archive_dir = {folder / "archive"}
database = {folder / "recordings.db"}
scan_interval = 0.2
settle = 0.3
quiet = 0.5
public_url = http://127.0.0.1:{port}
token_secret = a-long-random-string-for-the-test
{recordings}
[webhooks]
database = {folder / "webhooks.db"}
shards = 4
http_port = 0
[webhook:crm]
{endpoint}
""")
    return config


async def test_a_scenario_through_the_whole_stack(amqp_url: str, tmp_path: Path) -> None:
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg is needed to decode the MP3s: apt-get install ffmpeg"
    port = free_port()
    async with Receiver() as receiver:
        config = stack_config(
            tmp_path,
            amqp_url,
            SHARED / "scenarios" / "attended-transfer.yaml",
            port,
            endpoint=f"url = {receiver.url}\nrecording_call_info = true",
            recordings=f"max_wait = 20\nhttp_host = 127.0.0.1\nhttp_port = {port}",
        )
        services = [
            await start(config, "webhooks", b"webhooks started"),
            await start(config, "recordings", b"recordings started"),
        ]
        try:
            monitor = await start(config, "monitor", None)
            assert await asyncio.wait_for(monitor.wait(), 60) == 0
            expected = len(expected_webhooks("attended-transfer"))
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
    assert check_webhooks("attended-transfer", lines, tmp_path) == ""
    body = json.loads(posts[0].body)
    assert body["event"] == "incoming" and "title" in body  # recording_call_info: the link's call-end fields
    assert (download.status_code, download.headers["content-type"]) == (200, "audio/mpeg")
    assert refused.status_code == 403  # no token, no file
    converted = re.search(r"^callbridge_recordings_converted_total (\S+)$", metrics, re.M)
    assert converted is not None and float(converted.group(1)) == len(posts)  # a file per recorded link here
    assert "callbridge_recordings_failed_total 0.0" in metrics
    mp3 = tmp_path / "downloaded.mp3"
    mp3.write_bytes(download.content)
    decoder = await asyncio.create_subprocess_exec(
        ffmpeg,
        "-v",
        "error",
        "-i",
        str(mp3),
        "-f",
        "s16le",
        "-ac",
        "1",
        "-ar",
        "8000",
        "-",
        stdout=asyncio.subprocess.PIPE,
    )
    pcm, _ = await decoder.communicate()
    talk = {"210701165649_698-1": 56.0, "210701165649_698-2": 60.0}[body["id"]]
    assert 0 <= len(pcm) / 2 / 8000 - talk < 0.3


async def test_the_api_as_a_process_answers_from_the_monitors_state(amqp_url: str, tmp_path: Path) -> None:
    port, key = free_port(), "process-test-key-0123456789"
    config = stack_config(
        tmp_path,
        amqp_url,
        None,
        free_port(),
        endpoint="url = http://127.0.0.1:9/",
        recordings="",
        speed=1,
        api=f"http_port = {port}\nkeys = {key}",
    )
    api = await start(config, "api", b"api started")  # before the monitor: it waits for a snapshot
    monitor = await start(config, "monitor", None)
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
    """Ask `path` until it answers `status` (another process's state: nothing to await but it)."""
    async with asyncio.timeout(40):
        while (await client.get(path)).status_code != status:  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def test_the_monitor_reports_health_and_turns_unready_without_rabbitmq(
    amqp_url: str, tmp_path: Path
) -> None:
    port, name = free_port(), f"health-{uuid4().hex[:8]}"
    config = stack_config(
        tmp_path, amqp_url, None, free_port(), endpoint="url = http://127.0.0.1:9/", recordings=""
    )
    config.write_text(config.read_text() + f"\n[monitor]\nid = {name}\nhttp_port = {port}\n")
    monitor = await start(config, "monitor", b"started on the simulator driver")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            assert (await client.get("/healthz")).json() == {"status": "alive"}
            await _until_status(client, "/readyz", 200)
            metrics = (await client.get("/metrics")).text
            assert 'callbridge_monitor_events_published_total{type="pbx.directory"} 1.0' in metrics
            await asyncio.to_thread(close_connection, name)  # as a broker restart would
            await _until_status(client, "/readyz", 503)
            assert "RabbitMQ" in (await client.get("/readyz")).json()["detail"]
            assert (await client.get("/healthz")).status_code == 200  # alive all the same
            await _until_status(client, "/readyz", 200)  # reconnected
    finally:
        monitor.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(monitor.wait(), 30) == 0
