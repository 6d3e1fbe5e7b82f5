"""`optikpi-connector send` in-process against the sandbox on loopback: every endpoint, invalid lines,
a poison record only the server sees, injected faults, and the configuration errors (exit 2)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.arguments import build_parser
from connector.cli import main
from connector.devtools.sandbox.server import (
    DEMO_ACCOUNT_ID,
    DEMO_TOKEN,
    DEMO_WORKSPACE_ID,
    SandboxOptions,
    SandboxServer,
)
from connector.endpoints import ENDPOINT_KEYS, ENDPOINTS
from connector.errors import ExitCode
from tests.support.http import preserved_structlog, valid_record, write_jsonl, write_send_config

pytestmark = pytest.mark.integration

TOKEN_VAR = "OPTIKPI_TEST_TOKEN"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    with preserved_structlog():
        yield


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxOptions(port=0, seed=20240115)) as sandbox:
        yield sandbox


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(TOKEN_VAR, DEMO_TOKEN)
    return DEMO_TOKEN


def config_for(tmp_path: Path, base_url: str, **kw: Any) -> Path:
    return write_send_config(
        tmp_path / "connector.yaml",
        base_url,
        account_id=DEMO_ACCOUNT_ID,
        workspace_id=DEMO_WORKSPACE_ID,
        token="${" + TOKEN_VAR + "}",
        **kw,
    )


def send(capsys: pytest.CaptureFixture[str], endpoint: str, file: Path, config: Path) -> tuple[int, str, str]:
    code = main(["send", endpoint, str(file), "--config", str(config)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def record_id(record: dict[str, Any]) -> str:
    return str(record.get("event_id") or record["user_id"])


# ---------------------------------------------------------------------------------------------
# Happy path


@pytest.mark.parametrize("endpoint", ENDPOINT_KEYS)
def test_every_record_of_every_endpoint_is_accepted_and_completed(
    endpoint: str, server: SandboxServer, token: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [valid_record(endpoint, i) for i in range(120)]
    file = write_jsonl(tmp_path / "records.jsonl", records)
    code, out, err = send(capsys, endpoint, file, config_for(tmp_path, server.base_url, max_records=50))

    assert code == 0, out + err
    assert "120 records, 120 accepted, 0 rejected, 0 invalid, 3 requests" in out
    stored = server.records(endpoint)
    assert [record_id(r) for r in stored] == [record_id(r) for r in records]
    assert len(server.records()) == 120  # nothing went to another endpoint
    category = ENDPOINTS[endpoint].category
    for original, got in zip(records, stored, strict=True):
        assert got["account_id"] == DEMO_ACCOUNT_ID and got["workspace_id"] == DEMO_WORKSPACE_ID
        if category is not None:
            assert got["event_category"] == category
        assert {k: got[k] for k in original} == original
    assert DEMO_TOKEN not in out + err


# ---------------------------------------------------------------------------------------------
# Records the client refuses itself, records only the server refuses


def test_invalid_lines_are_reported_with_their_line_and_not_sent(
    server: SandboxServer, token: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [valid_record("deposit", i) for i in range(10)]
    records[4] = {**records[4], "amount": -5}  # the model wants amount > 0
    del records[7]["event_name"]
    file = write_jsonl(
        tmp_path / "records.jsonl",
        records,
        # inserted at these 0-based positions of the final file: lines 3 and 6
        raw_lines={2: '{"user_id": "u1", "amount": ', 5: "[1, 2, 3]"},
    )
    code, out, err = send(capsys, "deposit", file, config_for(tmp_path, server.base_url))

    assert code == 1, out + err
    lines = out.splitlines()
    assert any(line.startswith("line 3: invalid JSON") for line in lines), out
    assert "line 6: expected a JSON object, got list" in lines
    # records[4] is on line 7 (two raw lines before it), records[7] on line 10
    assert any(
        line.startswith("event_id deposit-4 (line 7): invalid:") and "amount" in line for line in lines
    )
    assert any(
        line.startswith("event_id deposit-7 (line 10): invalid:") and "event_name" in line for line in lines
    )
    assert "12 records, 8 accepted, 0 rejected, 4 invalid" in out
    assert [r["event_id"] for r in server.records("deposit")] == [
        f"deposit-{i}" for i in range(10) if i not in (4, 7)
    ]


def test_a_record_only_the_server_rejects_is_isolated_inside_500(
    server: SandboxServer, token: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [valid_record("deposit", i) for i in range(500)]
    # The local model accepts any account_id string; the server requires the header's.
    records[137]["account_id"] = "someone-elses-account"
    file = write_jsonl(tmp_path / "records.jsonl", records)
    code, out, err = send(capsys, "deposit", file, config_for(tmp_path, server.base_url))

    assert code == 1, out + err
    rejected = [line for line in out.splitlines() if "rejected (" in line]
    assert len(rejected) == 1
    assert rejected[0].startswith("event_id deposit-137 (line 138): rejected (HTTP 400): Validation failed")
    assert "account_id" in rejected[0]
    assert "500 records, 499 accepted, 1 rejected, 0 invalid" in out
    stored = [r["event_id"] for r in server.records("deposit")]
    assert stored == [f"deposit-{i}" for i in range(500) if i != 137]


# ---------------------------------------------------------------------------------------------
# Injected faults: everything still arrives, exactly once


@pytest.mark.parametrize(
    ("faults", "count", "max_records", "evidence"),
    [
        (
            {"fail_rate": 0.5},
            1000,
            50,
            lambda s: sum(s["requests"]["deposit"].get(c, 0) for c in ("500", "503")),
        ),
        # each injected 429 asks for a real 1 s Retry-After: keep the request count small
        ({"throttle_rate": 0.5}, 100, 25, lambda s: s["requests"]["deposit"].get("429", 0)),
        ({"drop_rate": 0.3}, 1000, 50, lambda s: s["dropped"]),
    ],
    ids=["fail", "throttle", "drop"],
)
def test_faults_are_survived_without_loss_or_duplicates(
    faults: dict[str, float],
    count: int,
    max_records: int,
    evidence: Any,
    server: SandboxServer,
    token: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server.set_faults(**faults)
    records = [valid_record("deposit", i) for i in range(count)]
    file = write_jsonl(tmp_path / "records.jsonl", records)
    code, out, err = send(
        capsys, "deposit", file, config_for(tmp_path, server.base_url, max_records=max_records)
    )

    assert code == 0, out + err
    assert f"{count} records, {count} accepted, 0 rejected" in out
    stats = server.stats()
    assert evidence(stats) > 0  # the faults did happen
    # A retried request may be answered from the idempotency cache, but no record is stored twice.
    stored = [r["event_id"] for r in server.records()]
    assert len(stored) == count
    assert stored == [r["event_id"] for r in records]


# ---------------------------------------------------------------------------------------------
# Configuration problems: exit 2, one clear line, no secret


def test_wrong_token_exits_2_naming_the_key_without_printing_the_token(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "wrong-token-5f3a9c"
    monkeypatch.setenv(TOKEN_VAR, wrong)
    file = write_jsonl(tmp_path / "records.jsonl", [valid_record("deposit", i) for i in range(5)])
    code, out, err = send(capsys, "deposit", file, config_for(tmp_path, server.base_url))

    assert code == 2
    assert "configuration error: optikpi.auth_token" in err
    assert "401" in err and "Traceback" not in err
    assert wrong not in out + err
    assert server.records() == []


def test_wrong_base_url_path_exits_2_naming_base_url(
    server: SandboxServer, token: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write_jsonl(tmp_path / "records.jsonl", [valid_record("deposit", i) for i in range(5)])
    config = config_for(tmp_path, server.root_url + "/apigw/ingst")
    code, out, err = send(capsys, "deposit", file, config)

    assert code == 2
    assert "configuration error: optikpi.base_url" in err and "404" in err
    assert "Traceback" not in err and token not in out + err
    assert server.records() == []


def test_missing_environment_variable_exits_2_with_one_line(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(TOKEN_VAR, raising=False)
    assert TOKEN_VAR not in os.environ
    file = write_jsonl(tmp_path / "records.jsonl", [valid_record("deposit", 1)])
    code, _out, err = send(capsys, "deposit", file, config_for(tmp_path, server.base_url))

    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("configuration error:")
    assert TOKEN_VAR in lines[0] and "optikpi.auth_token" in lines[0]
    assert server.stats()["requests"]["deposit"] == {}


def test_missing_input_file_exits_2(
    server: SandboxServer, token: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = send(
        capsys, "deposit", tmp_path / "absent.jsonl", config_for(tmp_path, server.base_url)
    )
    assert code == 2
    assert "absent.jsonl" in err and "Traceback" not in err
    assert server.stats()["requests"]["deposit"] == {}


# ---------------------------------------------------------------------------------------------
# A dead API: `send` gives up after --max-elapsed instead of waiting for ever


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_closed_port_ends_send_with_exit_3_naming_the_host_and_what_was_not_sent(tmp_path: Path) -> None:
    port = closed_port()
    # retry.max_elapsed_s 0 in the file means "retry for ever": only --max-elapsed ends this run.
    config = write_send_config(
        tmp_path / "c.yaml",
        f"http://127.0.0.1:{port}/apigw/ingest",
        account_id=DEMO_ACCOUNT_ID,
        workspace_id=DEMO_WORKSPACE_ID,
        token=DEMO_TOKEN,
        max_elapsed_s=0,
    )
    file = write_jsonl(tmp_path / "records.jsonl", [valid_record("deposit", i) for i in range(30)])
    done = subprocess.run(
        [
            *(sys.executable, "-m", "connector", "--log-level", "error"),
            *("send", "deposit", str(file), "--config", str(config), "--max-elapsed", "0.5"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == ExitCode.GAVE_UP and ExitCode.GAVE_UP.value == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: gave up on 127.0.0.1:{port}: deposit: still failing after")
    assert "ConnectError" in lines[0] and lines[0].endswith("0 records accepted, 30 not sent (exit 3)")
    assert "30 records, 0 accepted" in done.stdout
    assert DEMO_TOKEN not in done.stdout + done.stderr


def test_send_gives_up_after_five_minutes_unless_told_otherwise() -> None:
    args = build_parser().parse_args(["send", "deposit", "f.jsonl", "--config", "c.yaml"])
    assert args.max_elapsed == 300.0


def test_retries_are_counted_in_the_summary(
    server: SandboxServer, token: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.set_faults(fail_rate=0.5)
    file = write_jsonl(tmp_path / "records.jsonl", [valid_record("deposit", i) for i in range(200)])
    code, out, err = send(capsys, "deposit", file, config_for(tmp_path, server.base_url, max_records=20))

    assert code == 0, out + err
    failed = sum(server.stats()["requests"]["deposit"].get(c, 0) for c in ("500", "503"))
    assert failed > 0
    assert out.strip().endswith(f"{10 + failed} requests, {failed} retries")
