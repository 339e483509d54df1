"""Webhook delivery throughput and latency, next to bare HTTP clients, in the same run.

    .venv/bin/python bench/webhooks.py [--events 3000] [--amqp-url URL]
    .venv/bin/python bench/webhooks.py --replicas 1,2,3 [--events 6000] [--database URL]

A local receiver (uvicorn, its own process) answers 200 and notes when each request arrived.
- Bare clients: one httpx AsyncClient, and the same load spread over 10 clients, posting signed
  JSON bodies at concurrency 1 and 50: requests/s and p50/p99 latency per request.
- The webhooks service (this process, real RabbitMQ, JSON format with signatures): events
  published as fast as the bus takes them, one call chain each, straight into the shard queues
  (64: the service's concurrency) and through the dispatcher: deliveries/s and p50/p99 latency
  from publish to receipt. Then the same at a steady 100 and 500 events/s.
"""

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import SecretStr

from bench.receiving import read_body, respond, serve
from services.webhooks import main as webhooks
from services.webhooks.formats import build_request
from services.webhooks.outgoing import WebhookRequest
from services.webhooks.policy import RetryPolicy
from services.webhooks.queues import RabbitJobQueue
from services.webhooks.sender import AiohttpTransport, new_session
from services.webhooks.store import DeliveryStore
from shared import lifecycle
from shared.clock import SystemClock
from shared.events import CallRinging
from shared.http_server import free_port
from shared.rabbit_bus import RabbitBus
from shared.settings import BusSettings, EndpointSettings, Settings
from shared.topology import SHARDS, Topology
from tests.broker import purge
from tests.postgres import create_schema, drop_schema, in_schema

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ROOT = Path(__file__).resolve().parent.parent


def receiver_process(port: int, ready: "multiprocessing.synchronize.Event") -> None:  # type: ignore[name-defined]
    """An ASGI app that answers 200 and keeps (webhook-id, arrival) for /stats."""
    import json

    arrivals: list[tuple[str, float]] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        await read_body(receive)
        headers = dict(scope["headers"])
        if scope["path"] == "/slow":  # an endpoint that takes 20 ms to answer
            await asyncio.sleep(0.02)
        if scope["path"] == "/stats":
            body = json.dumps(arrivals).encode()
            arrivals.clear()
        else:
            arrivals.append((headers.get(b"webhook-id", b"").decode(), time.time()))
            body = b"ok"
        await respond(send, body)

    serve(app, port, ready)


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all cores so far, from /proc/stat (Linux)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def percentiles(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    return ordered[len(ordered) // 2] * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def event(n: int) -> CallRinging:
    return CallRinging(
        occurred_at=datetime.now(UTC),
        source="bench",
        seq=n + 1,
        chain_id=f"bench_{uuid4().hex}",
        call_number=n,
        direction="inbound",
        external_number="420777000111",
        did_name="PragueDID",
        link=0,
        extension="101",
        user_type="queue",
    )


def signed(url: str, n: int) -> WebhookRequest:
    """The very request the service would send for event `n` (formats.build_request)."""
    request = build_request(url, "json", (SecretStr(SECRET),), event(n), datetime.now(UTC))
    assert request is not None
    return request


async def bare(url: str, count: int, concurrency: int, clients: int) -> tuple[float, float, float]:
    pool = [httpx.AsyncClient() for _ in range(clients)]
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def post(n: int) -> None:
        async with gate:
            request = signed(url, n)
            began = time.perf_counter()
            response = await pool[n % clients].post(url, content=request.body, headers=request.headers)
            response.raise_for_status()
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(post(n) for n in range(count)))
    elapsed = time.perf_counter() - began
    for client in pool:
        await client.aclose()
    return (count / elapsed, *percentiles(latencies))


async def bare_aiohttp(url: str, count: int, concurrency: int) -> tuple[float, float, float]:
    import aiohttp

    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def post(n: int) -> None:
            async with gate:
                request = signed(url, n)
                began = time.perf_counter()
                async with session.post(url, data=request.body, headers=request.headers) as response:
                    await response.read()
                    response.raise_for_status()
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(post(n) for n in range(count)))
        elapsed = time.perf_counter() - began
    return (count / elapsed, *percentiles(latencies))


