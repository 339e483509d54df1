"""Objects that live on are set aside from garbage collections; once an hour everything is
collected, so a cycle set aside is freed in the end. Memory freed between live objects goes back
to the system."""

import asyncio
import gc
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from shared.clock import VirtualClock
from shared.heap import (
    FREEZE_EVERY,
    LAG_EVERY,
    MALLOC_TRIM,
    THAW_EVERY,
    TRIM_EVERY,
    HeapCollector,
    HeapKeeper,
    wake_up,
)

ROOT = Path(__file__).parents[3]


class Node:
    def __init__(self) -> None:
        self.itself = self  # a cycle: only a collection frees it


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test run collects as usual


async def test_what_lives_on_is_left_out_of_collections_until_the_hourly_thaw() -> None:
    clock = VirtualClock(datetime(2026, 1, 5, 8, 0, tzinfo=UTC))
    keeper = HeapKeeper(clock)
    held = [Node() for _ in range(50_000)]
    walked = len(gc.get_objects())
    await keeper.turn()
    assert len(gc.get_objects()) < walked - 50_000  # a full collection no longer walks them
    node = Node()
    await keeper.turn()
    alive = weakref.ref(node)
    del node, held
    gc.collect()
    assert alive() is not None  # set aside: the collection did not see the cycle
    await clock.sleep_until(clock.now() + THAW_EVERY)
    await keeper.turn()
    assert alive() is None


async def test_the_collections_and_their_pauses_are_on_the_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = CollectorRegistry()
    registry.register(HeapCollector())
    keeper = HeapKeeper(VirtualClock(datetime(2026, 1, 5, 8, 0, tzinfo=UTC)))
    before = registry.get_sample_value("callbridge_gc_collections_total", {"generation": "2"}) or 0
    gc.collect()
    assert registry.get_sample_value("callbridge_gc_collections_total", {"generation": "2"}) == before + 1
    assert (registry.get_sample_value("callbridge_gc_longest_pause_seconds") or 0) > 0
    held = [Node() for _ in range(10_000)]
    before = registry.get_sample_value("callbridge_gc_frozen_objects") or 0
    await keeper.turn()
    # counted as they are set aside: a scrape does not walk them (~23 ms for 3 million)
    monkeypatch.setattr(gc, "get_freeze_count", lambda: pytest.fail("a scrape walked the frozen objects"))
    assert (registry.get_sample_value("callbridge_gc_frozen_objects") or 0) >= before + len(held)


FRAGMENTED = """
import asyncio
from datetime import UTC, datetime
from shared.clock import VirtualClock
from shared.heap import TRIM_EVERY, HeapKeeper

def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096

blocks = [b"x" * (600 + n % 2400) for n in range(60_000)]  # ~108 MB, each from malloc
blocks = blocks[::16]  # fifteen in sixteen freed, between those that live on
before = rss()

async def turn_when_due() -> None:
    clock = VirtualClock(datetime(2026, 1, 5, 8, 0, tzinfo=UTC))
    keeper = HeapKeeper(clock)
    await clock.sleep_until(clock.now() + TRIM_EVERY)
    await keeper.turn()

asyncio.run(turn_when_due())
print(before - rss())
"""


@pytest.mark.skipif(MALLOC_TRIM is None, reason="the C library here is not glibc: nothing to trim")
def test_memory_freed_between_live_objects_goes_back_to_the_system() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FRAGMENTED], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert int(done.stdout) > 50 * 2**20  # of the ~100 MB freed


async def test_the_heap_is_trimmed_every_trim_interval_from_the_start() -> None:
    clock = VirtualClock(datetime(2026, 1, 5, 8, 0, tzinfo=UTC))
    trims: list[datetime] = []

    def trim(pad: int) -> int:
        trims.append(clock.now())
        return 1

    registry = CollectorRegistry()
    registry.register(HeapCollector())
    before = registry.get_sample_value("callbridge_heap_trim_seconds_total") or 0
    keeper = HeapKeeper(clock, trim)
    start = clock.now()
    turns = 3 * (TRIM_EVERY // FREEZE_EVERY)
    for _ in range(turns):
        await keeper.turn()
        await clock.sleep_until(clock.now() + FREEZE_EVERY)
    assert trims == [start + TRIM_EVERY, start + 2 * TRIM_EVERY]  # the third is due at the next turn
    assert (registry.get_sample_value("callbridge_heap_trim_seconds_total") or 0) > before


async def test_without_glibc_the_heap_is_kept_as_before() -> None:
    await HeapKeeper(VirtualClock(datetime(2026, 1, 5, 8, 0, tzinfo=UTC)), trim=None).turn()


async def test_a_loop_that_stood_still_shows_as_a_late_wake_up() -> None:
    registry = CollectorRegistry()
    registry.register(HeapCollector())

    def late(within: str) -> float:
        return registry.get_sample_value("callbridge_event_loop_lag_seconds_bucket", {"le": within}) or 0

    before = late("0.1") - late("0.025")
    probe = asyncio.create_task(wake_up())
    await asyncio.sleep(0)  # the probe waits for its wake-up, due in LAG_EVERY
    time.sleep(LAG_EVERY + 0.05)  # noqa: ASYNC251 (the loop stands still past it: a long statement, say)
    await probe
    assert late("0.1") - late("0.025") == before + 1  # ~50 ms late
