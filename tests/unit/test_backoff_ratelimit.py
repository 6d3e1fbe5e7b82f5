from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from connector.config.settings import RetrySettings
from connector.ingest.backoff import Backoff, parse_retry_after
from connector.ingest.ratelimit import TokenBucket

pytestmark = pytest.mark.unit


def test_full_jitter_is_bounded_by_exponential_ceiling_and_cap() -> None:
    b = Backoff(RetrySettings(initial_backoff_ms=500, max_backoff_ms=8000), random.Random(1))
    assert [b.ceiling(a) for a in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert b.ceiling(10_000) == 8.0
    for attempt in range(8):
        delays = [b.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= b.ceiling(attempt) for d in delays)
        # full jitter spreads over the whole range, not just near the ceiling
        assert min(delays) < b.ceiling(attempt) * 0.2 and max(delays) > b.ceiling(attempt) * 0.8


def test_equal_jitter_differs_between_seeds_and_stays_within_half_and_the_ceiling() -> None:
    one, other = Backoff((5.0, 60.0), random.Random(1)), Backoff((5.0, 60.0), random.Random(2))
    first = [one.equal_jitter(a) for a in range(8)]
    second = [other.equal_jitter(a) for a in range(8)]
    assert first != second  # two pods probing after the same failure do not probe in lockstep
    for waits, backoff in ((first, one), (second, other)):
        for attempt, wait in enumerate(waits):
            assert backoff.ceiling(attempt) / 2 <= wait <= backoff.ceiling(attempt)
            assert 2.5 <= wait <= 60.0
    again = Backoff((5.0, 60.0), random.Random(1))
    assert first == [again.equal_jitter(a) for a in range(8)]  # a seeded source repeats itself


def test_equal_jitter_grows_to_the_cap() -> None:
    b = Backoff((1.0, 30.0), random.Random(7))
    assert [b.ceiling(a) for a in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    waits = [b.equal_jitter(a) for a in range(40)]
    assert waits[0] <= 1.0 < 15.0 <= min(waits[5:])
    assert max(waits) <= 30.0
    assert all(15.0 <= b.equal_jitter(10_000) <= 30.0 for _ in range(200))
    # every wait is at least half its ceiling, so the lower bound doubles with each attempt
    assert all(w >= b.ceiling(a) / 2 for a, w in enumerate(waits))


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2024, 1, 15, 10, 30, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("Mon, 15 Jan 2024 10:30:12 GMT", now) == 12.0
    assert parse_retry_after("Mon, 15 Jan 2024 10:29:00 GMT", now) == 0.0
    for bad in (None, "", "soon", "-3"):
        assert parse_retry_after(bad, now) is None


class FakeTime:
    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


def test_token_bucket_allows_burst_then_rate() -> None:
    ft = FakeTime()
    bucket = TokenBucket(rate=10, clock=ft.now)
    for _ in range(10):
        assert bucket.acquire(ft.sleep) == 0.0
    waited = bucket.acquire(ft.sleep)
    assert waited == pytest.approx(0.1)
    # over 5 simulated seconds at most burst + rate * 5 requests pass
    start = ft.t
    count = 0
    while ft.t - start < 5.0:
        bucket.acquire(ft.sleep)
        count += 1
    assert count <= 10 * 5 + 1


def test_token_bucket_try_acquire_reports_wait() -> None:
    ft = FakeTime()
    bucket = TokenBucket(rate=2, burst=1, clock=ft.now)
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(0.5)
    ft.t += 0.5
    assert bucket.try_acquire() == 0.0
    with pytest.raises(ValueError):
        TokenBucket(rate=0)
