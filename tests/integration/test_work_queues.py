"""One work-queue contract (`shared/work_queue.py`), four implementations: the generic queue in
memory and on RabbitMQ (the recordings' conversions), and the webhooks' delivery-job queue in
memory and on RabbitMQ (sharded, with retry tiers). Each runs through the same tests."""

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel

from services.webhooks.jobs import Job
from services.webhooks.policy import RetryPolicy
from services.webhooks.queues import MemoryJobQueue, RabbitJobQueue
from shared.bus import Bus, Transient
from shared.clock import SystemClock
from shared.memory_bus import InMemoryBus
from shared.rabbit_bus import RabbitBus
from shared.rabbit_work_queue import RabbitWorkQueue, Shape
from shared.topology import Topology
from shared.work_queue import MemoryWorkQueue
from tests.broker import dead_letters
from tests.integration.conftest import private_rabbit_bus

RETRY = 0.3  # seconds: the job queues' one retry tier


class Item(BaseModel):
    n: int


def item(n: int) -> Item:
    return Item(n=n)


@dataclass
class Subject:
    """An implementation under test, with how to make its items and read them back."""

    queue: Any
    make: Callable[[int], Any]
    number: Callable[[Any], int]
    set_aside: Callable[[int], Awaitable[None]]  # returns once this many items were set aside
    handled: list[int] = field(default_factory=list)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handler(self, item: Any) -> None:
        async with self._arrived:
            self.handled.append(self.number(item))
            self._arrived.notify_all()

    async def wait_for(self, count: int) -> list[int]:
        async with asyncio.timeout(10), self._arrived:
            await self._arrived.wait_for(lambda: len(self.handled) >= count)
        return self.handled

    async def put(self, *numbers: int) -> None:
        for n in numbers:
            await self.queue.submit(self.make(n))
        await self.queue.flush()


def job(n: int) -> Job:
    return Job(endpoint="crm", key="crm|chain", event_id=str(n), event_type="call.ringing", chain="chain")


GENERIC = ["memory", pytest.param("rabbit", marks=pytest.mark.rabbitmq)]
JOBS = ["memory jobs", pytest.param("rabbit jobs", marks=pytest.mark.rabbitmq)]


@pytest.fixture(params=GENERIC + JOBS)
async def subject(request: pytest.FixtureRequest) -> AsyncIterator[Subject]:
    async with _subject(request, consumers=1) as made:
        yield made


@pytest.fixture(params=GENERIC)
async def shared_subject(request: pytest.FixtureRequest) -> AsyncIterator[Subject]:
    """A generic queue with two consumers."""
    async with _subject(request, consumers=2) as made:
        yield made


@pytest.fixture(params=JOBS)
async def job_subject(request: pytest.FixtureRequest) -> AsyncIterator[Subject]:
    async with _subject(request, consumers=1) as made:
        yield made


def _subject(request: pytest.FixtureRequest, consumers: int) -> Any:
    kind: str = request.param
    if kind.startswith("memory"):
        return _memory(kind, consumers)
    amqp_url = request.getfixturevalue("amqp_url")  # a sync fixture: fails loudly without a broker
    return _rabbit(kind, consumers, amqp_url, request.node.nodeid)


class _memory:
    def __init__(self, kind: str, consumers: int) -> None:
        self.kind, self.consumers = kind, consumers

    async def __aenter__(self) -> Subject:
        if self.kind == "memory":
            queue: Any = MemoryWorkQueue[Item]("contract", self.consumers)
            self.subject = Subject(queue, item, lambda it: it.n, self._aside)
        else:
            queue = MemoryJobQueue(InMemoryBus(), SystemClock(), {})
            self.subject = Subject(queue, job, lambda it: int(it.event_id), self._aside)
        return self.subject

    async def _aside(self, count: int) -> None:
        queue = self.subject.queue
        assert queue.set_aside == count

    async def __aexit__(self, *exc: object) -> None:
        await self.subject.queue.close()


class _rabbit:
    def __init__(self, kind: str, consumers: int, amqp_url: str, name: str) -> None:
        self.kind, self.consumers = kind, consumers
        self.bus_context = private_rabbit_bus(amqp_url, name)

    async def __aenter__(self) -> Subject:
        bus: RabbitBus = await self.bus_context.__aenter__()
        if self.kind == "rabbit":
            queue: Any = RabbitWorkQueue(bus, "contract", Shape(Item, lambda i: str(i.n)), self.consumers)
            return Subject(await queue.declare(), item, lambda it: it.n, _dead(bus))
        policy = RetryPolicy((RETRY,), 0.0, random.Random(1))
        self.jobs = RabbitJobQueue(bus, policy, {})
        return Subject(await self.jobs.declare(), job, lambda it: int(it.event_id), _dead(bus))

    async def __aexit__(self, *exc: object) -> None:
        if self.kind != "rabbit":
            await self.jobs.close()
        await self.bus_context.__aexit__(*exc)


def _dead(bus: Bus) -> Callable[[int], Awaitable[None]]:
    async def aside(count: int) -> None:
        assert len(await dead_letters(bus, count)) == count

    return aside