def publish_apart(amqp_url: str, prefix: str, count: int, rate: float | None) -> dict[str, float]:
    """Publish `count` events from a child process; returns each event id's publish time."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(publisher_process, (amqp_url, prefix, count, rate))


def publisher_process(amqp_url: str, prefix: str, count: int, rate: float | None) -> dict[str, float]:
    async def publish() -> dict[str, float]:
        published: dict[str, float] = {}
        async with RabbitBus.connect(
            amqp_url, names=Topology(prefix), connection_name="bench publisher"
        ) as bus:
            began = time.time()
            for n in range(count):
                if rate:
                    await asyncio.sleep(max(0.0, began + n / rate - time.time()))
                sample = event(n)
                published[str(sample.event_id)] = time.time()
                await bus.publish(sample)
            await bus.flush()
        return published

    return lifecycle.run(publish())


async def service(
    amqp_url: str, url: str, stats_url: str, count: int, rate: float | None
) -> tuple[float, float, float]:
    names = Topology(f"bench.webhooks.{uuid4().hex[:8]}")
    settings = Settings(
        bus=BusSettings(amqp_url=amqp_url, exchange=names.prefix),
        endpoints={"bench": EndpointSettings(url=url, format="json", secret=(SecretStr(SECRET),))},
    )
    with tempfile.TemporaryDirectory() as scratch:
        store = await DeliveryStore.open(Path(scratch) / "webhooks.db")
        async with RabbitBus.connect(amqp_url, names=names, connection_name="bench webhooks") as bus:
            session = new_session()
            policy = RetryPolicy.configured(settings.webhooks)
            queue = await RabbitJobQueue(bus, policy, settings.endpoints).declare()
            transport = AiohttpTransport(session)
            wired = webhooks.running(settings, bus, queue, store, transport, SystemClock())
            try:
                await wired.__aenter__()
                # the events come from another process, as they come from the monitor
                cpu_before, machine_before = resource.getrusage(resource.RUSAGE_SELF), machine_busy()
                loop = asyncio.get_running_loop()
                published = await loop.run_in_executor(
                    None, publish_apart, amqp_url, names.prefix, count, rate
                )
                arrivals = await arrived(stats_url, count)
                cpu_after, machine_after = resource.getrusage(resource.RUSAGE_SELF), machine_busy()
            finally:
                await wired.__aexit__(None, None, None)
                await session.close()
                await store.close()
                await purge(amqp_url, names.prefix)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    print(
        f"  (service process: {cpu / count * 1000:.2f} ms of CPU per delivery, "
        f"{count / cpu:,.0f} deliveries per CPU second; whole machine "
        f"{(machine_after[0] - machine_before[0]) / (machine_after[1] - machine_before[1]):.0%} busy)"
    )
    return figures(published, arrivals, count)


async def replicas(
    count: int, args: argparse.Namespace, url: str, stats_url: str, scratch: Path
) -> tuple[float, float, float, dict[str, float]]:
    """`count` replicas as processes, events flat out: deliveries/s, p50, p99, and the CPU
    seconds of the replicas, of RabbitMQ and of the receiver, and how busy the machine was."""
    names = Topology(f"bench.webhooks.{uuid4().hex[:8]}")
    config = scratch / f"replicas-{count}.ini"
    schema = await create_schema(args.database) if args.database else None  # dropped afterwards
    database = in_schema(args.database, schema) if schema else scratch / f"replicas-{count}.db"
    config.write_text(
        f"[bus]\namqp_url = {args.amqp_url}\nexchange = {names.prefix}\n"
        f"[log]\nlevel = WARNING\n[webhooks]\ndatabase = {database}\n"
        f"[webhook:bench]\nurl = {url}\nformat = json\nsecret = {SECRET}\n"
    )
    ports = [free_port() for _ in range(count)]
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli",
            "--config",
            str(config),
            "webhooks",
            env={**os.environ, "CALLBRIDGE_WEBHOOKS_HTTP_PORT": str(port)},
            cwd=ROOT,
        )
        for port in ports
    ]
    try:
        await shared_out(ports, count)
        watched = {"replicas": [p.pid for p in processes], **args.watched}
        before, machine_before = cpu_of(watched), machine_busy()
        loop = asyncio.get_running_loop()
        published = await loop.run_in_executor(
            None, publish_apart, args.amqp_url, names.prefix, args.events, None
        )
        arrivals = await arrived(stats_url, args.events)
        after, machine_after = cpu_of(watched), machine_busy()
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        await asyncio.gather(*(p.wait() for p in processes))
        await purge(args.amqp_url, names.prefix)
        if schema:
            await drop_schema(args.database, schema)
    rate, p50, p99 = figures(published, arrivals, args.events)
    used = {name: after[name] - before[name] for name in watched}
    used["busy"] = (machine_after[0] - machine_before[0]) / (machine_after[1] - machine_before[1])
    return rate, p50, p99, used


def rabbitmq_pids() -> list[int]:
    """The broker's Erlang VM on this machine (its CPU counts with the deliveries')."""
    found = subprocess.run(["pgrep", "-o", "beam.smp"], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


def cpu_of(watched: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in watched.items()}


async def shared_out(ports: list[int], count: int) -> None:
    """Until every replica hears `count` replicas and their shards add up to all of them."""
    async with httpx.AsyncClient() as probe, asyncio.timeout(60):
        while True:
            seen: list[dict[str, float]] = []
            with contextlib.suppress(httpx.TransportError):
                for port in ports:
                    text = (await probe.get(f"http://127.0.0.1:{port}/metrics")).text
                    seen.append(
                        {
                            line.split()[0]: float(line.split()[1])
                            for line in text.splitlines()
                            if line.startswith("callbridge_webhooks_")
                        }
                    )
            owned = sum(s.get("callbridge_webhooks_shards_owned", 0) for s in seen)
            if (
                len(seen) == count
                and owned == SHARDS
                and all(s.get("callbridge_webhooks_replicas") == count for s in seen)
            ):
                return
            await asyncio.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process `pid` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def arrived(stats_url: str, count: int) -> list[tuple[str, float]]:
    """The receiver's (webhook-id, arrival) pairs until `count` different ids came."""
    arrivals: list[tuple[str, float]] = []
    async with httpx.AsyncClient() as probe, asyncio.timeout(300):
        while len({a for a, _ in arrivals}) < count:
            arrivals += (await probe.get(stats_url)).json()
            await asyncio.sleep(0.2)
    return arrivals


