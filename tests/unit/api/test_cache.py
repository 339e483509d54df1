"""The API's state cache: it starts from the monitor's snapshot, follows the monitor's events in
sequence, asks again after a gap or a restart; and while the monitor is not there yet it waits
quietly, warning only when the monitor stays silent."""

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from services.api.cache import StateCache
from shared.commands import SNAPSHOT
from shared.events import ExtensionPresence
from shared.memory_bus import InMemoryBus
from shared.pbx_state import PbxState

AT = datetime(2026, 11, 30, 9, tzinfo=UTC)


class CountingBus(InMemoryBus):
    """Counts the snapshot requests; `asked(n)` returns once n have been made."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self._called = asyncio.Condition()

    async def call(self, method: str, payload: dict[str, Any], answer_within: float) -> dict[str, Any]:
        async with self._called:
            self.calls += 1
            self._called.notify_all()
        return await super().call(method, payload, answer_within)

    async def asked(self, times: int) -> None:
        async with asyncio.timeout(10), self._called:
            await self._called.wait_for(lambda: self.calls >= times)


async def snapshot(_: dict[str, Any]) -> dict[str, Any]:
    return PbxState().snapshot("monitor/1", 0).model_dump(mode="json")


def tries(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "no snapshot from the monitor" in r.getMessage()]


async def test_a_monitor_that_answers_soon_after_the_api_starts_is_no_news(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = CountingBus()
    cache = StateCache(bus, 1)
    with caplog.at_level(logging.INFO, logger="services.api.cache"):
        cache.start()
        await bus.asked(2)  # the first try found no monitor
        await bus.serve(SNAPSHOT, snapshot)  # the monitor comes up
        async with asyncio.timeout(10):
            await cache.wait_ready()
    await cache.close()
    assert cache.source == "monitor/1"
    assert tries(caplog) and {r.levelno for r in tries(caplog)} == {logging.INFO}


async def test_a_monitor_that_stays_silent_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    bus = CountingBus()
    cache = StateCache(bus, 1, quiet_start=0.0)
    with caplog.at_level(logging.INFO, logger="services.api.cache"):
        cache.start()
        await bus.asked(2)
    await cache.close()
    assert not cache.ready
    assert tries(caplog)[0].levelno == logging.WARNING
    assert "for 0 s (nobody serves snapshot)" in tries(caplog)[0].getMessage()


def presence(seq: int, busy: bool = True, source: str = "monitor/1") -> ExtensionPresence:
    return ExtensionPresence(occurred_at=AT, source=source, seq=seq, extension="101", busy=busy)


class Monitor:
    """Answers snapshots at the state it was told (source, seq, busy extensions)."""

    def __init__(self, source: str, seq: int, busy: tuple[str, ...] = ()) -> None:
        self.source, self.seq, self.busy = source, seq, busy

    async def __call__(self, _: dict[str, Any]) -> dict[str, Any]:
        state = PbxState()
        state.busy = set(self.busy)
        return state.snapshot(self.source, self.seq).model_dump(mode="json")


async def loaded(bus: CountingBus, monitor: Monitor) -> StateCache:
    await bus.serve(SNAPSHOT, monitor)
    cache = StateCache(bus, 1)
    cache.start()
    async with asyncio.timeout(10):
        await cache.wait_ready()
    return cache


async def test_events_after_the_snapshot_follow_it_and_those_it_holds_are_skipped() -> None:
    bus = CountingBus()
    cache = await loaded(bus, Monitor("monitor/1", 5))
    await cache.handle(presence(5))  # the snapshot holds it already: skipped
    assert "101" not in cache.state.busy
    await cache.handle(presence(6))
    assert (cache.seq, "101" in cache.state.busy, cache.snapshots, bus.calls) == (6, True, 1, 1)
    await cache.close()


async def test_a_gap_in_the_sequence_asks_for_a_fresh_snapshot() -> None:
    bus = CountingBus()
    monitor = Monitor("monitor/1", 5)
    cache = await loaded(bus, monitor)
    monitor.seq, monitor.busy = 8, ("101",)  # events 6 and 7 never came here
    await cache.handle(presence(8))
    await cache.wait_until(lambda c: c.snapshots == 2)
    assert (cache.seq, "101" in cache.state.busy, bus.calls) == (8, True, 2)
    await cache.close()


async def test_a_new_monitor_run_asks_for_its_snapshot() -> None:
    bus = CountingBus()
    monitor = Monitor("monitor/1", 40)
    cache = await loaded(bus, monitor)
    monitor.source, monitor.seq = "monitor/2", 1  # restarted: a new source, counting from 1
    await cache.handle(presence(1, source="monitor/2"))
    await cache.wait_until(lambda c: c.source == "monitor/2")
    assert (cache.seq, cache.snapshots) == (1, 2)
    await cache.close()


async def test_late_events_of_an_earlier_monitor_run_are_ignored() -> None:
    bus = CountingBus()
    monitor = Monitor("monitor/1", 40)
    cache = await loaded(bus, monitor)
    monitor.source, monitor.seq = "monitor/2", 1
    await cache.handle(presence(1, source="monitor/2"))
    await cache.wait_until(lambda c: c.source == "monitor/2")
    for seq in (41, 42):  # the old run's outbox, sent again after the restart
        await cache.handle(presence(seq, busy=False, source="monitor/1"))
    await cache.handle(presence(2, source="monitor/2"))
    assert (cache.source, cache.seq, cache.snapshots, bus.calls) == ("monitor/2", 2, 2, 2)
    await cache.close()
