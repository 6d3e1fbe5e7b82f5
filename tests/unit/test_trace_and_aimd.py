"""Trace ids (parsing traceparent, X-Trace-Id on every request) and the adaptive (AIMD) token
bucket, on a fake clock and httpx.MockTransport."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from connector.config.settings import BatchingSettings, DestinationSettings, RetrySettings
from connector.ingest.client import IngestClient
from connector.ingest.ratelimit import AdaptiveTokenBucket
from connector.runtime.clock import FakeClock
from connector.runtime.metrics import Metrics
from connector.runtime.tracing import new_trace_id, trace_id_from
from tests.support.http import RecordingAPI, error, logs_in_memory, scripted, valid_record

pytestmark = pytest.mark.unit

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(autouse=True)
def _logs() -> Iterator[io.StringIO]:
    with logs_in_memory() as stream:
        yield stream


# ------------------------------------------------------------------------------------ traceparent
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("traceparent", f"00-{TRACE}-00f067aa0ba902b7-01".encode())], TRACE),
        ([("TraceParent", f" 00-{TRACE}-00f067aa0ba902b7-00 ".encode())], TRACE),
        ([("other", b"x"), ("traceparent", f"00-{TRACE}-00f067aa0ba902b7-01".encode())], TRACE),
        ([], None),
        ([("traceparent", None)], None),
        ([("traceparent", f"00-{TRACE.upper()}-00f067aa0ba902b7-01".encode())], None),  # upper case
        ([("traceparent", f"01-{TRACE}-00f067aa0ba902b7-01".encode())], None),  # unknown version
        ([("traceparent", f"00-{'0' * 32}-00f067aa0ba902b7-01".encode())], None),  # all-zero trace
        ([("traceparent", f"00-{TRACE}-{'0' * 16}-01".encode())], None),  # all-zero parent
        ([("traceparent", f"00-{TRACE[:-1]}-00f067aa0ba902b7-01".encode())], None),  # short
        ([("traceparent", b"\xff\xfe")], None),
    ],
)
def test_trace_id_from_traceparent(headers: list[tuple[str, bytes | None]], expected: str | None) -> None:
    assert trace_id_from(headers) == expected


def test_new_trace_ids_are_32_hex_and_differ() -> None:
    ids = {new_trace_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(t) == 32 and int(t, 16) >= 0 and t == t.lower() for t in ids)


# ------------------------------------------------------------------------------------ X-Trace-Id
def client(api: RecordingAPI, fake: FakeClock, metrics: Metrics | None = None, **dest: Any) -> IngestClient:
    return IngestClient(
        DestinationSettings(
            base_url="https://gateway.test/apigw/ingest",
            account_id="acc",
            workspace_id="ws",
            auth_token=SecretStr("tok_secret_1"),
            **dest,
        ),
        RetrySettings(initial_backoff_ms=500, max_backoff_ms=8000),
        BatchingSettings(max_records=4),
        transport=api.transport(),
        clock=fake.now,
        sleep=fake.sleep,
        rng=random.Random(1),
        metrics=metrics,
    )


def parts(n: int) -> list[bytes]:
    return [json.dumps(valid_record("deposit", i)).encode() for i in range(n)]


def test_every_request_of_an_upload_carries_its_trace_id_and_the_key_ignores_it() -> None:
    fake = FakeClock()
    # A 503 retried, then a batch split by a 400: every request belongs to the same upload.
    api = RecordingAPI(scripted(503, 200, error(400, "bad"), 200, 200))
    result = client(api, fake).upload_encoded("deposit", parts(8), trace_id=TRACE)
    assert result.trace_id == TRACE
    assert len(api.requests) == 5
    assert {r.headers["x-trace-id"] for r in api.requests} == {TRACE}
    retried = api.requests[0], api.requests[1]
    assert retried[0].headers["x-idempotency-key"] == retried[1].headers["x-idempotency-key"]

    again = RecordingAPI(scripted())
    client(again, fake).upload_encoded("deposit", parts(4), trace_id=new_trace_id())
    # Same body, another trace: the idempotency key must not change (retries after a restart).
    assert again.requests[0].headers["x-idempotency-key"] == api.requests[0].headers["x-idempotency-key"]


def test_an_upload_without_a_trace_id_gets_a_new_one_each_time(_logs: io.StringIO) -> None:
    fake = FakeClock()
    api = RecordingAPI(scripted())
    c = client(api, fake)
    first = c.upload_encoded("deposit", parts(2))
    second = c.upload_encoded("deposit", parts(2))
    assert first.trace_id != second.trace_id
    assert [r.headers["x-trace-id"] for r in api.requests] == [first.trace_id, second.trace_id]
    logged = [json.loads(line) for line in _logs.getvalue().splitlines()]
    uploads = [e for e in logged if e.get("event") == "upload finished"]
    assert [e["trace_id"] for e in uploads] == [first.trace_id, second.trace_id]


def test_a_retry_warning_names_the_trace_id(_logs: io.StringIO) -> None:
    fake = FakeClock()
    client(RecordingAPI(scripted(503)), fake).upload_encoded("deposit", parts(1), trace_id=TRACE)
    retries = [json.loads(line) for line in _logs.getvalue().splitlines() if "retrying" in line]
    assert [e["trace_id"] for e in retries] == [TRACE]


# ------------------------------------------------------------------------------------ AIMD bucket
def drain(bucket: AdaptiveTokenBucket, fake: FakeClock, seconds: float) -> int:
    """Take tokens as fast as the bucket allows for `seconds`; returns how many were taken."""
    end = fake.now() + seconds
    taken = 0
    while True:
        wait = bucket.try_acquire()
        if wait > 0:
            if fake.now() + wait > end:
                return taken
            fake.sleep(wait)
            continue
        taken += 1


def test_a_429_halves_the_rate_once_per_overshoot_down_to_the_floor() -> None:
    fake = FakeClock()
    bucket = AdaptiveTokenBucket(100.0, clock=fake.now, floor_ratio=1 / 8)
    sent = fake.now()
    fake.advance(0.1)
    assert bucket.throttled(sent) is True
    assert bucket.rate == 50.0
    # Answers to requests sent before that decrease report the same overshoot.
    assert bucket.throttled(sent) is False
    assert bucket.rate == 50.0
    for expected in (25.0, 12.5, 12.5, 12.5):
        fake.advance(0.1)
        assert bucket.throttled(fake.now()) is True
        assert bucket.rate == expected


def test_after_a_quiet_period_the_rate_climbs_back_linearly_to_the_configured_one() -> None:
    fake = FakeClock()
    bucket = AdaptiveTokenBucket(100.0, clock=fake.now, quiet_s=5.0, recover_per_s=0.05)
    bucket.throttled(fake.now())
    assert bucket.rate == 50.0
    fake.advance(5.0)
    bucket.try_acquire()
    assert bucket.rate == 50.0  # still quiet
    fake.advance(4.0)
    bucket.try_acquire()
    assert bucket.rate == pytest.approx(70.0)  # + 5 % of 100 per second
    fake.advance(60.0)
    bucket.try_acquire()
    assert bucket.rate == 100.0  # never above the configured rate
    fake.advance(60.0)
    bucket.try_acquire()
    assert bucket.rate == 100.0


def test_the_lowered_rate_is_what_the_bucket_hands_out() -> None:
    fake = FakeClock()
    bucket = AdaptiveTokenBucket(100.0, clock=fake.now, quiet_s=1000.0)
    assert drain(bucket, fake, 10.0) == pytest.approx(100 + 1000, abs=2)  # burst, then the rate
    bucket.throttled(fake.now())
    bucket.throttled(fake.now() + 0.001)  # a request sent after the decrease: lowered again
    assert bucket.rate == 25.0
    fake.advance(0.01)
    # No saved-up burst survives the decrease, and the burst shrinks with the rate.
    assert drain(bucket, fake, 10.0) == pytest.approx(250, abs=2)
    fake.advance(100.0)
    assert drain(bucket, fake, 0.001) <= 26


def test_two_buckets_sharing_a_limit_settle_under_it() -> None:
    """Two replicas, each configured at the whole limit (100/s) and always with more to send,
    against a server allowing 100/s in total. Plain buckets would get half their requests
    refused (100 429s a second); halving on each 429 settles them on their shares."""
    fake = FakeClock()
    rng = random.Random(3)
    buckets = [AdaptiveTokenBucket(100.0, clock=fake.now) for _ in range(2)]
    server = AdaptiveTokenBucket(100.0, clock=fake.now)  # only its token counting is used
    accepted = refused = 0
    for tick in range(120_000):  # 1 ms steps, two minutes
        fake.advance(0.001)
        for i in rng.sample(range(2), 2):
            if buckets[i].try_acquire() > 0:
                continue
            if server.try_acquire() == 0:
                accepted += tick >= 60_000  # the second minute, once settled
            else:
                refused += tick >= 60_000
                buckets[i].throttled(fake.now())
    assert refused / 60 < 2  # a 429 now and then, as the rates probe upwards
    assert 80 <= accepted / 60 <= 100
    assert all(20 <= b.rate <= 80 for b in buckets)  # both got a share


def test_the_client_lowers_its_rate_on_429_and_shows_it_as_a_metric() -> None:
    fake = FakeClock()
    metrics = Metrics()
    api = RecordingAPI(scripted(error(429, "slow down", {"Retry-After": "1"})))
    result = client(api, fake, metrics, rate_limits={"deposit": 40.0}).upload_encoded("deposit", parts(2))
    assert result.accepted == 2
    gauge = metrics.registry.get_sample_value(
        "optikpi_ingest_rate_limit", {"destination": "optikpi", "endpoint": "deposit"}
    )
    assert gauge == 20.0
