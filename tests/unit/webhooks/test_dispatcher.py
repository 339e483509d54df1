"""Ordered, at-least-once delivery: retries, holds, dead letters, 410, Retry-After (no network)."""

import asyncio
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from services.webhooks.dispatcher import BLOCK_GRACE, Dispatcher
from services.webhooks.jobs import Job, jobs_for
from services.webhooks.metrics import WebhookMetrics
from services.webhooks.outgoing import WebhookRequest
from services.webhooks.policy import RetryPolicy
from services.webhooks.sender import Answer, Sender
from services.webhooks.store import DeliveryStore
from shared.clock import VirtualClock
from shared.events import encode_event
from shared.settings import EndpointSettings
from tests.factories import make_call_ended, make_call_ringing

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class RecordingQueue:
    """The dispatcher's job queue, in the test's hands: submitted jobs and pending retries."""

    def __init__(self) -> None:
        self.submitted: list[Job] = []
        self.retries: list[tuple[Job, float]] = []

    async def submit(self, job: Job) -> None:
        self.submitted.append(job)

    async def retry(self, job: Job, delay: float) -> None:
        self.retries.append((job, delay))

    async def flush(self) -> None:
        return None


class Receiver:
    """The HTTP transport, faked: answers from a script and remembers what it was asked to send."""

    def __init__(self, answer: Callable[[WebhookRequest], Answer | BaseException] | None = None) -> None:
        self.requests: list[WebhookRequest] = []
        self.answer = answer or (lambda request: Answer(200, None, ""))

    async def __call__(self, request: WebhookRequest, answer_within: float) -> Answer:
        self.requests.append(request)
        result = self.answer(request)
        if isinstance(result, BaseException):
            raise result
        return result

    def ids(self) -> list[str]:
        return [
            r.params["id"] if r.params else json.loads(r.body or b"")["data"]["event_id"]
            for r in self.requests
        ]


class Harness:
    def __init__(
        self, store: DeliveryStore, receiver: Receiver, *, start: datetime | None = None, **endpoint: object
    ) -> None:
        self.clock = VirtualClock(start or datetime(2024, 1, 1, 9, tzinfo=UTC))
        self.queue = RecordingQueue()
        self.store = store
        self.disabled: list[tuple[str, str]] = []
        self.endpoints = {"crm": EndpointSettings(url="http://crm.test/hook", **endpoint)}  # type: ignore[arg-type]
        self.dispatcher = Dispatcher(
            self.endpoints,
            Sender(receiver, self.clock),
            self.store,
            self.queue,
            policy=RetryPolicy((5, 300, 1800), 0.2, random.Random(1)),
            clock=self.clock,
            metrics=WebhookMetrics(),
            on_disabled=self._disabled,
        )

    @classmethod
    async def open(cls, tmp_path: Path, receiver: Receiver, **options: Any) -> "Harness":
        return cls(await DeliveryStore.open(tmp_path / "webhooks.db"), receiver, **options)

    async def _disabled(self, endpoint: str, reason: str) -> None:
        self.disabled.append((endpoint, reason))

    def jobs(self, *events: object) -> list[Job]:
        out: list[Job] = []
        for event in events:
            out += jobs_for(event, encode_event(event).decode(), self.endpoints)  # type: ignore[arg-type]
        return out

    async def fire_retries(self) -> None:
        """Let the pending retries come back, as their TTL would bring them."""
        pending, self.queue.retries = self.queue.retries, []
        for job, delay in pending:
            await self.clock.sleep_until(self.clock.now() + timedelta(seconds=delay))
            await self.dispatcher.handle(job)


def scripted(*statuses: int, retry_after: str | None = None) -> Callable[[WebhookRequest], Answer]:
    remaining = list(statuses)

    def answer(request: WebhookRequest) -> Answer:
        return Answer(remaining.pop(0), retry_after, "") if remaining else Answer(200, None, "")

    return answer


async def test_delivered_at_once(tmp_path: Path) -> None:
    receiver = Receiver()
    h = await Harness.open(tmp_path, receiver)
    for job in h.jobs(make_call_ringing()):
        await h.dispatcher.handle(job)
    assert receiver.ids() == ["211230100614_665-0"]
    assert receiver.requests[0].method == "GET"
    assert [a.outcome for a in await h.store.attempts()] == ["Delivered"]
    assert h.queue.retries == []


