"""API answers per second and latency, next to a bare FastAPI endpoint served the same way.

    .venv/bin/python bench/api.py [--seconds 5] [--connections 50] [--calls 500]

Needs wrk (Debian/Ubuntu: apt-get install wrk). Each server runs in a process of its own on
`shared.http_server.serving` (uvicorn, one worker, uvloop and httptools), as the API service
does:
- bare: a FastAPI app with one route answering a small constant JSON object;
- the API: the monitor's simulator with `--calls` answered inbound calls in progress, on the
  in-memory bus, and the API's state cache loaded from it.
wrk asks `ext.state.get` and `pbx.callsinfo.get` (with the key in an X-API-Key header) and the
bare route with the same connections and duration; it prints requests/s and p50/p99 latency.
"""

import argparse
import asyncio
import itertools
import multiprocessing
import platform
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import SecretStr

from services.api import main as api_main
from services.api.middleware import CachedReads
from services.monitor import main as monitor
from shared import lifecycle
from shared.clock import VirtualClock
from shared.commands import SetForwarding
from shared.http_server import (
    free_port,
    serving,
)
from shared.memory_bus import InMemoryBus
from shared.settings import ApiSettings, Settings
from simulation.driver import SimulatorDriver
from simulation.scenario import Step, default_directory

KEY = "bench-key-0123456789abcdef"


def calls_in_progress(count: int) -> list[tuple[datetime, Step]]:
    """`count` inbound calls, each answered by one of the six extensions, none ending."""
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    steps: list[tuple[datetime, Step]] = []
    for n in range(count):
        label, extension = f"C{n}", f"10{1 + n % 6}"
        at = start + timedelta(seconds=n)
        fields = {"call": label, "from": f"42077700{n:04d}", "did": "PragueDID", "to": extension}
        steps.append((at, Step(n, 0, "incoming", fields)))
        steps.append((at, Step(n, 0, "ring", {"call": label, "dn": (extension,)})))
        steps.append((at, Step(n, 0, "answer", {"call": label, "dn": extension})))
    return steps


def server(kind: str, port: int, calls: int, churn: float, ready: Any) -> None:
    lifecycle.run(_serve(kind, port, calls, churn, ready))


async def _serve(kind: str, port: int, calls: int, churn: float, ready: Any) -> None:
    from fastapi import FastAPI

    if kind == "bare":
        app = FastAPI()

        @app.get("/ext.state.get")
        async def state() -> dict[str, object]:
            return {"num": "101", "registered": True, "status": "Free", "fwdName": "Available"}

        async with serving(app, "127.0.0.1", port):
            ready.set()
            await asyncio.Event().wait()
    bus = InMemoryBus()
    clock = VirtualClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    driver = SimulatorDriver(default_directory(), calls_in_progress(calls), clock, live=True)
    settings = Settings(api=ApiSettings(keys=(SecretStr(KEY),)))
    async with monitor.running(settings, bus, driver, source="bench") as followed:
        async with api_main.running(settings, bus) as api:
            if kind == "api-uncached":  # for comparison: every answer built for its request
                api.app.user_middleware = [m for m in api.app.user_middleware if m.cls is not CachedReads]
            await _answer(api, port, calls, churn, driver, ready)
        await followed.finished()


async def _answer(
    api: api_main.Api,
    port: int,
    calls: int,
    churn: float,
    driver: SimulatorDriver,
    ready: Any,  # type: ignore[name-defined]
) -> None:
    async with serving(api.app, "127.0.0.1", port):
        await api.cache.wait_until(lambda cache: len(cache.state.calls) == calls)
        ready.set()
        profiles = itertools.cycle(["Away", "Available"])
        while churn:  # the state changes (one forwarding switch after another): answers are built anew
            await driver.execute(SetForwarding(extension="106", profile=next(profiles)))
            await asyncio.sleep(1 / churn)
        await asyncio.Event().wait()  # serve until the bench's client is done (it ends this process)


def start(kind: str, calls: int, churn: float = 0.0) -> tuple[Any, int]:
    port = free_port()
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    process = context.Process(target=server, args=(kind, port, calls, churn, ready), daemon=True)
    process.start()
    if not ready.wait(60):
        raise SystemExit(f"the {kind} server did not start")
    return process, port


def wrk(url: str, seconds: int, connections: int, headers: dict[str, str]) -> tuple[float, float, float]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    for name, value in headers.items():
        command[1:1] = ["-H", f"{name}: {value}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    return rate, _percentile(output, "50%"), _percentile(output, "99%")


def _percentile(output: str, which: str) -> float:
    value, unit = re.search(rf"^\s+{which}\s+([\d.]+)(us|ms|s)", output, re.M).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument(
        "--changes", type=float, default=20.0, help="state changes per second in the last rows"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench/api.py needs wrk: apt-get install wrk")
    cores = multiprocessing.cpu_count()
    print(
        f"machine: {platform.node()}, {cores} cores, Python {platform.python_version()}; wrk -t2 "
        f"-c{args.connections} -d{args.seconds}s; {args.calls} calls in progress"
    )
    print(f"{'':52} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'of bare':>8}")
    bare, bare_port = start("bare", 0)
    api, api_port = start("api", args.calls)
    churning, churn_port = start("api", args.calls, args.changes)
    uncached, uncached_port = start("api-uncached", args.calls)
    try:
        key = {"X-API-Key": KEY}
        changing = f"(state changing {args.changes:g}/s)"
        rows = [
            ("bare FastAPI endpoint", f"http://127.0.0.1:{bare_port}/ext.state.get", {}),
            ("ext.state.get?num=101", f"http://127.0.0.1:{api_port}/ext.state.get?num=101", key),
            ("pbx.callsinfo.get", f"http://127.0.0.1:{api_port}/pbx.callsinfo.get", key),
            (f"ext.state.get {changing}", f"http://127.0.0.1:{churn_port}/ext.state.get?num=101", key),
            (f"pbx.callsinfo.get {changing}", f"http://127.0.0.1:{churn_port}/pbx.callsinfo.get", key),
            (
                "ext.state.get, no answer cache",
                f"http://127.0.0.1:{uncached_port}/ext.state.get?num=101",
                key,
            ),
            (
                "pbx.callsinfo.get, no answer cache",
                f"http://127.0.0.1:{uncached_port}/pbx.callsinfo.get",
                key,
            ),
            ("bare FastAPI endpoint (again)", f"http://127.0.0.1:{bare_port}/ext.state.get", {}),
        ]
        baseline = None
        for label, url, headers in rows:
            rate, p50, p99 = wrk(url, args.seconds, args.connections, headers)
            baseline = baseline or rate
            print(f"{label:52} {rate:9,.0f} {p50:8.2f} {p99:8.2f} {rate / baseline:8.0%}")
    finally:
        for process in (bare, api, churning, uncached):
            process.terminate()


if __name__ == "__main__":
    main()
