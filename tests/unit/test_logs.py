"""Log output never carries a secret: registered values are scrubbed wherever they appear, secret-looking
keys are masked, and the ingest client keeps an echoed token out of its logs and errors."""

from __future__ import annotations

import io
import json
import random
from collections import namedtuple
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connector.config.settings import BatchingSettings, DestinationSettings, RetrySettings
from connector.errors import CredentialsError
from connector.ingest.client import IngestClient
from connector.runtime import logs
from connector.runtime.clock import FakeClock
from tests.support.http import RecordingAPI, ok, preserved_structlog

pytestmark = pytest.mark.unit

# Registered secrets are process-wide; unique values keep this module independent of the others.
TOKEN = "tok-logs-7c1e9b2f"
UNREGISTERED_TOKEN = "tok-client-4d8a0e61"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    with preserved_structlog():
        yield


def capture(json_mode: bool) -> io.StringIO:
    stream = io.StringIO()
    logs.configure("debug", json_mode, stream)
    return stream


def log_everywhere(token: str) -> None:
    log = logs.get_logger("test.secrets")
    log.info(f"connecting with token {token}")
    log.info("nested", request={"headers": {"x-custom": f"Bearer {token}"}, "parts": [1, ("a", token)]})
    log.warning("keys", auth_token=token, password="hunter2-pass", settings={"db_password": "pw-9f8e7d"})
    log.warning("objects", error=ValueError(f"bad token {token}"), seen={token})
    Pair = namedtuple("Pair", "name value")
    log.info("namedtuple", pair=Pair("token", token))
    try:
        raise RuntimeError(f"refused {token}")
    except RuntimeError:
        log.exception("upload failed")
    log.debug("done", count=3, ratio=0.5, ok=True, nothing=None)


def test_json_logs_never_contain_a_registered_secret() -> None:
    logs.register_secret(TOKEN)
    stream = capture(json_mode=True)
    log_everywhere(TOKEN)
    output = stream.getvalue()

    assert TOKEN not in output
    assert "hunter2-pass" not in output and "pw-9f8e7d" not in output
    events = [json.loads(line) for line in output.splitlines()]
    assert [e["event"] for e in events] == [
        "connecting with token ***",
        "nested",
        "keys",
        "objects",
        "namedtuple",
        "upload failed",
        "done",
    ]
    nested, keys, objects, pair, failed, done = events[1:]
    assert nested["request"] == {"headers": {"x-custom": "Bearer ***"}, "parts": [1, ["a", "***"]]}
    assert keys["auth_token"] == "***" and keys["password"] == "***"
    assert keys["settings"] == {"db_password": "***"}
    assert "bad token ***" in objects["error"] and "***" in objects["seen"]
    assert pair["pair"] == ["token", "***"]
    assert "RuntimeError: refused ***" in failed["exception"]
    assert done["count"] == 3 and done["ok"] is True and done["nothing"] is None
    assert done["level"] == "debug" and "timestamp" in done


def test_console_logs_never_contain_a_registered_secret() -> None:
    logs.register_secret(TOKEN)
    stream = capture(json_mode=False)
    log_everywhere(TOKEN)
    output = stream.getvalue()

    assert TOKEN not in output
    assert "hunter2-pass" not in output and "pw-9f8e7d" not in output
    assert "connecting with token ***" in output
    assert "RuntimeError: refused ***" in output
    with pytest.raises(json.JSONDecodeError):
        json.loads(output.splitlines()[0])


def test_log_level_filters() -> None:
    stream = io.StringIO()
    logs.configure("warning", True, stream)
    log = logs.get_logger("test.level")
    log.info("hidden")
    log.warning("shown")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["shown"]


def test_short_values_are_not_registered() -> None:
    # Scrubbing "ab" would mangle every message; register_secret ignores values under 4 characters.
    logs.register_secret("ab")
    logs.register_secret(None)
    stream = capture(json_mode=True)
    logs.get_logger("t").info("about absent tables")
    assert json.loads(stream.getvalue())["event"] == "about absent tables"


def test_ingest_client_keeps_an_echoed_token_out_of_logs_and_errors() -> None:
    # The token is deliberately NOT registered: the client itself must not leak it.
    echoed = f"invalid token {UNREGISTERED_TOKEN} for x-optikpi-token"
    answers = [
        httpx.Response(503, json={"error": "Unavailable", "message": echoed}),
        httpx.Response(400, json={"error": "Bad Request", "message": echoed}),
    ]

    def respond(request: httpx.Request, records: list[dict[str, Any]]) -> httpx.Response:
        if answers:
            return answers.pop(0)
        if len(records) == 1 and records[0]["event_id"] == "e1":
            return httpx.Response(401, json={"error": "Unauthorized", "message": echoed})
        return ok(request, records)

    stream = capture(json_mode=True)
    fake = FakeClock()
    client = IngestClient(
        DestinationSettings(
            base_url="https://gateway.test/apigw/ingest",
            account_id="acc",
            workspace_id="ws",
            auth_token=SecretStr(UNREGISTERED_TOKEN),
        ),
        RetrySettings(initial_backoff_ms=10, max_backoff_ms=100),
        BatchingSettings(),
        transport=RecordingAPI(respond).transport(),
        clock=fake.now,
        sleep=fake.sleep,
        rng=random.Random(1),
    )
    record = {"user_id": "u", "event_name": "Login", "event_time": "2024-01-15T10:30:00Z"}
    with pytest.raises(CredentialsError) as caught:
        # 503 (retried, logged), 400 (narrowed, logged), then the halves: e0 accepted, e1 answered 401
        client.upload("account", [{**record, "event_id": "e0"}, {**record, "event_id": "e1"}])
    output = stream.getvalue()

    assert len(fake.sleeps) == 1  # the 503 was retried
    assert "retrying" in output and "narrowing" in output  # the logs did cover this upload
    assert caught.value.status == 401
    assert "invalid token *** for x-optikpi-token" in str(caught.value)
    assert UNREGISTERED_TOKEN not in output
    assert UNREGISTERED_TOKEN not in str(caught.value) and UNREGISTERED_TOKEN not in repr(caught.value)
    assert UNREGISTERED_TOKEN not in caught.value.detail


def test_rejections_do_not_carry_an_echoed_token() -> None:
    def respond(request: httpx.Request, records: list[dict[str, Any]]) -> httpx.Response:
        text = f"record refused for token {UNREGISTERED_TOKEN}"
        return httpx.Response(400, json={"error": "Bad Request", "message": text})

    fake = FakeClock()
    client = IngestClient(
        DestinationSettings(
            base_url="https://gateway.test/apigw/ingest",
            account_id="acc",
            workspace_id="ws",
            auth_token=SecretStr(UNREGISTERED_TOKEN),
        ),
        RetrySettings(),
        BatchingSettings(),
        transport=RecordingAPI(respond).transport(),
        clock=fake.now,
        sleep=fake.sleep,
    )
    result = client.upload("extattributes", [{"user_id": "u", "list_name": "l", "ext_data": {}}])
    [rejection] = result.rejected
    assert rejection.status == 400
    assert rejection.message == "record refused for token ***"
    assert UNREGISTERED_TOKEN not in rejection.response and "***" in rejection.response
