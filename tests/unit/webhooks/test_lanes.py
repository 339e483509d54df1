"""A shard's lanes: one key's jobs in order, keys side by side, and a lane that nobody waits for
any more (its consumer stopped) stops rather than delivering on."""

import asyncio

from services.webhooks.jobs import Job
from services.webhooks.lanes import Lanes


def job(key: str, n: int) -> Job:
    return Job(endpoint="crm", key=f"crm|{key}", event_id=str(n), event_type="call.ringing", chain=key)


async def test_a_key_waits_for_its_own_jobs_only() -> None:
    stuck, handled = asyncio.Event(), []

    async def handler(item: Job) -> None:
        if item.chain == "slow":
            await stuck.wait()
        handled.append(int(item.event_id))

    lanes = Lanes(handler)
    slow = [lanes.put(job("slow", n), lambda: True) for n in (0, 1)]
    await lanes.put(job("fast", 2), lambda: True)  # done while the slow lane still waits
    assert handled == [2] and len(lanes) == 1
    stuck.set()
    await asyncio.gather(*slow)
    assert handled == [2, 0, 1] and len(lanes) == 0


async def test_a_lane_nobody_waits_for_stops() -> None:
    started, attempted = asyncio.Event(), []

    async def handler(item: Job) -> None:
        attempted.append(int(item.event_id))
        started.set()
        await asyncio.Event().wait()  # an endpoint that never answers

    lanes = Lanes(handler)
    first, second = lanes.put(job("a", 0), lambda: True), lanes.put(job("a", 1), lambda: True)
    await started.wait()
    first.cancel()  # the consumer was stopped: its messages come again elsewhere
    await asyncio.wait_for(asyncio.gather(second, return_exceptions=True), 5)
    assert second.cancelled() and attempted == [0] and len(lanes) == 0
