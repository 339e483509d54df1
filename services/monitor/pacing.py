"""When the calls' states are published: the tracker gathers the changes, and `Pacing` says
when the ones gathered since the last time are due (`[monitor] states_every`)."""

import time


class Pacing:
    """When the calls' states gathered since they were last published are due: `every` seconds
    after the first change (0: at once)."""

    def __init__(self, every: float) -> None:
        self._every = every
        self._due: float | None = None

    def patience(self) -> float | None:
        """Seconds until they are due (None: nothing waits)."""
        return None if self._due is None else max(0.0, self._due - time.monotonic())

    def due(self, waiting: bool) -> bool:
        """Whether to publish them now; `waiting`: whether a change waits."""
        if not waiting:
            self._due = None
            return False
        now = time.monotonic()
        if self._due is None:
            self._due = now + self._every
        if now < self._due:
            return False
        self._due = None
        return True
