"""Where the monitor's memory goes with many calls in progress: the call tracker's own state
against the simulated PBX and its traffic generator, which share the monitor's process in
`bench/stack.py` but not in a deployment on a 3CX.

    .venv/bin/python bench/monitor_memory.py [--rate 73] [--minutes 6] [--extensions 20000]

The generator's traffic on `bench/stack.py`'s directory goes through the simulator into the
tracker, in one process, with no bus, for `--minutes` of simulated time (as fast as it goes).
`tracemalloc` then counts what was allocated since the start and is still alive, by the
project's folder that allocated it (the last of the project's frames: a pydantic model made by
the tracker counts as the tracker's), and the largest places in the tracker.
"""

import argparse
import collections
import gc
import sys
import tempfile
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import directory  # noqa: E402
from services.monitor.tracker import CallTracker  # noqa: E402
from services.monitor.updates import DirectoryUpdate  # noqa: E402
from simulation.scenario import load_directory  # noqa: E402
from simulation.simulator import PbxSimulator  # noqa: E402
from simulation.traffic import TrafficGenerator  # noqa: E402

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
FRAMES = 8  # deep enough to get past pydantic's and dataclasses' own frames


def ours(trace: tracemalloc.Traceback) -> tracemalloc.Frame | None:
    """The most recent of the project's frames that made the allocation (None: none of them)."""
    frames = [f for f in trace if f.filename.startswith(str(ROOT)) and "/.venv/" not in f.filename]
    return frames[-1] if frames else None


def owner(trace: tracemalloc.Traceback) -> str:
    """The project's folder whose code made the allocation."""
    frame = ours(trace)
    return Path(frame.filename).relative_to(ROOT).parts[0] if frame else "other"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=73.0, help="new calls a second")
    parser.add_argument("--minutes", type=float, default=6.0, help="simulated minutes of arrivals")
    parser.add_argument("--extensions", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "directory.yaml"
        path.write_text(directory(args.extensions))
        pbx = load_directory(path)
    generator = TrafficGenerator(pbx, seed=16, calls_per_minute=args.rate * 60, max_concurrent=1_000_000)
    simulator = PbxSimulator(pbx)
    tracker = CallTracker(pbx, zone=ZoneInfo("UTC"), source="bench")
    tracker.apply(DirectoryUpdate(START, pbx))
    gc.collect()
    tracemalloc.start(FRAMES)
    before = tracemalloc.take_snapshot()
    for t, step in generator.steps(until=args.minutes * 60):
        if t > args.minutes * 60:
            break  # the calls still in progress stay so
        for update in simulator.apply(step, START + timedelta(seconds=t)):
            tracker.apply(update)
    gc.collect()
    grown = tracemalloc.take_snapshot().compare_to(before, "traceback")
    calls = tracker.in_progress
    shares: collections.Counter[str] = collections.Counter()
    for stat in grown:
        shares[owner(stat.traceback)] += stat.size_diff
    print(
        f"{args.rate:g} new calls a second for {args.minutes:g} simulated minutes: {calls} calls in progress"
    )
    for name, size in shares.most_common():
        print(f"  {name:12s} {size / 2**20:6.1f} MB  {size / max(calls, 1):6.0f} bytes per call")
    places: collections.Counter[str] = collections.Counter()  # the tracker's lines that allocated
    for stat in grown:
        frame = ours(stat.traceback)
        if frame is not None and owner(stat.traceback) == "services":
            places[f"{Path(frame.filename).relative_to(ROOT)}:{frame.lineno}"] += stat.size_diff
    print("the tracker's largest:")
    for place, size in places.most_common(8):
        print(f"  {size / 2**20:6.2f} MB  {place}")


if __name__ == "__main__":
    main()