async def test_a_failing_chain_holds_back_only_itself(tmp_path: Path) -> None:
    failing_chain = "211230100614_665"

    def answer(request: WebhookRequest) -> Answer:
        assert request.params is not None
        ours = request.params["id"].startswith(failing_chain)
        first_try = sum((r.params or {})["id"].startswith(failing_chain) for r in receiver.requests) == 1
        return Answer(503 if ours and first_try else 200, None, "")

    receiver = Receiver(answer)
    h = await Harness.open(tmp_path, receiver)
    ring = make_call_ringing(link=0)
    end = make_call_ended(link=1)
    other = make_call_ringing(chain_id="211230100700_666", call_number=666)
    for job in h.jobs(ring, end, other):
        await h.dispatcher.handle(job)
    # the ringing failed; the chain's call end waits; the other chain went through
    assert receiver.ids() == ["211230100614_665-0", "211230100700_666-0"]
    [(retry, delay)] = h.queue.retries
    assert retry.attempt == 1 and 4.0 <= delay <= 6.0
    await h.fire_retries()
    assert receiver.ids() == [
        "211230100614_665-0",
        "211230100700_666-0",
        "211230100614_665-0",
        "211230100614_665-1",
    ]
    assert await h.store.blocker(retry.key) is None
    assert await h.store.next_held(retry.key) is None


async def test_retries_follow_the_schedule_then_dead_letter(tmp_path: Path) -> None:
    receiver = Receiver(lambda request: Answer(500, None, "boom"))
    h = await Harness.open(tmp_path, receiver)
    jobs = h.jobs(make_call_ringing(), make_call_ended())
    for job in jobs:
        await h.dispatcher.handle(job)
    delays = []
    while h.queue.retries:
        delays.append(h.queue.retries[0][1])
        await h.fire_retries()
    schedule = (5, 300, 1800) * 2  # the ringing's retries, then the held call end's
    assert all(0.8 * base <= d <= 1.2 * base for d, base in zip(delays, schedule, strict=True)), delays
    assert len(set(delays)) == len(delays)  # jittered, not fixed
    dead = await h.store.dead()
    # the ringing gave up after 4 attempts; then the held call end got its own 4 attempts
    assert [d.event_type for d in dead] == ["call.ringing", "call.ended"]
    assert dead[0].reason == "gave up after 4 attempts; last: HTTP 500"
    assert [a.response for a in await h.store.attempts(limit=1)] == ["boom"]
    assert len(receiver.requests) == 8


async def test_gone_disables_the_endpoint_and_keeps_the_rest(tmp_path: Path) -> None:
    receiver = Receiver(scripted(410))
    h = await Harness.open(tmp_path, receiver)
    for job in h.jobs(make_call_ringing(), make_call_ended()):
        await h.dispatcher.handle(job)
    assert len(receiver.requests) == 1  # nothing is sent after the 410
    assert h.disabled == [("crm", "http://crm.test/… answered 410 Gone")]  # its path may be a token
    assert [d.event_type for d in await h.store.dead()] == ["call.ringing", "call.ended"]  # kept for replay
    assert "crm" in await h.store.disabled()


async def test_an_endpoint_gone_is_disabled_once_when_deliveries_under_way_all_hear_it(
    tmp_path: Path,
) -> None:
    both_sent = asyncio.Event()

    class Gone(Receiver):
        async def __call__(self, request: WebhookRequest, answer_within: float) -> Answer:
            self.requests.append(request)
            if len(self.requests) == 2:
                both_sent.set()
            await both_sent.wait()  # two chains' deliveries in flight when the endpoint goes
            return Answer(410, None, "")

    h = await Harness.open(tmp_path, Gone())
    jobs = h.jobs(make_call_ringing(chain_id="211230100614_1"), make_call_ringing(chain_id="211230100615_2"))
    await asyncio.gather(*(h.dispatcher.handle(job) for job in jobs))
    assert h.disabled == [("crm", "http://crm.test/… answered 410 Gone")]  # one notice, not two
    assert len(await h.store.dead()) == 2


@pytest.mark.parametrize(("header", "at_least"), [("120", 120.0), ("Mon, 01 Jan 2024 10:00:00 GMT", 3600.0)])
async def test_retry_after_is_honoured(tmp_path: Path, header: str, at_least: float) -> None:
    receiver = Receiver(scripted(429, retry_after=header))
    h = await Harness.open(tmp_path, receiver)
    for job in h.jobs(make_call_ringing()):
        await h.dispatcher.handle(job)
    [(_, delay)] = h.queue.retries
    assert at_least <= delay <= at_least + 1


async def test_redirects_are_failures(tmp_path: Path) -> None:
    receiver = Receiver(scripted(302))
    h = await Harness.open(tmp_path, receiver)
    for job in h.jobs(make_call_ringing()):
        await h.dispatcher.handle(job)
    assert len(receiver.requests) == 1
    assert (await h.store.attempts())[0].outcome == "Failed"
    assert len(h.queue.retries) == 1


