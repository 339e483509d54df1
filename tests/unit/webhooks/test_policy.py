"""The retry policy: what an answer means, how long to wait, which retry queue a wait goes to."""

import random
from datetime import UTC, datetime
from itertools import pairwise

import pytest

from services.webhooks.policy import Delivered, Failed, Gone, RetryPolicy, classify, parse_retry_after

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Delivered(200)),
        (204, Delivered(204)),
        (410, Gone(410)),
        (301, Failed(301, "redirect not followed")),
    ],
)
def test_what_an_answer_means(status: int, outcome: object) -> None:
    assert classify(status, None, NOW) == outcome


def test_a_retry_after_counts_only_on_429_and_503() -> None:
    assert classify(429, "7", NOW) == Failed(429, "HTTP 429", 7.0)
    assert classify(503, "Mon, 30 Nov 2026 12:01:00 GMT", NOW) == Failed(503, "HTTP 503", 60.0)
    assert classify(500, "7", NOW) == Failed(500, "HTTP 500", None)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), ("Mon, 30 Nov 2026 11:00:00 GMT", 0.0), ("999999", 86400.0), ("soon", None), ("", None)],
    ids=["seconds", "a date passed", "clamped to a day", "garbage", "empty"],
)
def test_a_retry_after_header_is_read_in_both_forms(header: str, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_delays_follow_the_schedule_within_the_jitter_then_give_up() -> None:
    policy = RetryPolicy((5, 300, 1800), 0.2, random.Random(1))
    for failures, base in enumerate((5, 300, 1800), 1):
        delays = [policy.delay(failures) for _ in range(200)]
        assert all(d is not None and base * 0.8 <= d <= base * 1.2 for d in delays)
        assert len(set(delays)) > 100  # jittered, not one value
    assert policy.delay(4) is None


def test_a_receiver_asking_for_longer_is_obeyed_never_shorter() -> None:
    policy = RetryPolicy((5,), 0.0)
    assert policy.delay(1, retry_after=60) == 60
    assert policy.delay(1, retry_after=1) == 5


def test_each_delay_waits_in_the_shortest_queue_not_shorter_and_at_most_28_percent_longer() -> None:
    policy = RetryPolicy((5, 300, 300, 1800), 0.2)
    tiers = policy.tiers
    assert tiers[0] == 4.0 and tiers[-1] == 100_000.0  # from 5 s less the jitter to a day's Retry-After
    assert all(b / a <= 1.28 for a, b in pairwise(tiers))
    assert [policy.tier(d) for d in (4, 6, 7, 250, 360, 361, 2000, 99999)] == [
        4.0,
        6.3,
        8.0,
        250.0,
        400.0,
        400.0,
        2000.0,
        100_000.0,
    ]
    for delay in (4.2, 7.0, 333.0, 5000.0, 86_400.0):
        assert delay <= policy.tier(delay) <= delay * 1.28
