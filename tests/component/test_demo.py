"""`callbridge demo`: the simulator's traffic delivered by the webhooks service to the built-in
receiver, printed readably; the first webhook within 5 s; the API served meanwhile; recordings
converted and served; Ctrl-C stops it cleanly."""

import asyncio
import os
import signal
import sys
import time
from datetime import datetime

import httpx

from shared.http_server import free_port
from simulation.receiver import readable


def test_classic_webhooks_read_as_lines() -> None:
    at = datetime(2026, 1, 5, 9, 30, 5)
    ringing = {
        "event": "ringing",
        "callerid": "420777",
        "did": "PragueDID",
        "user": "101",
        "usertype": "queue",
        "id": "x_1-0",
    }
    assert readable(ringing, at).split() == [
        "09:30:05",
        "ringing",
        "x_1-0",
        "420777",
        "→",
        "101",
        "PragueDID",
        "(queue)",
    ]
    ended = {
        "event": "outgoing",
        "callerid": "420608",
        "user": "102",
        "finishtype": "Missed",
        "title": "Missed call",
        "id": "y_2-0",
    }
    assert "102 → 420608" in readable(ended, at) and readable(ended, at).endswith("Missed call")
    links = [
        "https://h/webapi/recording/x_1-1-1.mp3?expires=1&token=t",
        "https://h/webapi/recording/x_1-1-2.mp3",
    ]
    recording = {"FILES": links, "id": "x_1-1"}
    assert readable(recording, at).split()[1:] == ["recording", "x_1-1", *links]  # each link downloads it


async def test_the_demo_prints_its_first_webhook_within_5_s_and_serves_the_api() -> None:
    port, key = free_port(), "demo-test-key-0123456789"
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "demo", "--duration", "15", "--calls-per-minute", "12",
        "--api-port", str(port), "--api-key", key, "--recordings-port", str(free_port()),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert demo.stdout is not None
    try:
        async with asyncio.timeout(30):
            assert (await demo.stdout.readline()).startswith(b"time")  # the services are up
        began = time.monotonic()
        async with asyncio.timeout(5):
            first = (await demo.stdout.readline()).decode()
        assert " ringing " in first and time.monotonic() - began < 5
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{port}/pbx.calls.get", params={"key": key})
        assert answer.status_code == 200 and answer.json()["result"] >= 1
    finally:
        demo.terminate()
        await demo.wait()


async def test_the_demo_prints_download_links_warns_of_nothing_and_stops_cleanly_on_ctrl_c() -> None:
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "demo", "--calls-per-minute", "6", "--seed", "3",
        "--api-port", str(free_port()), "--recordings-port", str(free_port()),
        env={**os.environ, "CALLBRIDGE_SIMULATOR_SPEED": "30"},  # calls end within seconds
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        # Ctrl-C as at a terminal, also when the suite itself runs in the background (a shell
        # starts a background job with SIGINT ignored, and the demo would inherit that)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    assert demo.stdout is not None and demo.stderr is not None
    try:
        async with asyncio.timeout(90):
            while b" recording " not in (line := await demo.stdout.readline()):
                if not line:
                    why = (await demo.stderr.read()).decode(errors="replace")[-3000:]
                    raise AssertionError(f"the demo ended before a recording was announced:\n{why}")
        link = line.decode().split()[-1]
        async with httpx.AsyncClient() as client:
            download = await client.get(link)
        assert (download.status_code, download.headers["content-type"]) == (200, "audio/mpeg")
        assert download.content[:3] == b"ID3" or download.content[0] == 0xFF  # an MP3 stream
    finally:
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        _, log = await asyncio.wait_for(demo.communicate(), 30)
    assert demo.returncode == 0, log.decode()[-2000:]
    assert b"demo stopped" in log
    assert b"WARNING" not in log and b"Traceback" not in log, log.decode()[-2000:]  # a normal run


async def test_the_demo_without_traffic_still_serves_the_api_and_makes_calls() -> None:
    port, key = free_port(), "demo-test-key-0123456789"
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "demo", "--calls-per-minute", "0",
        "--api-port", str(port), "--api-key", key, "--recordings-port", "0",
        env={**os.environ, "CALLBRIDGE_SIMULATOR_SPEED": "30"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert demo.stdout is not None and demo.stderr is not None
    try:
        async with asyncio.timeout(30):
            while b"callbridge: API on" not in await demo.stderr.readline():  # it serves
                pass
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", params={"key": key}) as client:
            async with asyncio.timeout(30):  # another process: its readiness is asked, not awaited
                while (await client.get("/readyz")).status_code != 200:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            assert (await client.get("/pbx.calls.get")).json()["result"] == 0  # no traffic of its own
            made = await client.get("/makecall", params={"first": "101", "second": "420777000111"})
            assert made.status_code == 200, made.text
        async with asyncio.timeout(30):
            assert (await demo.stdout.readline()).startswith(b"time")
            first = (await demo.stdout.readline()).decode()  # the first webhook is our call's
        assert " answered " in first and "420777000111" in first, first
    finally:
        demo.terminate()
        await demo.wait()
