"""Chaos: the services as processes on the real broker, against a fake 3CX that runs as its own
process (`callbridge pbx fake`), while RabbitMQ is stopped for 90 s, or the monitor is killed
(SIGKILL) and started again, once while calls talk and once while a Call Control snapshot is on
its way. Afterwards every call event and every recording has been delivered as a webhook exactly
once, in order per chain, with one chain id per PBX call, one end per link and no gap in the
monitor's sequence. The fake plays generated traffic in real time from the moment it starts, so
that the WAVs it records are named by the wall clock, as the driver stamps the calls."""

import asyncio
import contextlib
import errno
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from shared.events import CallEnded, CallEvent, Message, RecordingReady
from shared.http_server import free_port
from shared.rabbit_bus import RabbitBus
from shared.topology import Topology
from simulation.playing import Generated, generated
from tests.broker import rabbitmq_app
from tests.processes import children, count, log_of, logged, spawn
from tests.receiver import Receiver

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]
SECRET = "a-long-client-secret-for-the-fake-3cx"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class Observer:
    """Every event on the bus, as a consumer of its own sees them (copies included)."""

    events: list[Message] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def __call__(self, event: Message) -> None:
        async with self.arrived:
            self.events.append(event)
            self.arrived.notify_all()

    async def wait_for(self, condition: Callable[[list[Message]], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout), self.arrived:
            await self.arrived.wait_for(lambda: condition(self.events))

    def unique(self) -> list[Message]:
        """The events in the order they first came, each once."""
        return list({e.event_id: e for e in reversed(self.events)}.values())[::-1]


@dataclass
class Rig:
    folder: Path
    config: Path
    observer: Observer
    receiver: Receiver
    processes: dict[str, asyncio.subprocess.Process]
    ports: dict[str, int]

    async def start(self, name: str, *command: str, ready: bytes) -> asyncio.subprocess.Process:
        argv = [sys.executable, "-m", "services.cli", "--config", str(self.config), *command]
        process = await spawn(argv, {"PATH": "/usr/bin:/bin", "HOME": str(self.folder)})
        self.processes[name] = process
        await logged(process, ready, f"{name} died before it started")
        return process

    async def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        await process.wait()


SERVICES = ("monitor", "recordings", "webhooks")


def config(
    folder: Path, amqp_url: str, prefix: str, scenario: Path, receiver: str, ports: dict[str, int]
) -> Path:
    """One file for all: the fake 3CX plays `scenario`, the monitor watches it, the recordings
    service converts what the fake records, the webhooks service sends calls and recordings;
    each service answers /readyz on its port of `ports`."""
    path = folder / "callbridge.ini"
    path.write_text(f"""
[bus]
amqp_url = {amqp_url}
exchange = {prefix}
[pbx]
driver = 3cx
url = http://127.0.0.1:{free_port()}
client_id = callbridge
client_secret = {SECRET}
snapshot_interval = 2
[simulator]
scenario = {scenario}
speed = 1
recordings_dir = {folder / "pbx"}
[monitor]
outbox = {folder / "monitor-outbox.db"}
http_port = {ports["monitor"]}
[recordings]
pbx_dir = {folder / "pbx"}
archive_dir = {folder / "archive"}
database = {folder / "recordings.db"}
scan_interval = 0.5
settle = 1
quiet = 1
max_wait = 20
keep_wav = true
public_url = http://127.0.0.1:9/
token_secret = {SECRET}
http_port = {ports["recordings"]}
[webhooks]
database = {folder / "webhooks.db"}
http_port = {ports["webhooks"]}
[webhook:crm]
url = {receiver}
format = json
secret = {WEBHOOK_SECRET}
events = call.#, recording.ready
""")
    return path


def traffic(folder: Path, minutes: float) -> Path:
    path = folder / "traffic.yaml"
    options = Generated(seed=23, minutes=minutes, calls_per_minute=10, max_concurrent=6, talk=(10, 30))
    path.write_text(generated(options))  # its start does not count: the fake begins it now
    return path


@contextlib.asynccontextmanager
async def rig(
    folder: Path, amqp_url: str, prefix: str, *, minutes: float, snapshot_delay: float = 0.0
) -> AsyncIterator[Rig]:
    async with (
        Receiver() as receiver,
        RabbitBus.connect(amqp_url, names=Topology(prefix), connection_name="observer") as bus,
    ):
        ports = {name: free_port() for name in SERVICES}
        path = config(folder, amqp_url, prefix, traffic(folder, minutes), receiver.url, ports)
        observer = Observer()
        await bus.subscribe("observer", observer, bindings=["#"])
        run = Rig(folder, path, observer, receiver, {}, ports)
        try:
            await run.start("webhooks", "webhooks", ready=b"webhooks started")
            await run.start("recordings", "recordings", ready=b"recordings started")
            delay = ["--snapshot-delay", str(snapshot_delay)] if snapshot_delay else []
            await run.start("fake", "pbx", "fake", "--start-now", *delay, ready=b"fake 3CX on")
            await run.start("monitor", "monitor", ready=b"started on the 3cx driver")
            yield run
        finally:
            for process in run.processes.values():
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
            for name, process in run.processes.items():
                await asyncio.wait_for(process.wait(), 30)
                if process.returncode not in (0, -signal.SIGTERM):
                    print(f"--- {name} ---\n{await log_of(process)}")


def answered(events: list[Message]) -> int:
    return sum(e.type == "call.answered" for e in events)


def delivered_ids(receiver: Receiver) -> set[str]:
    return {x.headers["webhook-id"] for x in receiver.delivered()}


def all_over(events: list[Message]) -> bool:
    started = {e.chain_id for e in events if e.type == "call.started"}
    ended = {e.chain_id for e in events if isinstance(e, CallEnded) and e.chain_ended}
    return bool(started) and started <= ended


def announced(events: list[Message]) -> int:
    """How many recorded files the recording webhooks name."""
    return sum(len(e.files) for e in events if isinstance(e, RecordingReady))


async def ready(run: Rig, timeout: float = 30) -> None:
    """Every service's loops are alive and its /readyz says so (within `timeout`: a supervised
    loop that failed tries again within 30 s)."""
    async with httpx.AsyncClient() as client, asyncio.timeout(timeout):
        for port in run.ports.values():
            while True:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.5)  # readiness is only there to be asked