def figures(
    published: dict[str, float], arrivals: list[tuple[str, float]], count: int
) -> tuple[float, float, float]:
    """(deliveries/s from the first publish to the last first arrival, p50 ms, p99 ms)."""
    first: dict[str, float] = {}
    for webhook_id, at in arrivals:
        first.setdefault(webhook_id, at)
    latencies = [first[i] - published[i] for i in published]
    elapsed = max(first.values()) - min(published.values())
    return (count / elapsed, *percentiles(latencies))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--service-only", action="store_true", help="skip the bare clients (for profiling)")
    parser.add_argument("--replicas", help="compare these numbers of replica processes, e.g. 1,2,3")
    parser.add_argument(
        "--database", help="the replicas' delivery store (default: SQLite in a scratch folder)"
    )
    args = parser.parse_args()
    port = free_port()
    ready = multiprocessing.Event()
    receiver = multiprocessing.Process(target=receiver_process, args=(port, ready), daemon=True)
    receiver.start()
    ready.wait(10)
    url, stats = f"http://127.0.0.1:{port}/hook", f"http://127.0.0.1:{port}/stats"
    async with httpx.AsyncClient() as probe:  # wait until it accepts connections
        async with asyncio.timeout(10):
            while True:
                try:
                    (await probe.get(stats)).raise_for_status()
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
    machine = f"{platform.node()}, {multiprocessing.cpu_count()} cores, Python {platform.python_version()}"
    print(
        f"machine: {machine}; {args.events} signed JSON webhooks a run; receiver: uvicorn (httptools) apart"
    )
    if args.replicas:
        await compare_replicas(args, f"http://127.0.0.1:{port}/slow", stats, receiver.pid or 0)
        receiver.terminate()
        return
    print(f"{'':50} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for concurrency in () if args.service_only else (1, 50):
        for clients in (1, 10) if concurrency > 1 else (1,):
            row(
                f"bare httpx, {clients} client(s), concurrency {concurrency}",
                await bare(url, args.events, concurrency, clients),
            )
            await probe_reset(stats)
        row(
            f"bare aiohttp, 1 session, concurrency {concurrency}",
            await bare_aiohttp(url, args.events, concurrency),
        )
        await probe_reset(stats)
    row("webhooks service, flat out", await service(args.amqp_url, url, stats, args.events, None))
    for rate in (100, 500):
        row(
            f"webhooks service, steady {rate} events/s",
            await service(args.amqp_url, url, stats, args.events, float(rate)),
        )
    receiver.terminate()


async def compare_replicas(args: argparse.Namespace, url: str, stats: str, receiver: int) -> None:
    counts = [int(n) for n in args.replicas.split(",")]
    args.watched = {"RabbitMQ": rabbitmq_pids(), "receiver": [receiver]}
    print(f"replicas as processes, the endpoint answers after 20 ms, store: {args.database or 'SQLite'}")
    print(
        f"{'':28} {'per s':>7} {'p50 ms':>7} {'p99 ms':>7}  CPU s: replicas, RabbitMQ, receiver; machine busy"
    )
    results: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for count in counts:
            rate, p50, p99, used = await replicas(count, args, url, stats, Path(scratch))
            results[count] = rate
            print(
                f"{f'{count} replica(s), flat out':28} {rate:7,.0f} {p50:7.0f} {p99:7.0f}  "
                f"{used['replicas']:5.1f} {used['RabbitMQ']:5.1f} {used['receiver']:5.1f}  {used['busy']:.0%}"
            )
    for count in counts[1:]:
        print(f"{count} replicas / {counts[0]}: {results[count] / results[counts[0]]:.2f}x")


def row(label: str, result: tuple[float, float, float]) -> None:
    print(f"{label:50} {result[0]:8,.0f} {result[1]:8.1f} {result[2]:8.1f}")


async def probe_reset(stats: str) -> None:
    async with httpx.AsyncClient() as probe:
        await probe.get(stats)


if __name__ == "__main__":
    lifecycle.run(main())  # the loop the services run on
