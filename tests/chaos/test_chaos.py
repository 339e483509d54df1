"""Chaos: the services as processes on the real broker, against a fake 3CX that runs as its own
process (`callbridge pbx fake`), while RabbitMQ is stopped for 90 s, or the monitor is killed
(SIGKILL) and started again, once while calls talk and once while a Call Control snapshot is on
its way. Afterwards every call event has been delivered as a webhook exactly once, in order per
chain, with one chain id per PBX call, one end per link and no gap in the monitor's sequence."""

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from shared.events import CallEnded, CallEvent, Message
from shared.http_server import free_port
from shared.rabbit_bus import RabbitBus
from shared.topology import Topology
from simulation.playing import Generated, generated
from tests.broker import rabbitmq_app
from tests.processes import count, log_of, logged, spawn
from tests.receiver import Receiver

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]
SECRET = "a-long-client-secret-for-the-fake-3cx"


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


def config(folder: Path, amqp_url: str, prefix: str, scenario: Path, speed: float) -> Path:
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
speed = {speed}
[monitor]
outbox = {folder / "monitor-outbox.db"}
http_port = 0
[webhooks]
database = {folder / "webhooks.db"}
http_port = 0
""")
    return path


def traffic(folder: Path, minutes: float, seed: int) -> Path:
    path = folder / "traffic.yaml"
    options = Generated(
        seed=seed, minutes=minutes, calls_per_minute=8, max_concurrent=6, start=datetime(2026, 3, 2, 9)
    )
    path.write_text(generated(options))
    return path


@contextlib.asynccontextmanager
async def rig(
    folder: Path, amqp_url: str, prefix: str, *, minutes: float, speed: float, snapshot_delay: float = 0.0
) -> AsyncIterator[Rig]:
    scenario = traffic(folder, minutes, seed=23)
    path = config(folder, amqp_url, prefix, scenario, speed)
    with path.open("a") as ini:
        ini.write(
            "[webhook:crm]\nformat = json\nsecret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\nevents = call.#\n"
        )
    async with (
        Receiver() as receiver,
        RabbitBus.connect(amqp_url, names=Topology(prefix), connection_name="observer") as bus,
    ):
        with path.open("a") as ini:
            ini.write(f"url = {receiver.url}\n")
        observer = Observer()
        await bus.subscribe("observer", observer, bindings=["#"])
        run = Rig(folder, path, observer, receiver, {})
        try:
            await run.start("webhooks", "webhooks", ready=b"webhooks started")
            delay = ["--snapshot-delay", str(snapshot_delay)] if snapshot_delay else []
            await run.start("fake", "pbx", "fake", *delay, ready=b"fake 3CX on")
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


def all_over(events: list[Message]) -> bool:
    started = {e.chain_id for e in events if e.type == "call.started"}
    ended = {e.chain_id for e in events if isinstance(e, CallEnded) and e.chain_ended}
    return bool(started) and started <= ended


async def finish(run: Rig) -> list[Message]:
    """Once the fake has played its scenario and every chain has ended: the events, each once."""
    await logged(run.processes["fake"], b"the scenario has been played", timeout=600)
    await run.observer.wait_for(all_over, timeout=120)
    events = run.observer.unique()
    wanted = {str(e.event_id) for e in events if isinstance(e, CallEvent)}
    await run.receiver.wait_for(
        lambda r: {x.headers["webhook-id"] for x in r.delivered()} >= wanted, timeout=120
    )
    return events


def check(events: list[Message], receiver: Receiver) -> None:
    sources = {e.source for e in events if e.type.startswith(("call.", "pbx.", "extension."))}
    assert len(sources) == 1, f"one monitor run from start to end, not {sources}"
    seqs = [e.seq for e in events if e.source in sources]
    assert sorted(seqs) == list(range(1, max(seqs) + 1)), "a gap in the monitor's sequence"
    calls = [e for e in events if isinstance(e, CallEvent)]
    chain_of: dict[int, set[str]] = {}
    for e in calls:
        chain_of.setdefault(e.call_number, set()).add(e.chain_id)
    assert all(len(ids) == 1 for ids in chain_of.values()), {n: c for n, c in chain_of.items() if len(c) > 1}
    ends = [(e.chain_id, e.link) for e in calls if isinstance(e, CallEnded)]
    assert len(ends) == len(set(ends)), "a link ended twice"
    chain_ends = [e.chain_id for e in calls if isinstance(e, CallEnded) and e.chain_ended]
    assert sorted(chain_ends) == sorted({e.chain_id for e in calls}), "a chain that does not end exactly once"
    delivered = [x for x in receiver.delivered()]
    ids = [x.headers["webhook-id"] for x in delivered]
    assert len(ids) == len(set(ids)), "a webhook delivered twice"
    assert set(ids) == {str(e.event_id) for e in calls}
    by_chain: dict[str, list[int]] = {}
    for x in delivered:
        data = x.webhook()["data"]
        assert isinstance(data, dict)
        by_chain.setdefault(data["chain_id"], []).append(data["seq"])
    assert all(seqs == sorted(seqs) for seqs in by_chain.values()), "webhooks out of order within a chain"


async def test_rabbitmq_stopped_for_90_s_mid_traffic(
    amqp_url: str, broker_prefix: str, tmp_path: Path
) -> None:
    async with rig(tmp_path, amqp_url, broker_prefix, minutes=5, speed=2) as run:
        await run.observer.wait_for(
            lambda events: any(e.type == "call.answered" for e in events), timeout=120
        )
        await asyncio.to_thread(rabbitmq_app, "stop_app")
        try:
            await asyncio.sleep(90)  # the outage itself: nothing to wait for but the time
        finally:
            await asyncio.to_thread(rabbitmq_app, "start_app")
        events = await finish(run)
    check(events, run.receiver)


@pytest.mark.parametrize(
    "snapshot_delay", [0.0, 1.5], ids=["while calls talk", "while a snapshot is on its way"]
)
async def test_the_monitor_killed_mid_call_and_started_again(
    amqp_url: str, broker_prefix: str, tmp_path: Path, snapshot_delay: float
) -> None:
    async with rig(
        tmp_path, amqp_url, broker_prefix, minutes=4, speed=4, snapshot_delay=snapshot_delay
    ) as run:
        await run.observer.wait_for(
            lambda events: sum(e.type == "call.answered" for e in events) >= 2, timeout=120
        )
        if snapshot_delay:  # the next snapshot asked for: killed while the fake takes its time
            fake, asked = run.processes["fake"], b"Call Control snapshot asked"
            await logged(fake, asked, times=count(fake, asked) + 1, timeout=30)
        await run.kill("monitor")
        await asyncio.sleep(5)  # the monitor stays away while the calls go on
        await run.start("monitor", "monitor", ready=b"started on the 3cx driver")
        events = await finish(run)
    check(events, run.receiver)
