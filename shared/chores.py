"""A service's recurring chores (scanning a folder, pruning, sweeping), supervised: a chore that
raises is logged and runs again at its next turn (sooner, `retry`, when that is far off), it
never ends the loop. `failing` says whether its last turn failed, for readiness; `failures`
counts them, for `/metrics`."""

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from .clock import Clock

logger = logging.getLogger(__name__)


class Chore:
    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[object]],
        next_turn: Callable[[datetime], datetime],
        *,
        retry: timedelta = timedelta(seconds=30),
    ) -> None:
        """`step` is one turn; `next_turn(now)` when the next one is due after a good turn; after a
        failed one, the sooner of that and `retry` from now."""
        self.name = name
        self.failing = False
        self.failures = 0
        self._step = step
        self._next_turn = next_turn
        self._retry = retry

    async def turn(self) -> bool:
        """One turn; False when it failed (logged)."""
        try:
            await self._step()
        except Exception:  # whatever went wrong, the chore goes on: the next turn may do better
            self.failures += 1
            self.failing = True
            logger.exception("%s failed; it runs again at its next turn", self.name)
            return False
        if self.failing:
            logger.info("%s works again", self.name)
        self.failing = False
        return True

    async def run(self, clock: Clock) -> None:
        """Turn after turn, for ever (until cancelled)."""
        while True:
            done = await self.turn()
            now = clock.now()
            due = self._next_turn(now)
            await clock.sleep_until(due if done else min(due, now + self._retry))


def every(interval: timedelta) -> Callable[[datetime], datetime]:
    return lambda now: now + interval
