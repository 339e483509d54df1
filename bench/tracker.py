"""Tracker throughput and the simulator's highest sustainable call rate.

    .venv/bin/python bench/tracker.py [--minutes 240] [--rate 60] [--amqp-url URL]

1. Participant updates from generated traffic (realistic mix, seeded) are made first; then the
   call tracker alone consumes them on one core: updates per second (target: 50,000).
2. The simulator's sustainable call rate: generator → simulator → tracker, as fast as it goes,
   in simulated calls per wall-clock second; then the same with every event published on the
   in-memory bus (JSON round trip, one consumer) and, when RabbitMQ answers, on RabbitMQ
   (persistent messages, pipelined publisher confirms). A live simulator can sustain any call
   rate below these figures.
"""

import argparse
import asyncio
import gc
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.monitor.main import running
from services.monitor.outbox import Outbox
from services.monitor.tracker import CallTracker
from services.monitor.updates import DirectoryUpdate, ParticipantUpdate, PbxUpdate
from shared.bus import Bus
from shared.events import Message
from shared.memory_bus import InMemoryBus
from shared.rabbit_bus import RabbitBus
from shared.settings import Settings
from shared.topology import Topology
from simulation.scenario import Step, default_directory
from simulation.simulator import PbxSimulator
from simulation.traffic import TrafficGenerator
from tests.broker import purge

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")


def timeline(minutes: float, rate: float) -> tuple[list[tuple[datetime, Step]], int]:
    generator = TrafficGenerator(default_directory(), seed=42, calls_per_minute=rate, max_concurrent=10_000)
    steps = [(START + timedelta(seconds=t), step) for t, step in generator.steps(until=minutes * 60)]
    return steps, generator.started


def updates_of(steps: list[tuple[datetime, Step]]) -> list[PbxUpdate]:
    simulator = PbxSimulator(default_directory())
    out: list[PbxUpdate] = [DirectoryUpdate(START, default_directory())]
    for at, step in steps:
        out += simulator.apply(step, at)
    return out


def bench_tracker(updates: list[PbxUpdate]) -> tuple[float, int]:
    best, events = 0.0, 0
    for _ in range(3):
        tracker = CallTracker(default_directory(), zone=UTC_ZONE, source="bench")
        gc.collect()
        began = time.perf_counter()
        for update in updates:
            tracker.apply(update)
        elapsed = time.perf_counter() - began
        best, events = max(best, len(updates) / elapsed), tracker.seq
    return best, events


class _Replay:
    """A driver over prepared steps: the simulator runs inside the measurement."""

    def __init__(self, steps: list[tuple[datetime, Step]]) -> None:
        self._steps = steps
        self.simulator = PbxSimulator(default_directory())

    async def updates(self) -> "Iterator[PbxUpdate]":  # type: ignore[override]
        yield DirectoryUpdate(START, default_directory())
        for at, step in self._steps:
            for update in self.simulator.apply(step, at):
                yield update


async def pipeline(steps: list[tuple[datetime, Step]], bus: Bus | None, *, consumer: bool = True) -> float:
    consumed = 0

    async def consume(event: Message) -> None:
        nonlocal consumed
        consumed += 1

    if bus is not None and consumer:
        await bus.subscribe("bench", consume, bindings=("#",))
    began = time.perf_counter()
    if bus is None:
        tracker = CallTracker(default_directory(), zone=UTC_ZONE, source="bench")
        async for update in _Replay(steps).updates():  # type: ignore[attr-defined]
            tracker.apply(update)
    else:
        with tempfile.TemporaryDirectory() as folder:  # the outbox on disk, as in production
            outbox = Outbox(Path(folder) / "outbox.db")
            wired = running(Settings(), bus, _Replay(steps), outbox, source="bench")  # type: ignore[arg-type]
            async with wired as monitor:
                await monitor.finished()
            outbox.close()
    return time.perf_counter() - began


async def rabbit_pipeline(steps: list[tuple[datetime, Step]], url: str) -> float | None:
    try:
        names = Topology(f"bench.{uuid4().hex[:8]}")
        try:
            async with RabbitBus.connect(url, names=names, connection_name="bench") as bus:
                return await pipeline(steps, bus, consumer=False)
        finally:
            await purge(url, names.prefix)
    except ConnectionError as error:
        print(f"  RabbitMQ: skipped ({error})")
        return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=240, help="simulated traffic to generate")
    parser.add_argument("--rate", type=float, default=60, help="calls per minute in that traffic")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args()
    print(f"machine: {platform.node()}, {platform.machine()}, Python {platform.python_version()}")
    steps, calls = timeline(args.minutes, args.rate)
    updates = updates_of(steps)
    participants = sum(isinstance(u, ParticipantUpdate) for u in updates)
    print(f"traffic: {calls} calls, {len(steps)} steps, {len(updates)} updates ({participants} participants)")

    rate, events = bench_tracker(updates)
    print(f"tracker alone: {rate:,.0f} updates/s on one core ({events} events made; target 50,000)")

    elapsed = asyncio.run(pipeline(steps, None))
    per_second = len(updates) / elapsed
    print(
        f"generator steps → simulator → tracker: {calls / elapsed:,.0f} calls/s ({per_second:,.0f} updates/s)"
    )
    elapsed = asyncio.run(pipeline(steps, InMemoryBus()))
    print(f"… → in-memory bus, one consumer: {calls / elapsed:,.0f} calls/s")
    elapsed_rabbit = asyncio.run(rabbit_pipeline(steps, args.amqp_url))
    if elapsed_rabbit:
        print(
            f"… → RabbitMQ (persistent, confirms): {calls / elapsed_rabbit:,.0f} calls/s "
            f"({events / elapsed_rabbit:,.0f} events/s)"
        )


if __name__ == "__main__":
    main()
