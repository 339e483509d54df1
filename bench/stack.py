"""The whole stack under load: the four services as processes on RabbitMQ, the simulator's
traffic generator on a generated directory, every call event delivered as signed JSON to a
receiver in its own process.

    .venv/bin/python bench/stack.py [--rate 67] [--calls 10000] [--minutes 10] [--amqp-url URL]
                                    [--pbx simulator|fake3cx] [--pbx-delay SECONDS]

The services start as their units start them (`python -m services.cli --config FILE SERVICE`),
with recording off (conversion has its own benchmark, bench/transcode.py). The monitor's
simulator starts `--rate` new calls a second (Poisson, a mean call of ~150 s, at most `--calls`
in progress) for `--minutes`, so the calls in progress ramp up and hold; then no new call comes,
the calls in progress end and the bench waits until the receiver has every chain's end. With
`--pbx fake3cx` the simulator plays a fake 3CX in a process of its own (`callbridge pbx fake`)
and the monitor follows it with its 3CX driver, as it would a real PBX: the monitor's figures are
then its own, the PBX's are shown apart (`pbx`), and an ended call's events come ~2 s after its
last leg left (the driver's grace for a transfer, `threecx/assembler.py`), which the latency
includes; `--pbx-delay` makes each GET of a participant take that long, as from a PBX that far
away.

Printed per `--window` seconds: calls in progress, webhooks received per second, event → receipt
latency (p50, p99, max: the event's own time, stamped by the simulator, or by the 3CX driver as the
update arrived, to its arrival at the receiver), CPU seconds of each service and of RabbitMQ (the
node's Erlang VM), RSS of each service, and the lag: events in the monitor's outbox (and how long
the oldest has waited) and messages waiting in the other services' queues. At the end: CPU ms per
call of each process, each service's event-loop wake-ups later than 10, 25 and 100 ms (`/metrics`),
bus messages per call (events the monitor published; messages the other services consumed), chains
started and ended at the receiver (lost: started, never ended), webhooks the receiver got twice (by
`webhook-id`). When the drain runs out with chains not ended, the `call.ended` the monitor made and
the ones received tell calls still in progress from events lost. The broker names the run created
are deleted afterwards.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.receiving import read_body, respond, serve
from shared.http_server import free_port
from tests.broker import purge

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SERVICES = ("webhooks", "recordings", "monitor", "api")  # in order of start: the api waits for the monitor
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def receiver_process(port: int, ready: Any) -> None:
    """An ASGI app that answers 200 to every webhook and keeps, for /stats: each arrival's
    latency from the event's time, the ids seen (duplicates), chains started and ended."""
    import json as json_
    from array import array
    from collections import Counter
    from datetime import datetime

    latencies = array("d")
    seen: set[bytes] = set()
    counts: Counter[str] = Counter()
    started: set[str] = set()
    ended: set[str] = set()

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if scope["path"] == "/stats":
            since = int(scope["query_string"] or 0)
            answer = json_.dumps(
                {
                    "latencies": latencies[since:].tolist(),
                    "counts": counts,
                    "started": len(started),
                    "ended": len(ended),
                    "lost": len(started - ended),
                }
            ).encode()
        else:
            arrived = time.time()
            webhook_id = dict(scope["headers"]).get(b"webhook-id", b"")
            document = json_.loads(body)
            latencies.append((arrived - datetime.fromisoformat(document["timestamp"]).timestamp()) * 1000)
            counts["duplicates" if webhook_id in seen else document["type"]] += 1
            seen.add(webhook_id)
            data = document["data"]
            if document["type"] == "call.started":
                started.add(data["chain_id"])
            elif document["type"] == "call.ended" and data.get("chain_ended"):
                ended.add(data["chain_id"])
            answer = b"ok"
        await respond(send, answer)

    serve(app, port, ready)


