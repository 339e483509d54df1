"""What an attempt's result means, and when to try again. Pure.

Outcomes (the retry decision is a type, not scattered status-code checks):

    Outcome
    ├── Delivered          2xx
    ├── Gone               410: the receiver wants no more; the endpoint is disabled
    └── Failed             anything else: 3xx (redirects are not followed), 4xx, 5xx, timeout,
                           connection error; `retry_after` when the receiver asked (429/503)
"""

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from shared.settings import WebhooksSettings

MAX_RETRY_AFTER = 24 * 3600.0
# the waits a retry queue may have: the R10 series (1, 1.25, 1.6 … 8 in each decade), so that a
# delay rounded up to the next one waits at most 28 % longer than asked
R10 = (1.0, 1.25, 1.6, 2.0, 2.5, 3.15, 4.0, 5.0, 6.3, 8.0)
LADDER = tuple(round(m * 10.0**e, 6) for e in range(-2, 6) for m in R10)


@dataclass(frozen=True, slots=True)
class Delivered:
    status: int


@dataclass(frozen=True, slots=True)
class Gone:
    status: int


@dataclass(frozen=True, slots=True)
class Failed:
    status: int | None  # None: no answer (timeout, refused connection)
    reason: str
    retry_after: float | None = None


Outcome = Delivered | Gone | Failed


def classify(status: int, retry_after_header: str | None, now: datetime) -> Outcome:
    if 200 <= status < 300:
        return Delivered(status)
    if status == 410:
        return Gone(status)
    retry_after = parse_retry_after(retry_after_header, now) if status in (429, 503) else None
    reason = "redirect not followed" if 300 <= status < 400 else f"HTTP {status}"
    return Failed(status, reason, retry_after)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), clamped to a day."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class RetryPolicy:
    def __init__(self, schedule: tuple[float, ...], jitter: float, rng: random.Random | None = None) -> None:
        self.schedule = schedule
        self._jitter = jitter
        self._rng = rng or random.Random()

    @classmethod
    def configured(cls, settings: WebhooksSettings) -> "RetryPolicy":
        return cls(settings.retry_schedule, settings.jitter)

    def delay(self, failed_attempts: int, retry_after: float | None = None) -> float | None:
        """Seconds until the next attempt after `failed_attempts` failures; None: give up."""
        if failed_attempts > len(self.schedule):
            return None
        base = self.schedule[failed_attempts - 1]
        delay = base * self._rng.uniform(1 - self._jitter, 1 + self._jitter)
        return max(delay, retry_after) if retry_after is not None else delay

    @property
    def tiers(self) -> tuple[float, ...]:
        """The waits of the retry queues: one queue each, every message in it waits the same, so
        none is held behind a longer one (RabbitMQ expires messages at a queue's head only).
        From the shortest delay the schedule can give to the longest a Retry-After can ask."""
        lowest = min(self.schedule) * (1 - self._jitter)
        highest = max(max(self.schedule) * (1 + self._jitter), MAX_RETRY_AFTER)
        first = next(i for i, wait in enumerate(LADDER) if wait >= lowest)
        last = next((i for i, wait in enumerate(LADDER) if wait >= highest), len(LADDER) - 1)
        return LADDER[first : last + 1]

    def tier(self, delay: float) -> float:
        """The retry queue for `delay`: the shortest wait that is not shorter (a Retry-After is
        a minimum)."""
        return next((wait for wait in self.tiers if wait >= delay), self.tiers[-1])