async def test_items_submitted_before_a_consumer_wait_for_it_and_come_in_order(subject: Subject) -> None:
    await subject.put(*range(10))
    await subject.queue.consume(subject.handler)
    await subject.put(10, 11)
    assert await subject.wait_for(12) == list(range(12))


async def test_each_item_is_handed_once(subject: Subject) -> None:
    await subject.queue.consume(subject.handler)
    await subject.put(*range(30))
    await subject.wait_for(30)
    await subject.put(30)  # behind everything else: once it is in, nothing more is coming
    assert sorted(await subject.wait_for(31)) == list(range(31))
    assert len(subject.handled) == 31


async def test_an_item_whose_handler_raises_is_set_aside_and_the_next_follows(subject: Subject) -> None:
    async def fussy(item: Any) -> None:
        if subject.number(item) == 1:
            raise RuntimeError("cannot handle item 1")
        await subject.handler(item)

    await subject.queue.consume(fussy)
    for n in range(3):  # flushed one by one: an item set aside takes its flush's fellows along
        await subject.put(n)
    assert await subject.wait_for(2) == [0, 2]
    await subject.set_aside(1)


async def test_an_item_whose_handler_fails_in_passing_is_handed_again_before_the_next(
    subject: Subject,
) -> None:
    failures = 2

    async def flaky(item: Any) -> None:
        nonlocal failures
        if subject.number(item) == 1 and failures:
            failures -= 1
            raise Transient("the archive's disk is full")
        await subject.handler(item)

    await subject.queue.consume(flaky)
    await subject.put(0, 1, 2)
    assert await subject.wait_for(3) == [0, 1, 2]
    assert failures == 0
    await subject.set_aside(0)


async def test_drain_waits_for_the_item_in_hand(subject: Subject) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(item: Any) -> None:
        started.set()
        await release.wait()
        await subject.handler(item)

    await subject.queue.consume(slow)
    await subject.put(0)
    await started.wait()
    draining = asyncio.create_task(subject.queue.drain())
    done, _ = await asyncio.wait({draining}, timeout=0.3)
    assert not done, "drain returned with an item in hand"
    release.set()
    await draining
    assert subject.handled == [0]


async def test_consumers_share_the_items_each_once(shared_subject: Subject) -> None:
    subject = shared_subject
    at_once = 0
    busiest = 0

    async def counting(item: Any) -> None:
        nonlocal at_once, busiest
        at_once += 1
        busiest = max(busiest, at_once)
        await asyncio.sleep(0)  # let the other consumer take the next item meanwhile
        at_once -= 1
        await subject.handler(item)

    await subject.queue.consume(counting)
    await subject.put(*range(20))
    assert sorted(await subject.wait_for(20)) == list(range(20))
    assert busiest <= 2


async def test_a_retried_job_comes_back_after_its_delay(job_subject: Subject) -> None:
    subject = job_subject
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []

    async def timed(item: Any) -> None:
        arrivals.append(loop.time())
        await subject.handler(item)

    await subject.queue.consume(timed)
    await subject.put(0)
    await subject.wait_for(1)
    await subject.queue.retry(job(0).model_copy(update={"attempt": 1}), RETRY)
    assert await subject.wait_for(2) == [0, 0]
    assert arrivals[1] - arrivals[0] >= RETRY * 0.9


async def test_a_short_retry_is_not_held_behind_a_longer_one(job_subject: Subject) -> None:
    """A receiver's Retry-After shorter than what waits already: RabbitMQ expires messages at a
    queue's head only, so each wait has its own queue."""
    subject = job_subject
    await subject.queue.consume(subject.handler)
    await subject.queue.retry(job(0).model_copy(update={"attempt": 1}), 60)
    await subject.queue.retry(job(1).model_copy(update={"attempt": 1}), RETRY * 2)
    assert await subject.wait_for(1) == [1]  # within seconds, not after the minute


@pytest.fixture(params=[pytest.param("rabbit jobs", marks=pytest.mark.rabbitmq)])
async def rabbit_jobs(request: pytest.FixtureRequest) -> AsyncIterator[Subject]:
    """The webhooks' job queue on RabbitMQ only: in one process (the demo, scenario runs) the
    memory queue keeps one line for all, which the scenarios' comparisons rely on."""
    async with _subject(request, consumers=1) as made:
        yield made


async def test_a_chain_whose_endpoint_hangs_holds_back_no_other_on_its_shard(rabbit_jobs: Subject) -> None:
    subject = rabbit_jobs
    names = Topology("x")
    other = next(
        c for c in (f"chain-{n}" for n in range(1000)) if names.shard_of(c) == names.shard_of("stuck")
    )
    release = asyncio.Event()

    async def hanging(item: Any) -> None:
        if item.chain == "stuck":
            await release.wait()  # an endpoint that does not answer
        await subject.handler(item)

    def on(chain: str, n: int) -> Job:
        return job(n).model_copy(update={"chain": chain, "key": f"crm|{chain}"})

    await subject.queue.consume(hanging)
    await subject.queue.submit(on("stuck", 0))
    await subject.queue.submit(on("stuck", 1))  # waits behind the first: the same chain
    await subject.queue.submit(on(other, 2))
    await subject.queue.flush()
    assert await subject.wait_for(1) == [2]
    release.set()
    assert await subject.wait_for(3) == [2, 0, 1]
