"""What the dispatcher needs from outside, as protocols: the queue its jobs travel through (and
come back on after a retry's delay), and who is told that an endpoint answered 410 Gone."""

from typing import Protocol

from shared.work_queue import WorkQueue

from .jobs import Job


class JobQueue(WorkQueue[Job], Protocol):
    """The work-queue contract (`shared.work_queue`) for delivery jobs: each chain's jobs on its
    shard, in order; its consumer is also handed each event's jobs (one per endpoint that wants
    it)."""

    async def retry(self, job: Job, delay: float) -> None:
        """Bring `job` back to its shard after `delay` seconds; durable when this returns."""
        ...

    async def close(self) -> None:
        """Stop consuming, finishing what is in hand (as far as it can)."""
        ...


class EndpointDisabled(Protocol):
    async def __call__(self, endpoint: str, reason: str) -> None: ...
