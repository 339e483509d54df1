"""Objects that live on are set aside from garbage collections; once an hour everything is
collected, so a cycle set aside is freed in the end."""

import gc
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from shared.clock import VirtualClock
from shared.heap import THAW_EVERY, HeapCollector, HeapKeeper


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


async def test_the_collections_and_their_pauses_are_on_the_metrics() -> None:
    registry = CollectorRegistry()
    registry.register(HeapCollector())
    HeapKeeper(VirtualClock(datetime(2026, 1, 5, 8, 0, tzinfo=UTC)))
    before = registry.get_sample_value("callbridge_gc_collections_total", {"generation": "2"}) or 0
    gc.collect()
    assert registry.get_sample_value("callbridge_gc_collections_total", {"generation": "2"}) == before + 1
    assert (registry.get_sample_value("callbridge_gc_longest_pause_seconds") or 0) > 0
    gc.freeze()
    assert (registry.get_sample_value("callbridge_gc_frozen_objects") or 0) > 0
