"""A shard's jobs side by side: one lane per ordering key (endpoint + chain), its jobs one after
another in the order they came, the lanes independent of each other. So an endpoint that hangs
holds back its own chains only, never another endpoint's, nor its other chains beyond one
attempt each (up to the shard's prefetch at once). A job that fails in passing is handed again
before the next of its lane, as long as its message is still this consumer's (`held`)."""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from shared.bus import patiently

from .jobs import Job


@dataclass(frozen=True, slots=True)
class _Queued:
    job: Job
    held: Callable[[], bool]
    done: "asyncio.Future[None]"


class Lanes:
    def __init__(self, handler: Callable[[Job], Awaitable[None]]) -> None:
        self._handler = handler
        self._lanes: dict[str, deque[_Queued]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def put(self, job: Job, held: Callable[[], bool]) -> "asyncio.Future[None]":
        """Queue `job` in its key's lane; the future is done once it was handled (or raises what
        its handler raised). Call in arrival order: a lane keeps the order of its `put`s."""
        queued = _Queued(job, held, asyncio.get_running_loop().create_future())
        lane = self._lanes.get(job.key)
        if lane is None:
            lane = self._lanes[job.key] = deque()
            self._tasks[job.key] = asyncio.create_task(self._run(job.key, lane), name=f"lane {job.key}")
        # nobody waits any more (the consumer was stopped): the lane stops, its messages come again
        task = self._tasks[job.key]
        queued.done.add_done_callback(lambda done: task.cancel() if done.cancelled() else None)
        lane.append(queued)
        return queued.done

    def __len__(self) -> int:
        return len(self._lanes)

    async def _run(self, key: str, lane: deque[_Queued]) -> None:
        try:
            while lane:
                queued = lane[0]
                if queued.held():  # else its message comes again: handled here, it would be twice
                    try:
                        what = f"job {queued.job.job_id}"
                        await patiently(partial(self._handler, queued.job), what, held=queued.held)
                    except Exception as error:
                        queued.done.set_exception(error)
                if not queued.done.done():
                    queued.done.set_result(None)
                lane.popleft()
        finally:
            del self._lanes[key], self._tasks[key]
            for queued in lane:  # cancelled: nobody will handle them here
                queued.done.cancel()