async def test_a_timeout_is_a_failure(tmp_path: Path) -> None:
    def answer(request: WebhookRequest) -> Exception:
        return TimeoutError()

    h = await Harness.open(tmp_path, Receiver(answer), timeout=2)
    for job in h.jobs(make_call_ringing()):
        await h.dispatcher.handle(job)
    attempt = (await h.store.attempts())[0]
    assert (attempt.status, attempt.outcome, attempt.response) == (None, "Failed", "timeout")


async def test_an_abandoned_block_is_released_through_the_shard(tmp_path: Path) -> None:
    receiver = Receiver(scripted(503))
    h = await Harness.open(tmp_path, receiver)
    for job in h.jobs(make_call_ringing(), make_call_ended()):
        await h.dispatcher.handle(job)
    h.queue.retries.clear()  # the retry is lost (say the process died before the broker had it)
    assert await h.dispatcher.sweep() == 0  # not overdue yet
    await h.clock.sleep_until(h.clock.now() + timedelta(seconds=6 + BLOCK_GRACE + 1))
    assert await h.dispatcher.sweep() == 1
    [release] = h.queue.submitted
    assert release.kind == "release"
    await h.dispatcher.handle(release)
    assert receiver.ids()[-1] == "211230100614_665-1"  # the held call end went out
    assert await h.store.blocker(release.key) is None


async def test_json_deliveries_verify_with_standardwebhooks(tmp_path: Path) -> None:
    receiver = Receiver(scripted(500))
    # standardwebhooks checks the timestamp against the real time: start the virtual clock now
    h = await Harness.open(
        tmp_path,
        receiver,
        start=datetime.now(UTC),
        format="json",
        secret=(SecretStr("whsec_bmV3IHNlY3JldCBmb3Igcm90YXRpb24="), SecretStr(SECRET)),
    )
    event = make_call_ended()
    for job in h.jobs(event):
        await h.dispatcher.handle(job)
    await h.fire_retries()
    first, second = receiver.requests
    for request in (first, second):
        assert request.method == "POST"
        payload = Webhook(SECRET).verify(
            request.body or b"", dict(request.headers)
        )  # the old secret still verifies
        assert payload["type"] == "call.ended"
        assert payload["data"]["chain_id"] == event.chain_id
        assert len(request.headers["webhook-signature"].split()) == 2
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == str(event.event_id)
    assert first.headers["webhook-timestamp"] != second.headers["webhook-timestamp"]  # re-signed on retry


async def test_events_are_filtered_per_endpoint(tmp_path: Path) -> None:
    h = await Harness.open(tmp_path, Receiver(), events=("call.ended",))
    assert [j.event_type for j in h.jobs(make_call_ringing(), make_call_ended())] == ["call.ended"]


async def test_an_event_sent_twice_is_delivered_once(tmp_path: Path) -> None:
    receiver = Receiver()
    h = await Harness.open(tmp_path, receiver)
    jobs = h.jobs(make_call_ringing(link=0), make_call_ended(link=1))
    for job in jobs + jobs:  # the monitor sent them again (the broker had not confirmed them)
        await h.dispatcher.handle(job)
    assert receiver.ids() == ["211230100614_665-0", "211230100614_665-1"]


async def test_a_copy_of_a_held_job_is_not_held_again(tmp_path: Path) -> None:
    receiver = Receiver(scripted(503))
    h = await Harness.open(tmp_path, receiver)
    ring, end = h.jobs(make_call_ringing(link=0), make_call_ended(link=1))
    for job in (ring, end, end):  # the ringing fails: the call end is held, and comes again
        await h.dispatcher.handle(job)
    await h.fire_retries()
    assert receiver.ids() == ["211230100614_665-0", "211230100614_665-0", "211230100614_665-1"]


async def test_a_copy_after_a_crash_mid_delivery_is_attempted_again(tmp_path: Path) -> None:
    def crash(request: WebhookRequest) -> BaseException:
        receiver.answer = lambda request: Answer(200, None, "")
        return SystemExit("killed mid-delivery")  # not an error the sender handles: the process ends

    receiver = Receiver(crash)
    h = await Harness.open(tmp_path, receiver)
    (ring,) = h.jobs(make_call_ringing())
    with pytest.raises(SystemExit):
        await h.dispatcher.handle(ring)
    await h.dispatcher.handle(ring)  # the broker delivers the unacked message again
    assert receiver.ids() == ["211230100614_665-0", "211230100614_665-0"]  # the same webhook id


