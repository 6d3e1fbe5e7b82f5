"""IngestClient against httpx.MockTransport: signing, batching, the status-code contract, retries,
rate limiting and cancellation, all on a fake clock with a seeded RNG."""

from __future__ import annotations

import io
import json
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connector.config.settings import BatchingSettings, DestinationSettings, RetrySettings
from connector.errors import CredentialsError, RetryBudgetExceeded, UploadCancelled
from connector.ingest.backoff import Backoff
from connector.ingest.client import RESPONSE_EXCERPT_BYTES, IngestClient
from connector.ingest.jsjson import dumps_bytes
from connector.ingest.signing import derive_key, sign
from connector.runtime.clock import FakeClock
from tests.support.http import RecordingAPI, error, logs_in_memory, ok, scripted

pytestmark = pytest.mark.unit

TOKEN = "tok_test_123"
ACCOUNT = "68911b7ad58ad825ec00c5ef"
WORKSPACE = "68911b7ad825ec00c5ef"
BASE_URL = "https://gateway.test/apigw/ingest"


def destination(**changes: Any) -> DestinationSettings:
    values: dict[str, Any] = {
        "base_url": BASE_URL,
        "account_id": ACCOUNT,
        "workspace_id": WORKSPACE,
        "auth_token": SecretStr(TOKEN),
        **changes,
    }
    return DestinationSettings(**values)


def make_client(
    api: RecordingAPI,
    fake: FakeClock,
    *,
    retry: RetrySettings | None = None,
    batching: BatchingSettings | None = None,
    **dest: Any,
) -> IngestClient:
    return IngestClient(
        destination(**dest),
        retry or RetrySettings(initial_backoff_ms=500, max_backoff_ms=8000),
        batching or BatchingSettings(),
        transport=api.transport(),
        clock=fake.now,
        sleep=fake.sleep,
        rng=random.Random(1),
    )


def deposit(i: int, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "account_id": ACCOUNT,
        "workspace_id": WORKSPACE,
        "user_id": f"u{i % 7}",
        "event_category": "Deposit",
        "event_name": "Successful Deposit",
        "event_id": f"evt_{i}",
        "event_time": "2024-01-15T10:30:00Z",
        # 500.0 must go out as 500 and non-ASCII unescaped: the body is what JSON.stringify writes.
        "amount": 500.0 + i,
        "payment_method": "banco ñ €",
    }
    record.update(changes)
    return record


def body_of(records: list[dict[str, Any]]) -> bytes:
    return b"[" + b",".join(dumps_bytes(r) for r in records) + b"]"


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["event_id"] for r in records]


@pytest.fixture
def fake() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _logs() -> Iterator[io.StringIO]:
    with logs_in_memory() as stream:
        yield stream


# ---------------------------------------------------------------------------------------------
# Signing and body


def test_every_request_is_signed_over_the_exact_body(fake: FakeClock) -> None:
    api = RecordingAPI(ok)
    records = [deposit(i) for i in range(25)]
    client = make_client(api, fake, batching=BatchingSettings(max_records=10))
    result = client.upload("deposit", records)
    assert result.accepted == 25 and result.ok and result.requests == 3
    key = derive_key(TOKEN, ACCOUNT, WORKSPACE)
    sent: list[dict[str, Any]] = []
    for request in api.requests:
        assert request.method == "POST"
        assert request.url == httpx.URL(BASE_URL + "/events/deposit")
        chunk = records[len(sent) : len(sent) + 10]
        assert request.content == body_of(chunk)
        assert "ñ €".encode() in request.content
        assert request.headers["x-hmac-signature"] == sign(key, request.content)
        assert request.headers["x-hmac-algorithm"] == "sha256"
        assert request.headers["x-optikpi-token"] == TOKEN
        assert request.headers["x-optikpi-account-id"] == ACCOUNT
        assert request.headers["x-optikpi-workspace-id"] == WORKSPACE
        assert request.headers["content-type"] == "application/json"
        sent.extend(json.loads(request.content))
    assert ids(sent) == ids(records)
    assert b'"amount":500,' in api.requests[0].content  # 500.0 written as JSON.stringify does