def directory(extensions: int) -> str:
    """A directory of `extensions` extensions (from 20000); a queue of 4 agents and a ring group
    of 3 members for every 100 extensions (from 8000 and 7000); an IVR; a trunk with ten DIDs. In
    JSON (YAML's subset), which the simulator reads without libyaml's cost (simulation/scenario.py)."""
    numbers = [str(20000 + n) for n in range(extensions)]
    teams = range(max(1, extensions // 100))
    document = {
        "extensions": [{"number": n, "name": f"Agent {n}", "recording": "off"} for n in numbers],
        "queues": [
            {"number": str(8000 + t), "name": f"Queue {t}", "agents": numbers[t * 100 : t * 100 + 4]}
            for t in teams
        ],
        "groups": [
            {"number": str(7000 + t), "name": f"Group {t}", "members": numbers[t * 100 + 50 : t * 100 + 53]}
            for t in teams
        ],
        "ivrs": [{"number": "600", "name": "Main menu"}],
        "lines": [
            {
                "number": "10000",
                "name": "Trunk",
                "dids": [{"number": f"+42022100000{d}", "name": f"DID{d}"} for d in range(10)],
            }
        ],
    }
    return json.dumps(document)


def config(folder: Path, args: argparse.Namespace, prefix: str, ports: dict[str, int], receiver: str) -> Path:
    path = folder / "callbridge.ini"
    (folder / "directory.json").write_text(directory(args.extensions))
    path.write_text(f"""
[bus]
amqp_url = {args.amqp_url}
exchange = {prefix}
[log]
level = WARNING
[pbx]
{pbx(args, ports)}
[simulator]
directory = {folder / "directory.json"}
record = false
calls_per_minute = {args.rate * 60}
max_concurrent = {args.calls}
minutes = {args.minutes}
seed = {args.seed}
recordings_dir = {folder / "pbx"}
[monitor]
outbox = {folder / "monitor-outbox.db"}
http_port = {ports["monitor"]}
[api]
http_port = {ports["api"]}
keys = {SECRET}
[recordings]
pbx_dir = {folder / "pbx"}
archive_dir = {folder / "archive"}
database = {folder / "recordings.db"}
public_url = http://127.0.0.1:9/
token_secret = {SECRET}
http_port = {ports["recordings"]}
[webhooks]
database = {folder / "webhooks.db"}
http_port = {ports["webhooks"]}
[webhook:bench]
url = {receiver}
format = json
secret = {SECRET}
events = call.#
""")
    return path


def pbx(args: argparse.Namespace, ports: dict[str, int]) -> str:
    """The `[pbx]` section: the simulator in the monitor's process, or the monitor's 3CX driver on
    a fake 3CX in a process of its own that plays `[simulator]` (`callbridge pbx fake`)."""
    if args.pbx == "simulator":
        return "driver = simulator"
    return f"driver = 3cx\nurl = http://127.0.0.1:{ports['pbx']}\nclient_id = bench\nclient_secret = {SECRET}"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


def rabbitmqctl(node: str | None) -> list[str]:
    """The command that speaks to the broker's node (None: rabbitmqctl's default)."""
    return ["rabbitmqctl", *(["-n", node] if node else [])]


def rabbitmq_pid(node: str | None) -> int:
    command = [*rabbitmqctl(node), "eval", "os:getpid()."]
    answer = subprocess.run(command, capture_output=True, text=True)
    return int(answer.stdout.strip().strip('"'))


def queue_version_policy(node: str | None, prefix: str, version: int | None) -> None:
    """The run's classic queues in `version` (a broker policy on its names: 2 is RabbitMQ
    3.10's newer classic queue index and store); None clears the policy."""
    name = f"{prefix}-queue-version"
    if version is None:
        subprocess.run([*rabbitmqctl(node), "clear_policy", name], capture_output=True, check=False)
        return
    definition = json.dumps({"queue-version": version})
    pattern = f"^{prefix.replace('.', '[.]')}[.]"
    command = [*rabbitmqctl(node), "set_policy", "--apply-to", "queues", name, pattern, definition]
    subprocess.run(command, capture_output=True, check=True)


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def spread(ordered: list[float]) -> str:
    return (
        f"p50 {percentile(ordered, 0.5):.1f} ms, p99 {percentile(ordered, 0.99):.1f} ms, "
        f"max {percentile(ordered, 1.0):.1f} ms"
    )


def samples(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield sample.name, sample.labels, sample.value


@dataclass
class MonitorFigures:
    calls: float = 0.0
    outbox: float = 0.0  # events waiting in the outbox
    oldest: float = 0.0  # seconds the oldest of them has waited
    published: dict[str, float] = field(default_factory=dict)  # events published, by type


@dataclass
class Stack:
    ports: dict[str, int]
    pids: dict[str, int]
    client: httpx.AsyncClient
    receiver: str
    latencies: int = 0  # how many the receiver has handed over so far

    async def metrics(self, service: str) -> list[tuple[str, dict[str, str], float]]:
        answer = await self.client.get(f"http://127.0.0.1:{self.ports[service]}/metrics")
        return list(samples(answer.text))

    async def monitor(self) -> MonitorFigures:
        found = MonitorFigures()
        for name, labels, value in await self.metrics("monitor"):
            if name == "callbridge_monitor_calls":
                found.calls = value
            elif name == "callbridge_monitor_events_published_total":
                found.published[labels["type"]] = value
            elif name == "callbridge_monitor_batches_sent_total":
                found.published["pbx.batch"] = value
            elif name == "callbridge_monitor_outbox_events":
                found.outbox = value
            elif name == "callbridge_monitor_outbox_oldest_seconds":
                found.oldest = value
        return found

    async def consumers(self) -> tuple[float, float]:
        """Messages the api, webhooks and recordings services handled from their queues, and the
        messages waiting in those queues (their lag)."""
        consumed = waiting = 0.0
        for service in ("api", "webhooks", "recordings"):
            for name, _, value in await self.metrics(service):
                if name == "callbridge_bus_consumed_total":
                    consumed += value
                elif name == "callbridge_bus_queue_waiting":
                    waiting += value
        return consumed, waiting

    async def received(self) -> dict[str, Any]:
        stats: dict[str, Any] = (await self.client.get(f"{self.receiver}/stats?{self.latencies}")).json()
        self.latencies += len(stats["latencies"])
        return stats

    async def late_wake_ups(self) -> dict[str, dict[str, float]]:
        """Each service's event-loop wake-ups (every 0.1 s) that came no later than each bucket's
        bound (`le`), and all of them ("+Inf"), since the service started."""
        found: dict[str, dict[str, float]] = {}
        for service in SERVICES:
            for name, labels, value in await self.metrics(service):
                if name == "callbridge_event_loop_lag_seconds_bucket":
                    found.setdefault(service, {})[labels["le"]] = value
        return found

    def cpu_now(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def rss(self) -> dict[str, float]:
        return {name: rss_mb(pid) for name, pid in self.pids.items() if name != "rabbitmq"}


async def wait_ready(
    client: httpx.AsyncClient, port: int, process: subprocess.Popen[bytes], log: str, *, fake: bool = False
) -> None:
    """Until the service is ready; `fake`: until the fake 3CX answers at all (its XAPI wants a
    token, and it has no readiness route)."""
    while True:
        if process.poll() is not None:
            raise SystemExit(f"a service died at start:\n{tail(log)}")
        try:
            answer = await client.get(
                f"http://127.0.0.1:{port}/{'xapi/v1/SystemStatus' if fake else 'readyz'}"
            )
            if answer.status_code == 200 or fake:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)


def tail(log: str) -> str:
    with open(log, encoding="utf-8", errors="replace") as lines:
        return "".join(lines.readlines()[-15:])


def start(path: Path, command: tuple[str, ...], log: str) -> subprocess.Popen[bytes]:
    """The CLI's `command` (a service as its unit starts it), its log in `log`."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "--config", str(path), *command], stderr=out, cwd=ROOT
        )


async def run(args: argparse.Namespace, folder: Path, receiver: str) -> None:
    """Start the services, measure, stop them and delete what they made on the broker (also when
    the bench itself is stopped: SIGTERM and Ctrl-C cancel it)."""
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    prefix = f"bench.{uuid4().hex[:8]}"
    fake = args.pbx == "fake3cx"
    ports = {name: free_port() for name in (*SERVICES, *(("pbx",) if fake else ()))}
    path = config(folder, args, prefix, ports, receiver)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        try:
            if args.queue_version:
                queue_version_policy(args.node, prefix, args.queue_version)
            if fake:  # the PBX first: the monitor loads its directory at start
                log = str(folder / "pbx.log")
                processes["pbx"] = start(path, ("pbx", "fake", "--get-delay", str(args.pbx_delay)), log)
                await wait_ready(client, ports["pbx"], processes["pbx"], log, fake=True)
            for name in SERVICES:
                log = str(folder / f"{name}.log")
                processes[name] = start(path, (name,), log)
                await wait_ready(client, ports[name], processes[name], log)
            pids = {name: p.pid for name, p in processes.items()} | {"rabbitmq": rabbitmq_pid(args.node)}
            stack = Stack(ports, pids, client, receiver)
            await measure(stack, args)
        finally:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                process.wait(30)
            await purge(args.amqp_url, prefix)
            if args.queue_version:
                queue_version_policy(args.node, prefix, None)


async def measure(stack: Stack, args: argparse.Namespace) -> None:
    names = list(stack.pids)
    print(
        f"{'t':>5} {'calls':>6} {'hooks/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'outbox':>7} {'age s':>6} {'queued':>7}  "
        + " ".join(f"{n[:8]:>8}" for n in names)
        + "  (CPU s in the window)   RSS MB: "
        + " ".join(n[:4] for n in names if n != "rabbitmq")
    )
    began = time.monotonic()
    first_cpu = last_cpu = stack.cpu_now()
    first_monitor = await stack.monitor()
    first_consumed, _ = await stack.consumers()
    first_wake_ups = await stack.late_wake_ups()
    everything: list[float] = []
    held: list[float] = []  # latencies while the calls in progress were at least 90 % of the aim
    top_rss = dict.fromkeys(stack.rss(), 0.0)
    arrivals_end = args.minutes * 60
    while True:
        await asyncio.sleep(args.window)  # a window of the measurement: the time is what is measured
        monitor, stats, cpu, rss = await stack.monitor(), await stack.received(), stack.cpu_now(), stack.rss()
        _, queued = await stack.consumers()
        window = sorted(stats["latencies"])
        everything += window
        if monitor.calls >= 0.9 * args.calls:
            held += window
        top_rss = {n: max(top_rss[n], rss[n]) for n in rss}
        elapsed = time.monotonic() - began
        print(
            f"{elapsed:5.0f} {monitor.calls:6.0f} {len(window) / args.window:8.1f} "
            f"{percentile(window, 0.5):8.1f} {percentile(window, 0.99):8.1f} {percentile(window, 1.0):8.1f} "
            f"{monitor.outbox:7.0f} {monitor.oldest:6.1f} {queued:7.0f}  "
            + " ".join(f"{cpu[n] - last_cpu[n]:8.2f}" for n in names)
            + "  "
            + " ".join(f"{rss[n]:.0f}" for n in rss),
            flush=True,
        )
        last_cpu = cpu
        done = elapsed > arrivals_end and monitor.calls == 0 and stats["started"] == stats["ended"]
        if done or elapsed > arrivals_end + args.drain:
            break
    consumed, _ = await stack.consumers()
    wake_ups = await stack.late_wake_ups()
    published = {k: v - first_monitor.published.get(k, 0.0) for k, v in monitor.published.items()}
    calls = published.get("call.started", 0.0)
    everything.sort()
    held.sort()
    print(f"\ncalls started: {calls:.0f}; webhooks received: {len(everything)}")
    print(f"latency, whole run: {spread(everything)}")
    if held:
        print(
            f"latency while holding >= 90 % of {args.calls} calls: p50 {percentile(held, 0.5):.1f} ms, "
            f"p99 {percentile(held, 0.99):.1f} ms, max {percentile(held, 1.0):.1f} ms ({len(held)} webhooks)"
        )
    per_call = {n: (cpu[n] - first_cpu[n]) * 1000 / max(calls, 1) for n in names}
    print(
        "CPU ms per call: "
        + ", ".join(f"{n} {v:.1f}" for n, v in per_call.items())
        + f"; the stack {sum(v for n, v in per_call.items() if n != 'pbx'):.1f}"
        + (" (not counting the fake 3CX, pbx)" if "pbx" in per_call else "")
    )

    def later(counts: dict[str, float], bound: str) -> float:
        return counts["+Inf"] - counts[bound]

    bounds = ("0.01", "0.025", "0.1")
    print(
        "event-loop wake-ups later than 10 / 25 / 100 ms: "
        + "; ".join(
            f"{service} "
            + " / ".join(f"{later(counts, b) - later(first_wake_ups[service], b):.0f}" for b in bounds)
            for service, counts in wake_ups.items()
        )
    )
    print("RSS peak MB: " + ", ".join(f"{n} {v:.0f}" for n, v in top_rss.items()))
    print(
        f"bus messages per call: {sum(published.values()) / max(calls, 1):.1f} "
        f"published by the monitor, {(consumed - first_consumed) / max(calls, 1):.1f} consumed by the others"
    )
    print(
        "published per call by type: "
        + ", ".join(
            f"{k} {v / max(calls, 1):.2f}" for k, v in sorted(published.items(), key=lambda kv: -kv[1]) if v
        )
    )
    unended = f"lost {stats['lost']}" if done else f"{stats['lost']} not ended when the drain timed out"
    print(
        f"chains started {stats['started']}, ended {stats['ended']}, {unended}; "
        f"duplicates {stats['counts'].get('duplicates', 0)}"
    )
    if not done:  # calls still in progress, or events lost: the call.ended the monitor made tell them apart
        received = (await stack.received())["counts"].get("call.ended", 0)  # read first: made >= received
        made = (await stack.monitor()).published.get("call.ended", 0.0)
        webhooks: dict[str, float] = {}  # summed over the endpoints
        for name, _, value in await stack.metrics("webhooks"):
            webhooks[name] = webhooks.get(name, 0.0) + value
        print(
            f"call.ended made by the monitor {made:.0f}, received {received} "
            f"(missing {made - received:.0f}: in the outbox, the queues or a retry's wait, or lost); "
            f"calls still in progress at the monitor {monitor.calls:.0f}; webhook retries "
            f"{webhooks.get('callbridge_webhook_retries_total', 0):.0f}, dead letters "
            f"{webhooks.get('callbridge_webhook_dead_letters_total', 0):.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=67.0, help="new calls a second")
    parser.add_argument("--calls", type=int, default=10_000, help="the most calls in progress")
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of new calls")
    parser.add_argument("--drain", type=float, default=600.0, help="seconds to wait for the last webhooks")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--extensions", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument(
        "--queue-version", type=int, choices=(1, 2), help="the classic queues in this version (a policy)"
    )
    parser.add_argument(
        "--amqp-url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    )
    parser.add_argument(
        "--pbx",
        choices=("simulator", "fake3cx"),
        default="simulator",
        help="simulator: in the monitor's process; fake3cx: the monitor's 3CX driver on a fake 3CX "
        "in a process of its own (`callbridge pbx fake`), as on a real PBX",
    )
    parser.add_argument(
        "--pbx-delay",
        type=float,
        default=0.0,
        help="with --pbx fake3cx: seconds the fake 3CX takes to answer each participant's GET "
        "(a PBX that far away)",
    )
    parser.add_argument("--node", help="the broker's node name, for rabbitmqctl (another than its default)")
    args = parser.parse_args()
    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}; {vars(args)}")
    port = free_port()
    ready = multiprocessing.get_context("spawn").Event()
    receiver = multiprocessing.get_context("spawn").Process(target=receiver_process, args=(port, ready))
    receiver.start()
    ready.wait(30)
    try:
        with tempfile.TemporaryDirectory(prefix="callbridge-stack-") as folder:
            asyncio.run(run(args, Path(folder), f"http://127.0.0.1:{port}"))
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise SystemExit(
            "stopped before the end; the services are stopped and their broker names deleted"
        ) from None
    finally:
        receiver.terminate()
        receiver.join()


if __name__ == "__main__":
    main()
