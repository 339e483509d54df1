"""The API's state cache while the monitor is not there yet: quiet at first, a warning only when
the monitor stays silent."""

import asyncio
import logging
from typing import Any

import pytest

from services.api.cache import StateCache
from shared.commands import SNAPSHOT
from shared.memory_bus import InMemoryBus
from shared.pbx_state import PbxState


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