def test_idempotency_key_is_stable_across_retries_and_follows_the_body(fake: FakeClock) -> None:
    api = RecordingAPI(scripted(503, 500, httpx.ReadTimeout("slow")))
    client = make_client(api, fake)
    assert client.upload("deposit", [deposit(1), deposit(2)]).accepted == 2
    keys = [r.headers["x-idempotency-key"] for r in api.requests]
    assert len(keys) == 4 and len(set(keys)) == 1 and keys[0]

    client.upload("deposit", [deposit(1), deposit(3)])
    other_body = api.requests[-1].headers["x-idempotency-key"]
    client.upload("withdraw", [deposit(1, event_category="Withdraw"), deposit(2, event_category="Withdraw")])
    assert len({keys[0], other_body, api.requests[-1].headers["x-idempotency-key"]}) == 3
    # the same body again (a redelivery after a restart) carries the same key
    client.upload("deposit", [deposit(1), deposit(2)])
    assert api.requests[-1].headers["x-idempotency-key"] == keys[0]


# ---------------------------------------------------------------------------------------------
# Batching


def test_requests_hold_at_most_max_records_in_order(fake: FakeClock) -> None:
    api = RecordingAPI(ok)
    records = [deposit(i) for i in range(1234)]
    result = make_client(api, fake).upload("deposit", records)
    assert result.accepted == 1234 and result.requests == 3
    assert [len(json.loads(r.content)) for r in api.requests] == [500, 500, 234]
    assert ids(api.accepted) == ids(records)

    api2 = RecordingAPI(ok)
    make_client(api2, fake, batching=BatchingSettings(max_records=7)).upload("deposit", records[:30])
    assert [len(json.loads(r.content)) for r in api2.requests] == [7, 7, 7, 7, 2]
    assert ids(api2.accepted) == ids(records[:30])


def test_requests_are_packed_up_to_max_bytes_in_order(fake: FakeClock) -> None:
    api = RecordingAPI(ok)
    # records of varying size so that the cut points are not all equal
    records = [deposit(i, note="x" * (i * 37 % 300)) for i in range(120)]
    result = make_client(api, fake, batching=BatchingSettings(max_bytes=2048)).upload("deposit", records)
    assert result.accepted == 120 and result.ok
    assert len(api.requests) > 10
    sent = 0
    for n, request in enumerate(api.requests):
        count = len(json.loads(request.content))
        assert len(request.content) <= 2048
        assert request.content == body_of(records[sent : sent + count])
        sent += count
        if n < len(api.requests) - 1:
            # greedy: the next record would not have fitted
            assert len(request.content) + 1 + len(dumps_bytes(records[sent])) > 2048
    assert ids(api.accepted) == ids(records)


def test_a_record_larger_than_max_bytes_is_rejected_locally_and_the_rest_go(fake: FakeClock) -> None:
    api = RecordingAPI(ok)
    records = [deposit(i) for i in range(6)]
    records[3] = deposit(3, note="x" * 5000)
    result = make_client(api, fake, batching=BatchingSettings(max_bytes=4096)).upload("deposit", records)
    assert result.accepted == 5
    assert [(r.index, r.status) for r in result.rejected] == [(3, None)]
    assert "max_bytes" in result.rejected[0].message
    assert ids(api.accepted) == ["evt_0", "evt_1", "evt_2", "evt_4", "evt_5"]
    assert all(len(r.content) <= 4096 for r in api.requests)


# ---------------------------------------------------------------------------------------------
# Transient failures