async def finish(run: Rig) -> list[Message]:
    """Once the fake has played its traffic, every chain has ended, every file it recorded has
    been announced, every webhook delivered and every service is ready: the events, each once."""
    await logged(run.processes["fake"], b"the scenario has been played", timeout=600)
    await run.observer.wait_for(all_over, timeout=120)
    recorded = len(list((run.folder / "pbx").rglob("*.wav")))
    assert recorded, "the traffic should have recorded calls"
    await run.observer.wait_for(lambda events: announced(events) >= recorded, timeout=120)
    events = run.observer.unique()
    wanted = {str(e.event_id) for e in events if isinstance(e, CallEvent)}
    await run.receiver.wait_for(lambda r: delivered_ids(r) >= wanted, timeout=120)
    assert announced(events) == recorded  # each file once
    await ready(run)
    return events


def check(events: list[Message], receiver: Receiver) -> None:
    calls = [e for e in events if isinstance(e, CallEvent)]
    sources = {e.source for e in events if e.type.startswith(("call.", "pbx.", "extension."))}
    assert len(sources) == 1, f"one monitor run from start to end, not {sources}"
    seqs = [e.seq for e in events if e.source in sources]
    assert sorted(seqs) == list(range(1, max(seqs) + 1)), "a gap in the monitor's sequence"
    chain_of: dict[int, set[str]] = {}
    for e in calls:
        chain_of.setdefault(e.call_number, set()).add(e.chain_id)
    assert all(len(ids) == 1 for ids in chain_of.values()), "a PBX call under two chain ids"
    ends = [(e.chain_id, e.link) for e in calls if isinstance(e, CallEnded)]
    assert len(ends) == len(set(ends)), "a link ended twice"
    chain_ends = sorted(e.chain_id for e in calls if isinstance(e, CallEnded) and e.chain_ended)
    assert chain_ends == sorted({e.chain_id for e in calls}), "a chain that does not end exactly once"
    delivered = receiver.delivered()
    ids = [x.headers["webhook-id"] for x in delivered]
    assert len(ids) == len(set(ids)), "a webhook delivered twice"
    assert set(ids) == {str(e.event_id) for e in calls}
    by_chain: dict[str, list[int]] = {}
    for x in delivered:
        data = x.webhook()["data"]
        assert isinstance(data, dict)
        if data["source"] in sources:
            by_chain.setdefault(data["chain_id"], []).append(data["seq"])
    assert all(seqs == sorted(seqs) for seqs in by_chain.values()), "webhooks out of order within a chain"


