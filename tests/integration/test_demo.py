"""`callbridge demo`: the simulator's traffic delivered by the webhooks service to the built-in
receiver, printed readably; the first webhook within 5 s; the API served meanwhile."""

import asyncio
import sys
import time
from datetime import datetime

import httpx

from services.demo_receiver import readable
from shared.http_server import free_port


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
    recording = {"FILES": ["https://h/webapi/recording/x_1-1-1.mp3?expires=1&token=t"], "id": "x_1-1"}
    assert readable(recording, at).split()[1:] == ["recording", "x_1-1", "x_1-1-1.mp3"]  # no token printed


async def test_the_demo_prints_its_first_webhook_within_5_s_and_serves_the_api() -> None:
    port, key = free_port(), "demo-test-key-0123456789"
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "demo", "--duration", "15", "--calls-per-minute", "12",
        "--api-port", str(port), "--api-key", key,
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
