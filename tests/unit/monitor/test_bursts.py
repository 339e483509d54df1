"""The driver's updates, a burst at a time."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.monitor.bursts import bursts


async def reported(*groups: list[int], then: Exception | None = None) -> AsyncIterator[int]:
    """Each group at once, the next one after the loop has turned."""
    for group in groups:
        for update in group:
            yield update
        await asyncio.sleep(0)  # the PBX reports the next group later
    if then is not None:
        raise then


async def test_what_was_reported_at_once_comes_together_in_order() -> None:
    assert [b async for b in bursts(reported([1, 2, 3], [4], [5, 6]))] == [[1, 2, 3], [4], [5, 6]]


async def test_a_burst_holds_at_most_so_many() -> None:
    assert [b async for b in bursts(reported(list(range(5))), most=2)] == [[0, 1], [2, 3], [4]]


async def test_a_driver_that_fails_fails_after_its_updates() -> None:
    seen: list[list[int]] = []

    async def follow() -> None:
        async for burst in bursts(reported([1, 2], then=ConnectionError("socket closed"))):
            seen.append(burst)

    with pytest.raises(ConnectionError):
        await follow()
    assert seen == [[1, 2]]


async def test_a_monitor_that_stops_reading_stops_the_driver() -> None:
    read: list[int] = []

    async def endless() -> AsyncIterator[int]:
        n = 0
        while True:
            n += 1
            read.append(n)
            yield n
            await asyncio.sleep(0)

    taken = bursts(endless(), most=3)
    assert await anext(taken) == [1]
    await taken.aclose()
    stopped = len(read)
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(read) == stopped and stopped <= 1 + 3 + 1  # the bounded queue held the driver back


@pytest.mark.parametrize("turns", range(8))
async def test_a_cancelled_follower_stops_even_as_a_burst_arrives(turns: int) -> None:
    """Cancelled at any turn of the loop, also the one in which the waited-for burst arrives
    (asyncio.wait_for of Python 3.11 then returned the burst and dropped the cancellation: the
    demo went on after Ctrl-C, its monitor never done)."""

    async def steady() -> AsyncIterator[int]:
        n = 0
        while True:
            n += 1
            yield n
            await asyncio.sleep(0)

    async def follow() -> None:
        async for _ in bursts(steady(), patience=lambda: 60.0):  # a timeout, as states wait
            await asyncio.sleep(0)

    for _ in range(50):
        task = asyncio.create_task(follow())
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait({task}, timeout=1)  # not awaited: a task that drops it would hang the test
        dropped = not task.done()
        for _ in range(100):  # cancelled at other turns, such a task still ends: the loop may close
            if task.done():
                break
            task.cancel()
            await asyncio.sleep(0)
        assert not dropped, f"still following after a cancel at turn {turns}"