async def test_rabbitmq_stopped_for_90_s_mid_traffic(
    amqp_url: str, broker_prefix: str, tmp_path: Path
) -> None:
    async with rig(tmp_path, amqp_url, broker_prefix, minutes=1.5) as run:
        await run.observer.wait_for(lambda events: answered(events) >= 1, timeout=120)
        await asyncio.to_thread(rabbitmq_app, "stop_app")
        try:
            await asyncio.sleep(90)  # the outage itself: nothing to wait for but the time
        finally:
            await asyncio.to_thread(rabbitmq_app, "start_app")
        events = await finish(run)
    check(events, run.receiver)


async def test_the_monitor_killed_mid_call_and_started_again_twice(
    amqp_url: str, broker_prefix: str, tmp_path: Path
) -> None:
    """Killed once while calls talk, once while a Call Control snapshot is on its way (the fake
    takes 1.5 s to answer each), each time away for 5 s while the calls go on."""
    async with rig(tmp_path, amqp_url, broker_prefix, minutes=1, snapshot_delay=1.5) as run:
        await run.observer.wait_for(lambda events: answered(events) >= 2, timeout=120)
        await restart_monitor(run)
        seen = answered(run.observer.events)
        await run.observer.wait_for(lambda events: answered(events) >= seen + 2, timeout=120)
        fake, asked = run.processes["fake"], b"Call Control snapshot asked"
        await logged(fake, asked, times=count(fake, asked) + 1, timeout=30)  # killed while it answers
        await restart_monitor(run)
        events = await finish(run)
    check(events, run.receiver)


async def restart_monitor(run: Rig) -> None:
    await run.kill("monitor")
    await asyncio.sleep(5)  # the monitor stays away while the calls go on
    await run.start("monitor", "monitor", ready=b"started on the 3cx driver")


@contextlib.contextmanager
def full_disk(folder: Path) -> Iterator[Path]:
    """A small file system of its own mounted at `folder` (tmpfs) and filled up by one file:
    remove that file and there is room again."""
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)], check=True)
    try:
        filler = folder / "filler"
        with filler.open("wb") as out, contextlib.suppress(OSError):
            while True:
                out.write(bytes(1 << 16))
                out.flush()
        assert os.statvfs(folder).f_bavail == 0, "the archive should be full"
        yield filler
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def conversion_processes(service: int) -> list[int]:
    """The conversion pool's processes: children of the service's forkserver."""
    servers = [c for c in children(service) if b"forkserver" in Path(f"/proc/{c}/cmdline").read_bytes()]
    return [worker for server in servers for worker in children(server)]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small full file system needs root")
async def test_a_conversion_process_killed_and_the_archive_disk_full_for_30_s(
    amqp_url: str, broker_prefix: str, tmp_path: Path
) -> None:
    """The archive's disk is full from the start: the first conversion that meets it is held,
    a process of the conversion pool is killed (SIGKILL, as the OOM killer would), and 30 s after
    the first failed write there is room again. Every file is still converted and announced once,
    and every call event delivered."""
    with full_disk(tmp_path / "archive") as filler:
        async with rig(tmp_path, amqp_url, broker_prefix, minutes=1) as run:
            recordings = run.processes["recordings"]
            await logged(recordings, os.strerror(errno.ENOSPC).encode(), timeout=120)
            held = asyncio.get_running_loop().time()
            workers = conversion_processes(recordings.pid)
            assert workers, "the conversion pool should have its processes"
            os.kill(workers[0], signal.SIGKILL)
            await logged(recordings, b"a conversion process died", timeout=30)
            await asyncio.sleep(30 - (asyncio.get_running_loop().time() - held))  # the disk stays full
            assert not list((tmp_path / "archive").rglob("*.mp3")), "nothing converted on a full disk"
            filler.unlink()
            events = await finish(run)
        check(events, run.receiver)
