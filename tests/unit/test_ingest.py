"""IngestClient against httpx.MockTransport: signing, batching, the status-code contract, retries,
rate limiting and cancellation, all on a fake clock with a seeded RNG."""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connector.backoff import Backoff
from connector.config import BatchingSettings, DestinationSettings, RetrySettings
from connector.ingest import (
    RESPONSE_EXCERPT_BYTES,
    CredentialsError,
    IngestClient,
    RetryBudgetExceeded,
    UploadCancelled,
)
from connector.jsjson import dumps_bytes
from connector.signing import derive_key, sign
from tests.support.http import FakeClock, RecordingAPI, error, ok, scripted

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
        assert b"500," in request.content and "ñ €".encode() in request.content
        assert request.headers["x-hmac-signature"] == sign(key, request.content)
        assert request.headers["x-hmac-algorithm"] == "sha256"
        assert request.headers["x-optikpi-token"] == TOKEN
        assert request.headers["x-optikpi-account-id"] == ACCOUNT
        assert request.headers["x-optikpi-workspace-id"] == WORKSPACE
        assert request.headers["content-type"] == "application/json"
        sent.extend(json.loads(request.content))
    assert ids(sent) == ids(records)
