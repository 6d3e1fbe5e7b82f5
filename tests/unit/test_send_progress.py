"""`send`'s progress line on a terminal and its retry budget, against httpx.MockTransport with the
fake clock: a dead API ends the run with exit 3 and a line saying what was and was not sent."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import connector.commands.send as send_module
from connector.commands.send import Progress, SendReport, gave_up_line, send_file
from connector.config.loader import load_settings
from connector.config.settings import Settings
from connector.errors import ExitCode
from connector.ingest.client import IngestClient
from connector.runtime.clock import FakeClock
from connector.runtime.metrics import Metrics
from tests.support.http import RecordingAPI, ok, valid_record, write_jsonl, write_send_config

pytestmark = pytest.mark.unit

BASE_URL = "https://user:pw@api.example.test:8443/apigw/ingest"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def settings_for(tmp_path: Path, *, max_records: int = 5, max_elapsed_s: float = 0) -> Settings:
    config = write_send_config(
        tmp_path / "c.yaml",
        BASE_URL,
        account_id="acc",
        workspace_id="ws",
        token="tok",
        max_records=max_records,
        max_elapsed_s=max_elapsed_s,
    )
    return load_settings(config, "send")


def client_for(
    settings: Settings, api: RecordingAPI, clock: FakeClock, metrics: Metrics, **kw: Any
) -> IngestClient:
    assert settings.optikpi is not None
    return IngestClient(
        settings.optikpi,
        settings.retry,
        settings.batching,
        transport=api.transport(),
        clock=clock,
        sleep=kw.get("sleep", clock.sleep),
        metrics=metrics,
    )


def dead_after(accepted_requests: int) -> RecordingAPI:
    """Answers the first requests, then refuses every connection."""
    answered = 0

    def respond(request: httpx.Request, records: list[dict[str, Any]]) -> httpx.Response:
        nonlocal answered
        if answered < accepted_requests:
            answered += 1
            return ok(request, records)
        raise httpx.ConnectError("connection refused", request=request)

    return RecordingAPI(respond)


def test_a_dead_api_ends_the_send_with_exit_3_and_says_what_was_sent(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, max_records=5, max_elapsed_s=30)
    file = write_jsonl(
        tmp_path / "r.jsonl", [valid_record("deposit", i) for i in range(12)], raw_lines={3: "{oops"}
    )
    clock, metrics, api = FakeClock(), Metrics(), dead_after(1)
    out = io.StringIO()

    report = send_file(
        "deposit", file, settings, client_for(settings, api, clock, metrics), out, metrics=metrics
    )

    assert report.gave_up is not None and "ConnectError" in report.gave_up
    assert report.exit_code == ExitCode.GAVE_UP and ExitCode.GAVE_UP.value == 3
    # 13 lines: 1 invalid, the first request of 5 accepted, the other 7 records never accepted.
    assert (report.lines, report.accepted, len(report.invalid), report.unsent) == (13, 5, 1, 7)
    assert report.retries > 0
    assert [r["event_id"] for r in api.accepted] == [f"deposit-{i}" for i in range(5)]
    assert clock.t <= 30  # it stopped at the budget instead of retrying for ever
    line = gave_up_line(report, BASE_URL)
    assert line.startswith("error: gave up on api.example.test:8443: deposit: still failing after")
    assert line.endswith("5 records accepted, 7 not sent (exit 3)")
    assert "pw" not in line and "user" not in line


def test_the_file_is_read_to_the_end_to_count_what_was_not_sent(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, max_records=5, max_elapsed_s=10)
    # More than one chunk handed to the client: the give-up happens long before the end of the file.
    count = send_module.CHUNK_RECORDS + 20
    file = write_jsonl(tmp_path / "r.jsonl", [valid_record("deposit", i) for i in range(count)])
    clock, metrics = FakeClock(), Metrics()

    report = send_file(
        "deposit",
        file,
        settings,
        client_for(settings, dead_after(0), clock, metrics),
        io.StringIO(),
        metrics=metrics,
    )

    assert (report.lines, report.accepted, report.unsent) == (count, 0, count)


def test_on_a_terminal_the_progress_line_moves_while_an_upload_is_stuck_retrying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second attempt succeeds only if the progress line showed the first retry while the client
    waited: without the drawing thread nothing draws during the wait."""
    monkeypatch.setattr(send_module, "PROGRESS_INTERVAL_S", 0.01)
    settings = settings_for(tmp_path, max_records=5)
    file = write_jsonl(tmp_path / "r.jsonl", [valid_record("deposit", i) for i in range(5)])
    terminal = Terminal()
    attempts = 0

    def respond(request: httpx.Request, records: list[dict[str, Any]]) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise httpx.ConnectError("refused", request=request)
        assert "1 retries" in terminal.getvalue(), terminal.getvalue()
        return ok(request, records)

    def sleep(seconds: float) -> None:
        # The client's retry wait: give the drawing thread a generous while to show the retry.
        for _ in range(6000):
            if "1 retries" in terminal.getvalue():
                return
            time.sleep(0.01)

    clock, metrics = FakeClock(), Metrics()
    api = RecordingAPI(respond)
    client = client_for(settings, api, clock, metrics, sleep=sleep)
    report = send_file("deposit", file, settings, client, io.StringIO(), metrics=metrics, progress=terminal)

    assert report.exit_code == 0 and report.accepted == 5 and report.retries == 1
    drawn = terminal.getvalue()
    assert "deposit: 5 read, 0 accepted" in drawn and "1 retries" in drawn
    assert drawn.endswith("\033[K")  # the line is cleared for the summary


def test_off_a_terminal_nothing_is_drawn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(send_module, "PROGRESS_INTERVAL_S", 0.001)
    settings = settings_for(tmp_path)
    file = write_jsonl(tmp_path / "r.jsonl", [valid_record("deposit", i) for i in range(20)])
    not_a_terminal = io.StringIO()
    metrics = Metrics()

    report = send_file(
        "deposit",
        file,
        settings,
        client_for(settings, RecordingAPI(ok), FakeClock(), metrics),
        io.StringIO(),
        metrics=metrics,
        progress=not_a_terminal,
    )

    assert report.accepted == 20
    assert not_a_terminal.getvalue() == ""


def test_the_progress_line_counts_records_rate_and_retries() -> None:
    metrics, clock = Metrics(), FakeClock()
    report = SendReport("deposit", lines=3000)
    progress = Progress(report, metrics, Terminal(), clock=clock)
    metrics.records_accepted.labels("deposit").inc(2500)
    metrics.retries.labels("deposit", "503").inc(2)
    metrics.retries.labels("deposit", "ConnectError").inc()
    clock.advance(2.0)

    assert progress.text() == "deposit: 3,000 read, 2,500 accepted, 1,250 records/s, 3 retries, 2 s"
