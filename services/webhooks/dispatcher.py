"""The ordered, at-least-once delivery of jobs (one shard's consumer calls `handle`).

Per ordering key (endpoint + chain), at most one delivery is outstanding:

- A job whose key has no blocker is attempted at once. If it fails, it becomes the key's
  blocker (recorded in the store), goes to a retry queue for its delay, and later jobs of the key
  are held in the store in arrival order.
- When the blocker comes back and is delivered, or is dead-lettered (retries exhausted, endpoint
  gone), the held jobs are released in order; the first that fails becomes the new blocker.
- Other keys never wait: a failing chain holds back only itself.

Each event's job is handled once: a copy that comes again (a monitor sending again what the
broker had not confirmed, say) is skipped, unless the first was cut short by a crash.

Crash safety: the store is written before the broker is told, and the incoming message is acked
only after `handle` returns, so a crash at any step repeats an attempt (same webhook-id) at
worst. If a process dies while releasing, the key's block becomes overdue and `sweep` (any
replica) sends a release job through the key's own shard, so order still holds. The store also
keeps the retry a blocked key waits for: if it does not come back in time (lost with a broker
node, say), the sweep's release attempts it from there, and a retry that comes after all (late,
or twice) is no longer awaited and is skipped, so it can neither repeat out of order nor fork.
"""

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import datetime

from shared.clock import Clock
from shared.events import Message
from shared.logging import endpoint_address, redact
from shared.settings import EndpointSettings

from .formats import build_request
from .jobs import Job
from .metrics import WebhookMetrics
from .outgoing import WebhookRequest, described, masked
from .policy import Delivered, Failed, Gone, RetryPolicy
from .ports import EndpointDisabled, JobQueue
from .rendering import context, facts
from .request_text import parse, remembered
from .sender import Result, Sender
from .store import Attempt, DeliveryStore
from .templates import SUFFIX, RenderError, TemplateSet

logger = logging.getLogger(__name__)

# how long past its due time a retry may be late before the sweep attempts it from the store (a
# retry that comes later is skipped: a sweep early costs nothing but an attempt out of its turn)
BLOCK_GRACE = 30.0
# seconds a look at the disabled endpoints that found an endpoint enabled is trusted
DISABLED_FRESH = 1.0
# while a key's held jobs are released, its block is due this long after an attempt's timeout
# (a crash mid-release)
RELEASE_GRACE = 60.0


