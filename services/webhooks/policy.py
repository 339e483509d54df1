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
        """The distinct delays of the schedule: one retry queue each."""
        return tuple(sorted(set(self.schedule)))

    def tier(self, delay: float) -> float:
        """The retry queue for `delay`: the shortest tier whose jittered delays reach it, so that
        in one queue the delays differ by the jitter at most and none waits long behind another."""
        for base in self.tiers:
            if delay <= base * (1 + self._jitter):
                return base
        return self.tiers[-1]
