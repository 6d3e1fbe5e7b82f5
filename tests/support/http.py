"""Shared helpers for the HTTP-side tests: a scripted httpx.MockTransport handler,
valid records for every endpoint, and a `send` configuration writer."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import structlog

from connector.endpoints import ENDPOINTS
from connector.runtime import logs

Responder = Callable[[httpx.Request, list[dict[str, Any]]], httpx.Response]


@dataclass
class RecordingAPI:
    """An httpx.MockTransport handler that keeps every request and delegates the answer.

    `respond(request, records)` gets the parsed JSON array and returns the response (or raises an
    httpx.TransportError to simulate a network failure). `accepted` collects the records of every
    2xx answer, in the order the server accepted them.
    """

    respond: Responder
    requests: list[httpx.Request] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        records = json.loads(request.content)
        assert isinstance(records, list)
        response = self.respond(request, records)
        if response.status_code < 300:
            self.accepted.extend(records)
        return response

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def ok(request: httpx.Request, records: list[dict[str, Any]]) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "message": "ok",
            "recordIds": [str(r.get("event_id", i)) for i, r in enumerate(records)],
            "count": len(records),
        },
    )


def error(
    status: int, message: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> httpx.Response:
    body = {"error": "Error", "message": message, "details": {"field": "record", "issue": "x", **extra}}
    return httpx.Response(status, json=body, headers=dict(headers or {}))


def scripted(*answers: int | httpx.Response | Exception) -> Responder:
    """Answer in turn with each status / response / raised exception, then 200 for ever."""
    queue = list(answers)

    def respond(request: httpx.Request, records: list[dict[str, Any]]) -> httpx.Response:
        if not queue:
            return ok(request, records)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, int):
            return ok(request, records) if answer < 300 else error(answer, f"status {answer}")
        return answer

    return respond


def valid_record(endpoint: str, i: int) -> dict[str, Any]:
    """A record the local model accepts, without account_id / workspace_id / the fixed event_category
    (the `send` command fills those in)."""
    when = f"2024-01-15T10:{i // 60 % 60:02d}:{i % 60:02d}Z"
    event = {"user_id": f"u{i % 13}", "event_id": f"{endpoint}-{i}", "event_time": when}
    by_endpoint: dict[str, dict[str, Any]] = {
        "customers": {
            "user_id": f"u{i}",
            "creation_timestamp": when,
            "full_name": "Zoë Ñandú",
            "country": "ES",
        },
        "account": {**event, "event_name": "Account Created", "device": "ios"},
        "deposit": {**event, "event_name": "Successful Deposit", "amount": 10 + i, "payment_method": "bank"},
        "withdraw": {**event, "event_name": "Withdrawal Requested", "amount": 5.25},
        "gaming-activity": {**event, "event_name": "Bet Placed", "wager_amount": 2.5, "num_spins_played": 3},
        "wallet-balance": {**event, "event_name": "Balance Update", "current_cash_balance": 100.0},
        "refer-friend": {**event, "event_name": "Referral", "successful_referral_confirmation": True},
        "system-events": {
            "event_category": "SystemEvent",
            "event_name": "Maintenance",
            "event_id": f"sys-{i}",
            "event_time": when,
            "event_data": {"component": "wallet", "seq": i},
        },
        "extattributes": {"user_id": f"u{i}", "list_name": "vip_list-1", "ext_data": {"tier": i % 3}},
    }
    assert set(by_endpoint) == set(ENDPOINTS)
    return by_endpoint[endpoint]


def write_jsonl(path: Path, records: list[Any], raw_lines: Mapping[int, str] | None = None) -> Path:
    """One record per line; `raw_lines` puts literal text at given 0-based line positions."""
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    for position, text in sorted((raw_lines or {}).items()):
        lines.insert(position, text)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_send_config(
    path: Path,
    base_url: str,
    *,
    account_id: str,
    workspace_id: str,
    token: str = "${OPTIKPI_TEST_TOKEN}",
    max_records: int = 500,
    max_elapsed_s: float = 0,
) -> Path:
    """A configuration for `send` with fast retries (10 ms first backoff, 100 ms cap)."""
    path.write_text(
        "\n".join(
            [
                "optikpi:",
                f"  base_url: {base_url}",
                f"  account_id: {account_id}",
                f"  workspace_id: {workspace_id}",
                f'  auth_token: "{token}"',
                "  timeout_s: 10",
                "batching:",
                f"  max_records: {max_records}",
                "retry:",
                "  initial_backoff_ms: 10",
                "  max_backoff_ms: 100",
                f"  max_elapsed_s: {max_elapsed_s}",
                "",
            ]
        ),
        encoding="utf-8",
    )
    return path


@contextlib.contextmanager
def preserved_structlog() -> Iterator[None]:
    """Restore structlog's configuration afterwards: `cli.main` points it at the (captured) stderr
    of the moment, which pytest closes after the test."""
    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved)


@contextlib.contextmanager
def logs_in_memory() -> Iterator[io.StringIO]:
    """Send the connector's logs to a fresh in-memory stream for the duration, whatever an earlier
    test left structlog pointing at (a closed capture stream makes every log call raise)."""
    with preserved_structlog():
        stream = io.StringIO()
        logs.configure("debug", True, stream)
        yield stream