async def test_a_replayed_dead_letter_is_delivered_again(tmp_path: Path) -> None:
    receiver = Receiver(scripted(500, 500, 500, 500))
    h = await Harness.open(tmp_path, receiver)
    (ring,) = h.jobs(make_call_ringing())
    await h.dispatcher.handle(ring)
    for _ in range(3):
        await h.fire_retries()
    (dead,) = await h.store.dead()  # four failures: given up on
    await h.dispatcher.handle(
        Job.model_validate_json(dead.job).model_copy(update={"attempt": 0, "replayed": True})
    )
    assert len(receiver.requests) == 5
    assert (await h.store.attempts())[0].outcome == "Delivered"


async def test_a_long_release_is_never_taken_for_an_abandoned_one(tmp_path: Path) -> None:
    """Each delivery takes 50 s (a slow endpoint), five are held: the release takes longer than
    RELEASE_GRACE, yet the key is never overdue, so no sweep releases it a second time."""
    answers = iter([Answer(503, None, "")])
    overdue: list[int] = []

    class Slow(Receiver):
        async def __call__(self, request: WebhookRequest, answer_within: float) -> Answer:
            overdue.append(len(await h.store.overdue(h.clock.now().timestamp())))  # what a sweep would take
            await h.clock.sleep_until(h.clock.now() + timedelta(seconds=50))
            return next(answers, Answer(200, None, ""))

    h = await Harness.open(tmp_path, Slow())
    first, *held = h.jobs(make_call_ringing(), *(make_call_ended(link=n) for n in range(1, 6)))
    for job in (first, *held):  # the first fails: the key is blocked, the others held
        await h.dispatcher.handle(job)
    await h.fire_retries()
    assert len(overdue) == 7 and not any(overdue)
    assert await h.store.blocker(first.key) is None


async def test_a_retry_that_never_comes_back_is_attempted_by_the_sweep_in_order(tmp_path: Path) -> None:
    """The retry message is lost (a broker node went down as it moved from its retry queue back
    to its shard): once its block is overdue, the sweep's release attempts it from the store,
    before the chain's held webhooks."""
    receiver = Receiver(scripted(503))
    h = await Harness.open(tmp_path, receiver)
    for job in h.jobs(make_call_ringing(), make_call_ended()):
        await h.dispatcher.handle(job)
    [(lost, delay)] = h.queue.retries
    h.queue.retries.clear()
    await h.clock.sleep_until(h.clock.now() + timedelta(seconds=delay))
    assert await h.dispatcher.sweep() == 0  # not yet: a retry may be a little late
    await h.clock.sleep_until(h.clock.now() + timedelta(seconds=BLOCK_GRACE + 2))
    assert await h.dispatcher.sweep() == 1
    for release in h.queue.submitted:
        await h.dispatcher.handle(release)
    assert receiver.ids() == ["211230100614_665-0", "211230100614_665-0", "211230100614_665-1"]
    assert await h.store.blocker(lost.key) is None


async def test_a_retry_that_comes_late_or_twice_is_skipped(tmp_path: Path) -> None:
    receiver = Receiver(scripted(503))
    h = await Harness.open(tmp_path, receiver)
    for job in h.jobs(make_call_ringing(), make_call_ended()):
        await h.dispatcher.handle(job)
    [(late, delay)] = h.queue.retries
    await h.clock.sleep_until(h.clock.now() + timedelta(seconds=delay + BLOCK_GRACE + 2))
    await h.dispatcher.sweep()
    for release in h.queue.submitted:  # the sweep came first: delivered, the call end released
        await h.dispatcher.handle(release)
    await h.dispatcher.handle(late)  # then the retry after all, and a copy of it
    await h.dispatcher.handle(late)
    assert receiver.ids() == ["211230100614_665-0", "211230100614_665-0", "211230100614_665-1"]
    assert len(h.queue.retries) == 1  # nothing forked off it


async def test_an_endpoint_enabled_again_by_a_replay_is_used_at_once(tmp_path: Path) -> None:
    """The dispatcher trusts a look at the disabled endpoints for a moment, but never one that
    found the endpoint disabled: a replay right after is delivered, not buried again."""
    receiver = Receiver(scripted(410))
    h = await Harness.open(tmp_path, receiver)
    ring, end = h.jobs(make_call_ringing(), make_call_ended())
    await h.dispatcher.handle(ring)  # 410: the endpoint is disabled
    await h.dispatcher.handle(end)  # buried unsent: the look that found it disabled is fresh
    assert len(await h.store.dead()) == 2 and len(receiver.requests) == 1
    await h.store.enable("crm")  # what a replay does first, then it sends the jobs again
    for job in (ring, end):
        await h.dispatcher.handle(job.model_copy(update={"replayed": True}))
    assert receiver.ids()[1:] == ["211230100614_665-0", "211230100614_665-1"]
