"""Supervised chores: a turn that raises is logged, the chore goes on, sooner than usual, and
says it is failing until a turn works again."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from shared.chores import Chore, every
from shared.clock import VirtualClock

START = datetime(2026, 12, 1, 9, tzinfo=UTC)


async def test_a_failing_turn_is_logged_and_the_chore_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualClock(START)
    outcomes = iter([None, PermissionError("archive not writable"), PermissionError("still"), None])
    turns: list[tuple[datetime, bool]] = []
    done = asyncio.Event()

    async def step() -> None:
        outcome = next(outcomes, None)
        turns.append((clock.now(), outcome is None))
        if len(turns) == 5:
            done.set()
        if outcome is not None:
            raise outcome

    chore = Chore("the test chore", step, every(timedelta(hours=1)), retry=timedelta(seconds=30))
    running = asyncio.create_task(chore.run(clock))
    failing_seen: list[bool] = []
    while not done.is_set():
        failing_seen.append(chore.failing)
        await asyncio.sleep(0)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    offsets = [(t - START).total_seconds() for t, _ in turns]
    assert offsets == [0, 3600, 3630, 3660, 7260]  # after a failure: 30 s, not an hour
    assert chore.failures == 2 and not chore.failing
    assert True in failing_seen
    assert caplog.text.count("the test chore failed") == 2
    assert "archive not writable" in caplog.text
