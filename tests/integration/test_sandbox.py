"""The ingest API emulator over loopback HTTP: auth, validation, limits, faults, idempotency, admin API."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.devtools.sandbox.server import (
    DEMO_ACCOUNT_ID,
    DEMO_TOKEN,
    DEMO_WORKSPACE_ID,
    SandboxOptions,
    SandboxServer,
    run_sandbox,
)
from connector.devtools.sandbox.state import Faults, SandboxState
from connector.ingest.jsjson import dumps_bytes
from connector.ingest.signing import HmacAuth, StaticToken, derive_key, sign
from connector.runtime.clock import FakeClock

pytestmark = pytest.mark.integration

GAMING = "/events/gaming-activity"


def gaming_record(i: int, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "account_id": DEMO_ACCOUNT_ID,
        "workspace_id": DEMO_WORKSPACE_ID,
        "user_id": f"user-{i % 7}",
        "event_category": "Gaming Activity",
        "event_name": "Bet Placed",
        "event_id": f"evt-{i}",
        "event_time": "2024-01-15T10:30:00Z",
        "wager_amount": 2.5,
        "game_id": "slots-1",
    }
    record.update(changes)
    return record


def batch(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [gaming_record(i) for i in range(start, start + n)]


def signed_headers(
    body: bytes,
    *,
    token: str = DEMO_TOKEN,
    account_id: str = DEMO_ACCOUNT_ID,
    workspace_id: str = DEMO_WORKSPACE_ID,
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "x-optikpi-token": token,
        "x-optikpi-account-id": account_id,
        "x-optikpi-workspace-id": workspace_id,
        "x-hmac-algorithm": "sha256",
        "x-hmac-signature": sign(derive_key(token, account_id, workspace_id), body),
    }


def ingest_client(server: SandboxServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url,
        auth=HmacAuth(DEMO_ACCOUNT_ID, DEMO_WORKSPACE_ID, StaticToken(DEMO_TOKEN)),
        headers={"Content-Type": "application/json"},
        timeout=10.0,
    )


def post(client: httpx.Client, path: str, payload: object, **headers: str) -> httpx.Response:
    return client.post(path, content=dumps_bytes(payload), headers=headers)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxOptions(port=0, rate_limit_scale=0, seed=1)) as server:
        yield server


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with ingest_client(sandbox) as c:
        yield c


@pytest.fixture
def admin(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.root_url, timeout=10.0) as c:
        yield c


def assert_error_shape(response: httpx.Response, error: str) -> dict[str, Any]:
    body = response.json()
    assert body["error"] == error
    assert isinstance(body["message"], str)
    assert set(body["details"]) >= {"field", "issue"}
    details: dict[str, Any] = body["details"]
    return details


# ---- accepted requests


def test_signed_batch_is_accepted_and_listed(
    sandbox: SandboxServer, client: httpx.Client, admin: httpx.Client
) -> None:
    records = batch(3)
    response = post(client, GAMING, records)

    assert response.status_code == 200
    assert response.json() == {
        "message": "Accepted 3 records",
        "recordIds": ["evt-0", "evt-1", "evt-2"],
        "count": 3,
    }
    assert response.http_version == "HTTP/1.1"
    assert response.headers.get("connection", "").lower() != "close"
    listed = admin.get("/_sandbox/records").json()
    assert listed == {"count": 3, "records": [{"endpoint": "gaming-activity", "record": r} for r in records]}
    assert sandbox.records("gaming-activity") == records
    assert sandbox.records("deposit") == []


def test_single_object_body_is_one_record(sandbox: SandboxServer, client: httpx.Client) -> None:
    response = post(client, GAMING, gaming_record(9))

    assert response.status_code == 200
    assert response.json()["recordIds"] == ["evt-9"]
    assert sandbox.records() == [gaming_record(9)]


def test_record_ids_fall_back_to_user_id(sandbox: SandboxServer, client: httpx.Client) -> None:
    customer = {
        "account_id": DEMO_ACCOUNT_ID,
        "workspace_id": DEMO_WORKSPACE_ID,
        "user_id": "cust-1",
        "creation_timestamp": "2024-01-15T10:30:00.123Z",
    }
    response = post(client, "/customers", [customer])

    assert response.status_code == 200
    assert response.json()["recordIds"] == ["cust-1"]
    assert sandbox.entries() == [("customers", customer)]


def test_records_filter_by_endpoint(client: httpx.Client, admin: httpx.Client) -> None:
    post(client, GAMING, batch(2))
    deposit = gaming_record(50, event_category="Deposit", event_name="Successful Deposit", amount=10)
    post(client, "/events/deposit", [deposit])

    listed = admin.get("/_sandbox/records", params={"endpoint": "deposit"}).json()
    assert listed == {"count": 1, "records": [{"endpoint": "deposit", "record": deposit}]}
    assert admin.get("/_sandbox/records", params={"endpoint": "nope"}).status_code == 400


def test_accepts_the_documented_signing_vector() -> None:
    # The test vector of docs/ingest-api.md, sent as raw bytes: the server agrees with the contract.
    token, account, workspace = "tok_test_123", "68911b7ad58ad825ec00c5ef", "68911b7ad825ec00c5ef"
    body = (
        b'[{"account_id":"68911b7ad58ad825ec00c5ef","workspace_id":"68911b7ad825ec00c5ef","user_id":"u1",'
        b'"event_category":"Deposit","event_name":"Successful Deposit","event_id":"evt_1",'
        b'"event_time":"2024-01-15T10:30:00Z","amount":500,"payment_method":"bank","transaction_id":"txn_1"}]'
    )
    options = SandboxOptions(port=0, token=token, account_id=account, workspace_id=workspace)
    headers = {
        "Content-Type": "application/json",
        "x-optikpi-token": token,
        "x-optikpi-account-id": account,
        "x-optikpi-workspace-id": workspace,
        "x-hmac-algorithm": "sha256",
        "x-hmac-signature": "73ea92174341fd014f774c3916bc8a9bc7abc23ee0a646b7e83a7d88f304f55a",
    }
    with SandboxServer(options) as server:
        response = httpx.post(server.base_url + "/events/deposit", content=body, headers=headers)

        assert response.status_code == 200
        assert response.json()["recordIds"] == ["evt_1"]


# ---- authentication


def _wrong_token(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, signed_headers(body, token="not-the-token")


def _bad_signature(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, {**signed_headers(body), "x-hmac-signature": "0" * 64}


def _tampered_body(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body.replace(b"2.5", b"250"), signed_headers(body)


def _wrong_account(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, signed_headers(body, account_id="other-account")


def _wrong_workspace(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, signed_headers(body, workspace_id="other-workspace")


def _wrong_algorithm(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, {**signed_headers(body), "x-hmac-algorithm": "sha1"}


def _wrong_content_type(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, {**signed_headers(body), "Content-Type": "text/plain"}


@pytest.mark.parametrize(
    ("tamper", "field", "issue"),
    [
        (_wrong_token, "x-optikpi-token", "invalid token"),
        (_bad_signature, "x-hmac-signature", "signature mismatch"),
        (_tampered_body, "x-hmac-signature", "signature mismatch"),
        (_wrong_account, "x-optikpi-account-id", "unknown account"),
        (_wrong_workspace, "x-optikpi-workspace-id", "unknown workspace"),
        (_wrong_algorithm, "x-hmac-algorithm", "unsupported algorithm"),
        (_wrong_content_type, "content-type", "wrong content type"),
    ],
)
def test_auth_failures_are_401_without_secrets(
    sandbox: SandboxServer,
    tamper: Callable[[bytes], tuple[bytes, dict[str, str]]],
    field: str,
    issue: str,
) -> None:
    body, headers = tamper(dumps_bytes(batch(2)))

    response = httpx.post(sandbox.base_url + GAMING, content=body, headers=headers)

    assert response.status_code == 401
    assert assert_error_shape(response, "Unauthorized") == {"field": field, "issue": issue}
    assert DEMO_TOKEN not in response.text
    assert "not-the-token" not in response.text
    assert sandbox.records() == []


@pytest.mark.parametrize(
    "header",
    [
        "x-optikpi-token",
        "x-optikpi-account-id",
        "x-optikpi-workspace-id",
        "x-hmac-signature",
        "x-hmac-algorithm",
        "Content-Type",
    ],
)
def test_missing_header_is_401_naming_it(sandbox: SandboxServer, header: str) -> None:
    body = dumps_bytes(batch(1))
    headers = {k: v for k, v in signed_headers(body).items() if k != header}

    response = httpx.post(sandbox.base_url + GAMING, content=body, headers=headers)

    assert response.status_code == 401
    assert assert_error_shape(response, "Unauthorized")["field"] == header.lower()
    assert DEMO_TOKEN not in response.text


# ---- body and validation


def test_501_records_are_rejected(sandbox: SandboxServer, client: httpx.Client) -> None:
    response = post(client, GAMING, batch(501))

    assert response.status_code == 400
    assert response.json() == {
        "error": "Bad Request",
        "message": "Too many records: 501 > 500",
        "details": {"field": "records", "issue": "too many records"},
    }
    assert sandbox.records() == []


def test_500_records_are_accepted(sandbox: SandboxServer, client: httpx.Client) -> None:
    response = post(client, GAMING, batch(500))

    assert response.status_code == 200
    assert response.json()["count"] == 500
    assert len(sandbox.records()) == 500


def test_one_invalid_record_rejects_the_whole_request(sandbox: SandboxServer, client: httpx.Client) -> None:
    records = batch(500)
    records[137]["event_time"] = "yesterday"

    response = post(client, GAMING, records)

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Bad Request"
    assert body["message"].startswith("Validation failed: event_time ")
    details = body["details"]
    assert (details["field"], details["index"], details["issue"]) == ("event_time", 137, "invalid date-time")
    assert [(e["index"], e["field"], e["rule"]) for e in details["errors"]] == [
        (137, "event_time", "datetime")
    ]
    assert sandbox.records() == []


def test_missing_required_field_message_matches_the_docs(client: httpx.Client) -> None:
    record = gaming_record(0)
    del record["account_id"]

    response = post(client, GAMING, [record])

    assert response.status_code == 400
    assert response.json()["message"] == "Validation failed: account_id is required"
    assert response.json()["details"]["issue"] == "missing required field"


def test_error_list_covers_every_invalid_record_up_to_100(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    few = batch(10)
    for i in (2, 5):
        del few[i]["user_id"]
    many = [gaming_record(i, user_id=None) for i in range(150)]

    few_errors = post(client, GAMING, few).json()["details"]["errors"]
    many_errors = post(client, GAMING, many).json()["details"]["errors"]

    assert [(e["index"], e["field"]) for e in few_errors] == [(2, "user_id"), (5, "user_id")]
    assert [e["index"] for e in many_errors] == list(range(100))
    assert sandbox.records() == []


@pytest.mark.parametrize(
    ("field", "header"), [("account_id", "x-optikpi-account-id"), ("workspace_id", "x-optikpi-workspace-id")]
)
def test_record_ids_must_match_the_headers(
    sandbox: SandboxServer, client: httpx.Client, field: str, header: str
) -> None:
    records = batch(3)
    records[1][field] = "someone-else"

    response = post(client, GAMING, records)

    assert response.status_code == 400
    details = response.json()["details"]
    assert (details["field"], details["index"]) == (field, 1)
    assert header in details["errors"][0]["message"]
    assert sandbox.records() == []


def test_a_record_that_is_not_an_object_is_named(client: httpx.Client) -> None:
    response = post(client, GAMING, [gaming_record(0), "not a record"])

    assert response.status_code == 400
    details = response.json()["details"]
    assert (details["field"], details["index"]) == ("record", 1)


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'[{"amount": NaN}]', b"42", b"[]", b"\xff\xfe"],
    ids=["syntax", "nan", "scalar", "empty", "not-utf8"],
)
def test_unusable_bodies_are_400(sandbox: SandboxServer, body: bytes) -> None:
    response = httpx.post(sandbox.base_url + GAMING, content=body, headers=signed_headers(body))

    assert response.status_code == 400
    details = assert_error_shape(response, "Bad Request")
    assert details["field"] in {"body", "records"}
    assert sandbox.records() == []


def test_body_over_the_limit_is_413() -> None:
    with (
        SandboxServer(SandboxOptions(port=0, max_body_bytes=2_000)) as server,
        ingest_client(server) as client,
    ):
        small = post(client, GAMING, batch(2))
        large = post(client, GAMING, batch(20))

        assert small.status_code == 200
        assert large.status_code == 413
        assert assert_error_shape(large, "Payload Too Large") == {"field": "body", "issue": "body too large"}
        assert len(server.records()) == 2


# ---- rate limiting


def test_rate_limit_answers_429_with_retry_after() -> None:
    clock = FakeClock()
    # customers: 50 req/s x 0.01 = 0.5 req/s, so one token every two seconds.
    options = SandboxOptions(port=0, rate_limit_scale=0.01)
    customer = {
        "account_id": DEMO_ACCOUNT_ID,
        "workspace_id": DEMO_WORKSPACE_ID,
        "user_id": "c1",
        "creation_timestamp": "2024-01-15T10:30:00Z",
    }
    with SandboxServer(options, clock=clock) as server, ingest_client(server) as client:
        first = post(client, "/customers", [customer])
        second = post(client, "/customers", [customer])
        other_endpoint = post(client, GAMING, batch(1))
        clock.advance(1.0)
        still_limited = post(client, "/customers", [customer])
        clock.advance(1.0)
        third = post(client, "/customers", [customer])

        assert first.status_code == 200
        assert second.status_code == 429
        assert second.headers["Retry-After"] == "2"
        assert assert_error_shape(second, "Too Many Requests")["field"] == "rate_limit"
        assert other_endpoint.status_code == 200
        assert still_limited.status_code == 429
        assert still_limited.headers["Retry-After"] == "1"
        assert third.status_code == 200
        assert len(server.records("customers")) == 2
        assert server.stats()["requests"]["customers"] == {"200": 2, "429": 2}


# ---- faults


def test_fail_fault_answers_5xx(sandbox: SandboxServer, client: httpx.Client, admin: httpx.Client) -> None:
    set_reply = admin.post("/_sandbox/faults", json={"fail_rate": 1})

    statuses = {post(client, GAMING, batch(1)).status_code for _ in range(20)}

    assert set_reply.json() == {
        "fail_rate": 1.0,
        "throttle_rate": 0.0,
        "latency_ms": 0,
        "drop_rate": 0.0,
        "slow_rate": 0.0,
        "slow_ms": 0,
    }
    assert statuses <= {500, 503}
    assert statuses == {500, 503}  # seeded: both kinds occur in 20 draws
    assert sandbox.records() == []


def test_fault_draws_follow_the_seed() -> None:
    def statuses() -> list[int]:
        with (
            SandboxServer(SandboxOptions(port=0, rate_limit_scale=0, seed=42, fail_rate=0.5)) as server,
            ingest_client(server) as client,
        ):
            return [post(client, GAMING, batch(1)).status_code for _ in range(30)]

    first = statuses()

    assert first == statuses()
    assert {200, 500, 503} <= set(first)


def test_throttle_fault_answers_429_retry_after_1(client: httpx.Client, admin: httpx.Client) -> None:
    admin.post("/_sandbox/faults", json={"throttle_rate": 1.0})

    response = post(client, GAMING, batch(1))

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert_error_shape(response, "Too Many Requests")


def test_drop_fault_closes_without_answer(
    sandbox: SandboxServer, client: httpx.Client, admin: httpx.Client
) -> None:
    admin.post("/_sandbox/faults", json={"drop_rate": 1})

    with pytest.raises(httpx.RemoteProtocolError):
        post(client, GAMING, batch(1))
    admin.post("/_sandbox/faults", json={"drop_rate": 0})
    after = post(client, GAMING, batch(1))

    assert after.status_code == 200
    assert sandbox.stats()["dropped"] == 1
    assert len(sandbox.records()) == 1


def test_latency_fault_is_reported(admin: httpx.Client) -> None:
    # Only the setting is checked: tests never assert on wall-clock time.
    assert admin.post("/_sandbox/faults", json={"latency_ms": 5}).json()["latency_ms"] == 5
    assert admin.get("/_sandbox/faults").json()["latency_ms"] == 5


def sandbox_state(**faults: Any) -> SandboxState:
    values = {"fail_rate": 0.0, "throttle_rate": 0.0, "latency_ms": 0, "drop_rate": 0.0, **faults}
    return SandboxState(
        account_id=DEMO_ACCOUNT_ID,
        workspace_id=DEMO_WORKSPACE_ID,
        faults=Faults(**values),
        rate_limit_scale=0,
        seed=3,
        store=None,
        clock=FakeClock(),
    )


def test_slow_fault_adds_its_latency_to_its_share_of_requests_only() -> None:
    # The draws are checked, not the time: a long tail of slow answers above the base latency.
    state = sandbox_state(latency_ms=10, slow_rate=0.25, slow_ms=3000)
    latencies = [state.draw_faults().latency_s for _ in range(400)]
    assert set(latencies) == {0.01, 3.01}
    assert 60 <= latencies.count(3.01) <= 140
    assert {sandbox_state(latency_ms=10, slow_ms=3000).draw_faults().latency_s} == {0.01}


def test_slow_draws_leave_the_seeded_sequence_of_the_other_faults_alone() -> None:
    plain = sandbox_state(fail_rate=0.3, drop_rate=0.3)
    slowed = sandbox_state(fail_rate=0.3, drop_rate=0.3, slow_rate=0.5, slow_ms=100)
    for _ in range(50):
        a, b = plain.draw_faults(), slowed.draw_faults()
        assert (a.drop, a.fail_status, a.throttle) == (b.drop, b.fail_status, b.throttle)


def test_a_client_tag_in_the_path_is_served_as_usual_and_remembered(sandbox: SandboxServer) -> None:
    tagged = ingest_client(sandbox)
    tagged.base_url = httpx.URL(sandbox.base_url_for("worker-7"))
    with tagged, ingest_client(sandbox) as plain:
        assert post(tagged, GAMING, batch(2)).status_code == 200
        assert post(plain, GAMING, batch(1, start=2)).status_code == 200

    assert [r["event_id"] for r in sandbox.records()] == [gaming_record(i)["event_id"] for i in range(3)]
    assert sandbox.clients() == ["worker-7", "worker-7", None]
    assert sandbox.clients("gaming-activity") == ["worker-7", "worker-7", None]


@pytest.mark.parametrize(
    "payload",
    [
        {"slow_rate": 2},
        {"slow_ms": 0.5},
        {"fail_rate": 1.5},
        {"drop_rate": -0.1},
        {"latency_ms": -1},
        {"latency_ms": 1.5},
        {"fail_rate": True},
        {"x": 1},
    ],
)
def test_invalid_fault_settings_are_400(sandbox: SandboxServer, admin: httpx.Client, payload: object) -> None:
    response = admin.post("/_sandbox/faults", json=payload)

    assert response.status_code == 400
    assert admin.get("/_sandbox/faults").json() == sandbox.faults()
    assert sandbox.faults() == {
        "fail_rate": 0.0,
        "throttle_rate": 0.0,
        "latency_ms": 0,
        "drop_rate": 0.0,
        "slow_rate": 0.0,
        "slow_ms": 0,
    }


def test_set_faults_validates() -> None:
    server = SandboxServer(SandboxOptions(port=0))
    server.set_faults(throttle_rate=0.25)

    with pytest.raises(ValueError, match="fail_rate"):
        server.set_faults(fail_rate=2.0)
    assert server.faults()["throttle_rate"] == 0.25
    with pytest.raises(ValueError, match="drop_rate"):
        SandboxOptions(drop_rate=1.5)


# ---- idempotency


def test_repeated_idempotency_key_is_answered_but_not_stored_twice(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    records = batch(3)

    first = post(client, GAMING, records, **{"X-Idempotency-Key": "batch-1"})
    again = post(client, GAMING, records, **{"X-Idempotency-Key": "batch-1"})
    other_key = post(client, GAMING, records, **{"X-Idempotency-Key": "batch-2"})

    assert first.status_code == again.status_code == other_key.status_code == 200
    assert again.content == first.content
    assert len(sandbox.records()) == 6
    stats = sandbox.stats()
    assert stats["duplicates"] == 1
    assert stats["replayed_records"] == 3
    assert stats["accepted"]["gaming-activity"] == 6


def test_rejected_request_does_not_claim_its_idempotency_key(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    bad = batch(2)
    bad[0]["event_time"] = "soon"

    rejected = post(client, GAMING, bad, **{"X-Idempotency-Key": "k"})
    fixed = post(client, GAMING, batch(2), **{"X-Idempotency-Key": "k"})

    assert (rejected.status_code, fixed.status_code) == (400, 200)
    assert len(sandbox.records()) == 2
    assert sandbox.stats()["duplicates"] == 0


# ---- stats, clearing, store


def test_stats_count_by_endpoint_and_status(
    sandbox: SandboxServer, client: httpx.Client, admin: httpx.Client
) -> None:
    post(client, GAMING, batch(4))
    post(client, GAMING, batch(501))
    body = dumps_bytes(batch(1))
    httpx.post(sandbox.base_url + GAMING, content=body, headers={**signed_headers(body, token="wrong")})
    post(client, GAMING, batch(2), **{"X-Idempotency-Key": "k"})
    post(client, GAMING, batch(2), **{"X-Idempotency-Key": "k"})

    stats = admin.get("/_sandbox/stats").json()

    assert stats["requests"]["gaming-activity"] == {"200": 3, "400": 1, "401": 1}
    assert stats["requests"]["deposit"] == {}
    assert stats["accepted"]["gaming-activity"] == 6
    assert stats["accepted"]["deposit"] == 0
    assert stats["duplicates"] == 1
    assert stats["rejected_requests"] == 2
    assert stats["dropped"] == 0


def test_delete_clears_records_keys_and_stats(
    sandbox: SandboxServer, client: httpx.Client, admin: httpx.Client
) -> None:
    post(client, GAMING, batch(3), **{"X-Idempotency-Key": "k"})

    assert admin.delete("/_sandbox/records").status_code == 200
    assert admin.get("/_sandbox/records").json() == {"count": 0, "records": []}
    stats = sandbox.stats()
    assert stats["accepted"]["gaming-activity"] == 0
    assert stats["requests"]["gaming-activity"] == {}
    resent = post(client, GAMING, batch(3), **{"X-Idempotency-Key": "k"})
    assert resent.status_code == 200
    assert len(sandbox.records()) == 3
    assert sandbox.stats()["duplicates"] == 0


def test_store_file_gets_accepted_records(tmp_path: Path) -> None:
    store = tmp_path / "accepted.jsonl"
    records = [*batch(2), gaming_record(7, game_title="Ünïcode ✓")]
    with SandboxServer(SandboxOptions(port=0, store=store)) as server, ingest_client(server) as client:
        post(client, GAMING, records)
        post(client, GAMING, batch(501))
        lines = store.read_text(encoding="utf-8").splitlines()

    assert [json.loads(line) for line in lines] == [
        {"endpoint": "gaming-activity", "record": r} for r in records
    ]


# ---- routing and lifecycle


def test_unknown_paths_and_methods(sandbox: SandboxServer, admin: httpx.Client) -> None:
    unknown = httpx.post(sandbox.base_url + "/events/bets", content=b"[]", headers=signed_headers(b"[]"))
    not_post = httpx.get(sandbox.base_url + GAMING)
    admin_unknown = admin.get("/_sandbox/nothing")
    admin_method = admin.post("/_sandbox/stats")

    assert unknown.status_code == 404
    assert_error_shape(unknown, "Not Found")
    assert not_post.status_code == 405
    assert not_post.headers["Allow"] == "POST"
    assert_error_shape(not_post, "Method Not Allowed")
    assert admin_unknown.status_code == 404
    assert admin_method.status_code == 405
    assert admin.get("/_sandbox/health").status_code == 200
    assert sum(sum(c.values()) for c in sandbox.stats()["requests"].values()) == 0


def test_stop_closes_kept_alive_connections(sandbox: SandboxServer, client: httpx.Client) -> None:
    assert post(client, GAMING, batch(1)).status_code == 200

    sandbox.stop()

    with pytest.raises(httpx.TransportError):
        post(client, GAMING, batch(1))


def test_urls_need_a_started_server() -> None:
    server = SandboxServer(SandboxOptions(port=0))
    with pytest.raises(RuntimeError):
        _ = server.base_url
    with server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/apigw/ingest", server.base_url)
        assert server.base_url == server.root_url + "/apigw/ingest"


def test_run_sandbox_returns_1_when_the_port_is_taken(sandbox: SandboxServer) -> None:
    port = int(sandbox.root_url.rsplit(":", 1)[1])

    assert run_sandbox(SandboxOptions(port=port)) == 1


@pytest.mark.timeout(60)
def test_run_sandbox_stops_cleanly_on_sigterm() -> None:
    code = (
        "import sys\n"
        "from connector.devtools.sandbox.server import SandboxOptions, run_sandbox\n"
        "sys.exit(run_sandbox(SandboxOptions(port=0)))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            found = re.search(r"sandbox listening on (http://127\.0\.0\.1:\d+)/apigw/ingest", line)
            if found:
                url = found.group(1)
                break
        assert url is not None
        assert httpx.get(url + "/_sandbox/health").status_code == 200

        proc.send_signal(signal.SIGTERM)

        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_chunked_body_is_read(sandbox: SandboxServer) -> None:
    body = dumps_bytes(batch(3))

    def chunks() -> Iterator[bytes]:
        yield body[:17]
        yield body[17:]

    response = httpx.post(sandbox.base_url + GAMING, content=chunks(), headers=signed_headers(body))

    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 200
    assert sandbox.records() == batch(3)


def test_a_rotated_token_refuses_the_old_one_and_accepts_the_new(sandbox: SandboxServer) -> None:
    body = dumps_bytes(batch(1))
    sandbox.rotate_token("rotated-token")

    old = httpx.post(sandbox.base_url + GAMING, content=body, headers=signed_headers(body))
    new = httpx.post(
        sandbox.base_url + GAMING, content=body, headers=signed_headers(body, token="rotated-token")
    )

    assert old.status_code == 401
    assert assert_error_shape(old, "Unauthorized") == {"field": "x-optikpi-token", "issue": "invalid token"}
    assert new.status_code < 300, new.text
    assert len(sandbox.records()) == 1
