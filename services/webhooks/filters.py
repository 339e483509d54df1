"""What webhook templates may use beyond Jinja2's own filters (`tojson`, `urlencode`, `default`…):
times as each CRM wants them, and phone numbers as digits."""

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any


def utc(value: str | datetime, fmt: str = "%Y-%m-%dT%H:%M:%SZ", minus: float = 0.0) -> str:
    """An event time (ISO text, as in `event.occurred_at`) in UTC, formatted; `minus` seconds
    earlier (a call's start: `event.occurred_at | utc(minus=event.duration)`)."""
    return (_time(value).astimezone(UTC) - timedelta(seconds=minus)).strftime(fmt)


def epoch_ms(value: str | datetime, minus: float = 0.0) -> int:
    """An event time as milliseconds since 1970 (HubSpot's `hs_timestamp`)."""
    return int((_time(value).timestamp() - minus) * 1000)


def seconds_since(value: str | datetime, start: str | datetime) -> float:
    """Seconds from `start` to `value` (two event times): a call's talk time across its links."""
    return (_time(value) - _time(start)).total_seconds()


def _time(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def digits(value: Any) -> str:
    """Only the digits of a number (`+420 777-000 111` → `420777000111`)."""
    return re.sub(r"\D", "", str(value))


FILTERS: dict[str, Callable[..., Any]] = {
    "utc": utc,
    "epoch_ms": epoch_ms,
    "seconds_since": seconds_since,
    "digits": digits,
}