def test_503_then_200_is_retried_with_full_jitter_backoff(fake: FakeClock) -> None:
    retry = RetrySettings(initial_backoff_ms=500, max_backoff_ms=4000)
    api = RecordingAPI(scripted(503, 503, 500, 503, 503, 503, 503))
    result = make_client(api, fake, retry=retry).upload("deposit", [deposit(i) for i in range(3)])
    assert result.accepted == 3 and result.requests == 8
    assert ids(api.accepted) == ["evt_0", "evt_1", "evt_2"]
    assert len(fake.sleeps) == 7
    ceilings = [min(4.0, 0.5 * 2**n) for n in range(7)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    for slept, ceiling in zip(fake.sleeps, ceilings, strict=True):
        assert 0.0 <= slept <= ceiling
    # jitter: not simply the ceiling every time (seeded, so this is deterministic)
    assert fake.sleeps != ceilings
    # the exact values of a seeded full-jitter draw
    expected = Backoff(retry, random.Random(1))
    assert fake.sleeps == [expected.delay(n) for n in range(7)]


@pytest.mark.parametrize(
    "failure",
    [
        lambda req: httpx.ConnectError("refused", request=req),
        lambda req: httpx.ReadTimeout("timed out", request=req),
        lambda req: httpx.RemoteProtocolError("Server disconnected without sending a response.", request=req),
    ],
    ids=["ConnectError", "ReadTimeout", "RemoteProtocolError"],
)
def test_transport_errors_are_retried(fake: FakeClock, failure: Any) -> None:
    failures = 3

    def respond(request: httpx.Request, records: list[dict[str, Any]]) -> httpx.Response:
        nonlocal failures
        if failures:
            failures -= 1
            raise failure(request)
        return ok(request, records)

    api = RecordingAPI(respond)
    result = make_client(api, fake).upload("deposit", [deposit(1)])
    assert result.accepted == 1 and result.requests == 4 and len(fake.sleeps) == 3
    assert ids(api.accepted) == ["evt_1"]


def test_429_with_retry_after_seconds_waits_exactly_that_long(fake: FakeClock) -> None:
    api = RecordingAPI(scripted(error(429, "slow down", {"Retry-After": "3"})))
    start = fake.t
    result = make_client(api, fake).upload("deposit", [deposit(1)])
    assert result.accepted == 1 and result.requests == 2
    assert fake.sleeps == [3.0]
    assert fake.t - start == 3.0


def test_429_with_retry_after_http_date(fake: FakeClock) -> None:
    # The HTTP-date form is relative to the real UTC time, which the client reads itself.
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    api = RecordingAPI(scripted(error(429, "slow down", {"Retry-After": when})))
    result = make_client(api, fake).upload("deposit", [deposit(1)])
    assert result.accepted == 1
    assert len(fake.sleeps) == 1
    assert 25.0 < fake.sleeps[0] <= 30.0


def test_429_without_retry_after_backs_off(fake: FakeClock) -> None:
    retry = RetrySettings(initial_backoff_ms=200, max_backoff_ms=1000)
    api = RecordingAPI(scripted(429, 429, 429))
    result = make_client(api, fake, retry=retry).upload("deposit", [deposit(1)])
    assert result.accepted == 1 and result.requests == 4
    expected = Backoff(retry, random.Random(1))
    assert fake.sleeps == [expected.delay(n) for n in range(3)]
    assert all(s <= c for s, c in zip(fake.sleeps, [0.2, 0.4, 0.8], strict=True))


# ---------------------------------------------------------------------------------------------
# Data errors: isolate the bad records, deliver the rest in order


def poison_server(status: int) -> RecordingAPI:
    long_tail = "é" * 3000  # the excerpt must be cut to 1 KB even for multi-byte text

    def respond(request: httpx.Request, records: list[dict[str, Any]]) -> httpx.Response:
        bad = [i for i, r in enumerate(records) if r.get("poison")]
        if bad:
            body = {
                "error": "Bad Request",
                "message": f"Validation failed: amount must be positive (record {bad[0]})",
                "details": {"field": "amount", "issue": "not greater than 0"},
                "padding": long_tail,
            }
            return httpx.Response(status, json=body)
        return ok(request, records)

    return RecordingAPI(respond)


@pytest.mark.parametrize("status", [400, 413])
@pytest.mark.parametrize("poison_at", [(137,), (0, 250, 499)], ids=["one", "three"])
def test_poison_records_are_isolated_and_the_rest_delivered_in_order(
    fake: FakeClock, status: int, poison_at: tuple[int, ...]
) -> None:
    api = poison_server(status)
    records = [deposit(i, poison=(i in poison_at)) for i in range(500)]
    result = make_client(api, fake).upload("deposit", records)
    assert sorted(r.index for r in result.rejected) == list(poison_at)
    assert result.accepted == 500 - len(poison_at)
    good = [r for r in records if not r["poison"]]
    assert ids(api.accepted) == ids(good)  # every good record once, in the original order
    for rejection in result.rejected:
        assert rejection.status == status
        assert rejection.message.startswith("Validation failed: amount must be positive")
        assert len(rejection.response.encode("utf-8")) <= RESPONSE_EXCERPT_BYTES
        assert rejection.response.startswith('{"error":"Bad Request"')
        assert len(rejection.response.encode("utf-8")) > RESPONSE_EXCERPT_BYTES - 4
    # bisection, not one request per record
    assert result.requests < 20 * len(poison_at) + 2
    assert not fake.sleeps  # data errors are never retried


def test_413_for_a_too_large_body_splits_until_it_fits(fake: FakeClock) -> None:
    def respond(request: httpx.Request, records: list[dict[str, Any]]) -> httpx.Response:
        return error(413, "Payload Too Large") if len(records) > 60 else ok(request, records)

    api = RecordingAPI(respond)
    records = [deposit(i) for i in range(500)]
    result = make_client(api, fake).upload("deposit", records)
    assert result.ok and result.accepted == 500
    assert ids(api.accepted) == ids(records)


@pytest.mark.parametrize("status", [401, 403, 404, 405])
def test_credential_and_routing_errors_raise_without_retry(fake: FakeClock, status: int) -> None:
    api = RecordingAPI(scripted(error(status, "Invalid token")))
    client = make_client(api, fake)
    with pytest.raises(CredentialsError) as caught:
        client.upload("deposit", [deposit(i) for i in range(10)])
    assert caught.value.status == status and caught.value.endpoint == "deposit"
    assert len(api.requests) == 1 and not fake.sleeps
    assert "Invalid token" in str(caught.value)
    assert ("base_url" in str(caught.value)) == (status in (404, 405))


@pytest.mark.parametrize("status", [301, 307, 308])
def test_a_redirect_is_a_configuration_error_not_a_data_error(fake: FakeClock, status: int) -> None:
    # e.g. an http:// base_url that the gateway redirects to https://: no record is to blame.
    api = RecordingAPI(
        scripted(httpx.Response(status, headers={"Location": "https://elsewhere.test/"}, text=""))
    )
    with pytest.raises(CredentialsError) as caught:
        make_client(api, fake).upload("deposit", [deposit(i) for i in range(10)])
    assert caught.value.status == status and "base_url" in str(caught.value)
    assert len(api.requests) == 1


def test_credentials_error_never_carries_the_token_echoed_by_the_server(fake: FakeClock) -> None:
    api = RecordingAPI(scripted(error(401, f"token {TOKEN} is not valid for this workspace")))
    with pytest.raises(CredentialsError) as caught:
        make_client(api, fake).upload("deposit", [deposit(1)])
    assert TOKEN not in str(caught.value) and TOKEN not in caught.value.detail
    assert "is not valid for this workspace" in str(caught.value)


# ---------------------------------------------------------------------------------------------
# Retry budget


def test_retry_budget_gives_up_without_exceeding_it(fake: FakeClock) -> None:
    retry = RetrySettings(initial_backoff_ms=500, max_backoff_ms=4000, max_elapsed_s=10)
    api = RecordingAPI(scripted(*[503] * 10_000))
    start = fake.t
    with pytest.raises(RetryBudgetExceeded, match="deposit"):
        make_client(api, fake, retry=retry).upload("deposit", [deposit(1)])
    assert len(api.requests) > 3  # it did retry
    assert 0 < fake.t - start <= 10.0
    assert not api.accepted


def test_retry_budget_counts_retry_after_waits(fake: FakeClock) -> None:
    retry = RetrySettings(max_elapsed_s=10)
    api = RecordingAPI(scripted(*[error(429, "later", {"Retry-After": "30"})] * 5))
    with pytest.raises(RetryBudgetExceeded):
        make_client(api, fake, retry=retry).upload("deposit", [deposit(1)])
    assert len(api.requests) == 1 and not fake.sleeps


def test_without_a_budget_transient_errors_are_retried_for_ever(fake: FakeClock) -> None:
    api = RecordingAPI(scripted(*[503] * 999))
    start = fake.t
    result = make_client(api, fake, retry=RetrySettings(max_elapsed_s=0)).upload("deposit", [deposit(1)])
    assert result.accepted == 1 and result.requests == 1000
    assert len(fake.sleeps) == 999
    # far beyond any budget one would configure: hours of simulated waiting
    assert fake.t - start > 3600


# ---------------------------------------------------------------------------------------------
# Client-side rate limit


def test_client_side_rate_limit_spaces_requests(fake: FakeClock) -> None:
    api = RecordingAPI(ok)
    client = make_client(api, fake, batching=BatchingSettings(max_records=1), rate_limits={"deposit": 5})
    start = fake.t
    result = client.upload("deposit", [deposit(i) for i in range(20)])
    assert result.accepted == 20 and len(api.requests) == 20
    # a burst of 5, then 15 more at 5/s
    assert sum(fake.sleeps) >= 3.0 - 1e-6
    assert fake.t - start >= 3.0 - 1e-6
    # other endpoints keep their own (default) limit
    fake.sleeps.clear()
    client.upload("withdraw", [deposit(i, event_category="Withdraw") for i in range(20)])
    assert not fake.sleeps


# ---------------------------------------------------------------------------------------------
# Cancellation


def test_cancel_during_a_backoff_wait_raises_upload_cancelled(fake: FakeClock) -> None:
    api = RecordingAPI(scripted(*[503] * 100))
    client = make_client(api, fake)
    fake.on_sleep = lambda _seconds: client.cancel()
    with pytest.raises(UploadCancelled):
        client.upload("deposit", [deposit(1)])
    assert len(api.requests) == 1 and len(fake.sleeps) == 1
    assert not api.accepted


@pytest.mark.timeout(60)
def test_cancel_interrupts_a_real_wait(fake: FakeClock) -> None:
    # The default sleep: an hour-long Retry-After must end as soon as cancel() is called.
    asked = threading.Event()

    def respond(request: httpx.Request, records: list[dict[str, Any]]) -> httpx.Response:
        asked.set()
        return error(429, "later", {"Retry-After": "3600"})

    api = RecordingAPI(respond)
    client = IngestClient(
        destination(),
        RetrySettings(),
        BatchingSettings(),
        transport=api.transport(),
        rng=random.Random(1),
    )
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            client.upload("deposit", [deposit(1)])
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert asked.wait(30)
    client.cancel()
    worker.join(30)
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], UploadCancelled)
    client.close()


def test_retry_after_is_honoured_up_to_ten_minutes(fake: FakeClock) -> None:
    api = RecordingAPI(scripted(error(429, "come back tomorrow", {"Retry-After": "86400"})))
    result = make_client(api, fake).upload("deposit", [deposit(1)])
    assert result.accepted == 1
    assert fake.sleeps == [600.0]
