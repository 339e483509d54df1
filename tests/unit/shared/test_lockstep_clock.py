"""The lockstep clock: virtual time that waits for the world to settle, then wakes sleepers in
time order."""

import asyncio
from datetime import UTC, datetime, timedelta

from shared.clock import LockstepClock

START = datetime(2024, 3, 4, 9, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


async def test_sleepers_wake_in_time_order_each_at_its_own_time() -> None:
    clock = LockstepClock(START)
    woken: list[tuple[str, datetime]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep_until(at(seconds))
        woken.append((name, clock.now()))

    running = asyncio.create_task(clock.run())
    await asyncio.gather(sleeper("late", 5), sleeper("early", 2), sleeper("middle", 3))
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert woken == [("early", at(2)), ("middle", at(3)), ("late", at(5))]


async def test_time_stands_still_until_the_world_has_settled() -> None:
    busy = asyncio.Event()
    busy.set()
    clock = LockstepClock(START, settled=lambda: not busy.is_set())
    running = asyncio.create_task(clock.run())
    sleeping = asyncio.create_task(clock.sleep_until(at(10)))
    for _ in range(50):  # many turns of the loop: still busy, so still 09:00:00
        await asyncio.sleep(0)
    assert clock.now() == START and not sleeping.done()
    busy.clear()
    await sleeping
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert clock.now() == at(10)


async def test_a_cancelled_sleeper_does_not_move_time() -> None:
    clock = LockstepClock(START)
    running = asyncio.create_task(clock.run())
    far = asyncio.create_task(clock.sleep_until(at(3600)))
    await asyncio.sleep(0)
    far.cancel()
    await clock.sleep_until(at(1))
    for _ in range(50):
        await asyncio.sleep(0)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert clock.now() == at(1)  # not an hour on


async def test_with_a_speed_it_goes_no_faster_than_that() -> None:
    clock = LockstepClock(START, speed=100)
    running = asyncio.create_task(clock.run())
    loop = asyncio.get_running_loop()
    began = loop.time()
    await clock.sleep_until(at(20))  # 20 s at 100 times: 0.2 s of real time
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert loop.time() - began >= 0.19