class Dispatcher:
    # its collaborators: where to, how to send, the order it keeps, the jobs, when to retry, the
    # time, and whom it reports to; fewer would hide one in another
    def __init__(  # noqa: PLR0913
        self,
        endpoints: Mapping[str, EndpointSettings],
        sender: Sender,
        store: DeliveryStore,
        queue: JobQueue,
        *,
        policy: RetryPolicy,
        clock: Clock,
        metrics: WebhookMetrics,
        on_disabled: EndpointDisabled,
    ) -> None:
        self._endpoints = endpoints
        self._sender = sender
        self._store = store
        self._queue = queue
        self._policy = policy
        self._clock = clock
        self._metrics = metrics
        self._on_disabled = on_disabled
        self._disabled_seen: tuple[float, dict[str, str]] = (0.0, {})  # (monotonic time, endpoints)
        # compiled here, at start-up: a template's mistake stops the service with its file and line
        self._templates = {name: TemplateSet.of(e) for name, e in endpoints.items() if e.templated}

    async def handle(self, job: Job) -> None:
        awaited, taken = await self._store.state(job.key, job.job_id)
        blocker = awaited[0] if awaited else None
        if job.kind == "release":
            if blocker == job.blocker:
                await self._resume(job.key, awaited[1] if awaited else None)
            return
        first = job.attempt == 0 and not job.replayed  # an event's job, as it came in
        retry = job.attempt > 0 and not job.replayed
        if (first and taken) or (retry and not _is_awaited(job, awaited)):
            logger.info(
                "%s %s to %s: %s; skipped",
                job.event_type,
                job.chain,
                job.endpoint,
                "a copy was handled already" if first else f"attempt {job.attempt + 1} is no longer awaited",
            )
            self._metrics.duplicate(job.endpoint)
            return
        if blocker is not None and blocker != job.job_id:
            await self._store.hold(job.key, job.model_dump_json())
        elif await self._attempt(job) and blocker is not None:
            await self._release(job.key)
        if first:  # only now: a copy that comes after a crash mid-delivery is attempted again
            await self._store.take(job.job_id, self._clock.now().timestamp())

    async def sweep(self) -> int:
        """Send a release job for every abandoned block; returns how many."""
        overdue = await self._store.overdue(self._clock.now().timestamp())
        for key, blocker in overdue:
            endpoint, scope = key.split("|", 1)
            logger.warning(
                "delivery order for %s: blocker %s is overdue; releasing held deliveries", key, blocker
            )
            await self._queue.submit(
                Job(kind="release", endpoint=endpoint, key=key, chain=scope, blocker=blocker)
            )
        if overdue:
            await self._queue.flush()
        return len(overdue)

    async def _resume(self, key: str, retry: str | None) -> None:
        """An overdue block: attempt the retry it waited for, if it never came; then release."""
        if retry is not None:
            job = Job.model_validate_json(retry)
            logger.warning(
                "%s %s to %s: its retry did not come back in time; attempted from the store",
                job.event_type,
                job.chain,
                job.endpoint,
            )
            if not await self._attempt(job):
                return  # failed again: a new retry is awaited
        await self._release(key)

    async def _release(self, key: str) -> None:
        while (held := await self._store.next_held(key)) is not None:
            held_id, text = held
            job = Job.model_validate_json(text)
            # due again before each attempt, past the longest it may take: a release that takes
            # long (many held jobs, a slow endpoint) is never mistaken for an abandoned one
            endpoint = self._endpoints.get(job.endpoint)
            longest = endpoint.timeout if endpoint else 0.0
            await self._store.block(key, job.job_id, self._clock.now().timestamp() + longest + RELEASE_GRACE)
            proceed = await self._attempt(job)
            await self._store.forget_held(held_id)
            if not proceed:
                return
        await self._store.unblock(key)

    async def _attempt(self, job: Job) -> bool:
        """Try once; True when the key may go on (delivered, or given up on), False when blocked."""
        endpoint = self._endpoints.get(job.endpoint)
        disabled = await self._disabled(job.endpoint)
        if endpoint is None or not endpoint.enabled or job.endpoint in disabled:
            reason = disabled.get(job.endpoint) or "endpoint not configured or disabled"
            await self._bury(job, reason)
            return True
        now, event = self._clock.now(), job.message()
        memory = await self._store.recall(job.key) if endpoint.templated else {}
        try:
            request = await self._request(job.endpoint, endpoint, event, now, memory)
        except (RenderError, ValueError) as error:  # the template's fault: no retry will mend it
            await self._bury(job, f"template: {error}")
            return True
        if request is None:
            if endpoint.templated:  # nothing to send, but a later template may ask about it
                await self._store.remember(job.key, facts(event, memory), now.timestamp())
            return True
        result = await self._sender.send(request, endpoint.timeout)
        outcome, attempt = result.outcome, job.attempt + 1
        await self._log(job, attempt, now, result, request)
        if isinstance(outcome, Delivered) and endpoint.templated:
            learnt = facts(event, memory) | remembered(request.remember, result.answer)
            await self._store.remember(job.key, learnt, now.timestamp())
        if isinstance(outcome, Delivered):
            logger.debug(
                "%s %s delivered to %s in %.0f ms", job.event_type, job.chain, job.endpoint, result.latency_ms
            )
            return True
        if isinstance(outcome, Gone):
            await self._gone(job, f"{endpoint_address(endpoint.url)} answered 410 Gone", now)
            return True
        assert isinstance(outcome, Failed)
        return await self._failed(job, outcome, attempt)

    async def _request(
        self, name: str, endpoint: EndpointSettings, event: Message, now: datetime, memory: dict[str, str]
    ) -> WebhookRequest | None:
        """What to send `endpoint` for `event`: its format, or its templates with what the chain
        taught so far (`memory`: its earlier events, the CRM's ids)."""
        templates = self._templates.get(name)
        if templates is None:
            call_info = endpoint.recording_call_info
            return build_request(
                endpoint.url, endpoint.format, endpoint.secret, event, now, call_info=call_info
            )
        seen = context(name, endpoint, event, now, memory)
        # in a thread: a template that runs to its time bound holds up no other delivery
        text = await asyncio.to_thread(templates.render, event.type, seen)
        return None if text is None else parse(text, f"{templates.origin}/{event.type}{SUFFIX}")

    async def _log(
        self, job: Job, attempt: int, now: datetime, result: Result, request: WebhookRequest
    ) -> None:
        """The attempt, and the request and answer without the endpoint's secrets (`described`)."""
        outcome, endpoint = result.outcome, self._endpoints[job.endpoint]
        secrets = [s.get_secret_value() for s in (*endpoint.secret, *filter(None, [endpoint.token]))]
        await self._store.log_attempt(
            Attempt(
                now.timestamp(),
                job.endpoint,
                job.event_id,
                job.event_type,
                job.chain,
                attempt,
                outcome.status,
                type(outcome).__name__,
                result.latency_ms,
                masked(redact(result.answer), secrets),
                described(request, secrets),
            )
        )
        self._metrics.attempted(job.endpoint, type(outcome).__name__, result.latency_ms / 1000)

    async def _disabled(self, endpoint: str) -> dict[str, str]:
        """The disabled endpoints. A look that found `endpoint` enabled is trusted for
        DISABLED_FRESH seconds (a round trip less per delivery): another replica's 410 costs at
        most an attempt more, which hears 410 itself; one that found it disabled is never trusted
        (a replay enables it again)."""
        looked, disabled = self._disabled_seen
        if endpoint in disabled or time.monotonic() - looked > DISABLED_FRESH:
            disabled = await self._store.disabled()
            self._disabled_seen = (time.monotonic(), disabled)
        return disabled

    async def _gone(self, job: Job, reason: str, now: datetime) -> None:
        """The receiver wants no more: its endpoint is disabled (said once, also when several
        deliveries under way hear it), the job buried."""
        self._disabled_seen = (0.0, {})  # look again next time
        if await self._store.disable(now.timestamp(), job.endpoint, reason):
            logger.error("endpoint %s disabled: %s", job.endpoint, reason)
            await self._on_disabled(job.endpoint, reason)
        await self._bury(job, reason)

    async def _failed(self, job: Job, outcome: Failed, attempt: int) -> bool:
        """Retry later (the key blocked meanwhile; False), or give up (buried; True)."""
        delay = self._policy.delay(attempt, outcome.retry_after)
        if delay is None:
            await self._bury(job, f"gave up after {attempt} attempts; last: {outcome.reason}")
            return True
        logger.info(
            "%s %s to %s failed (%s); attempt %d in %.0f s",
            job.event_type,
            job.chain,
            job.endpoint,
            outcome.reason,
            attempt + 1,
            delay,
        )
        wait = self._policy.tier(delay)  # what the job waits in its retry queue: `delay` or a little more
        retry = job.model_copy(update={"attempt": attempt})
        due = self._clock.now().timestamp() + wait + BLOCK_GRACE  # from now: the attempt took a while
        await self._store.block(job.key, job.job_id, due, retry.model_dump_json())
        self._metrics.retried(job.endpoint)
        await self._queue.retry(retry, delay)
        return False

    async def _bury(self, job: Job, reason: str) -> None:
        logger.warning("%s %s to %s dead-lettered: %s", job.event_type, job.chain, job.endpoint, reason)
        await self._store.bury(
            self._clock.now().timestamp(),
            job.endpoint,
            job.model_dump_json(),
            job.event_type,
            job.chain,
            reason,
        )
        self._metrics.dead_lettered(job.endpoint)


def _is_awaited(job: Job, awaited: tuple[str, str | None] | None) -> bool:
    """Whether retry `job` is the one its key waits for (a store from before the retry was kept
    in it: whether the job is the key's blocker)."""
    if awaited is None or awaited[0] != job.job_id:
        return False
    return awaited[1] is None or Job.model_validate_json(awaited[1]).attempt == job.attempt
