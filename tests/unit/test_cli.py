"""The command line's contract: --version/--help, exit code 2 for bad usage and bad configuration (one
line per problem, no traceback, no secret), and `python -m connector`."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector import __version__
from connector.arguments import build_parser
from connector.cli import main
from connector.errors import ExitCode
from connector.kafka.memory.broker import InMemoryBroker
from tests.support.http import preserved_structlog, valid_record, write_jsonl, write_send_config

pytestmark = pytest.mark.unit

CONFIG_TOKEN = "cfg-token-1b2c3d4e"
ENV_TOKEN = "env-token-9z8y7x6w"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    with preserved_structlog():
        yield


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPTIKPI_AUTH_TOKEN", ENV_TOKEN)
    path = tmp_path / "connector.yaml"
    path.write_text(
        f"""
kafka:
  bootstrap_servers: localhost:9092
schema_registry:
  url: http://localhost:8081
optikpi:
  base_url: https://gateway.example.com/apigw/ingest
  account_id: acc
  workspace_id: ws
  auth_token: {CONFIG_TOKEN}
destinations:
  brand2:
    base_url: https://gateway.example.com/apigw/ingest
    account_id: acc2
    workspace_id: ws2
    auth_token: ${{OPTIKPI_AUTH_TOKEN}}
dead_letter:
  topic: optikpi-connector.dlq
mappings:
  - topic: casino.bets
    endpoint: gaming-activity
""",
        encoding="utf-8",
    )
    return path


def subcommands() -> list[str]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return sorted(action.choices)
    raise AssertionError("no subcommands")


def exit_code(argv: list[str]) -> int | str | None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    return caught.value.code


def test_the_documented_commands_exist() -> None:
    assert {"run", "check", "send", "sandbox", "produce-sample", "demo"} <= set(subcommands())


def test_version(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    assert exit_code(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"optikpi-connector {__version__}"


@pytest.mark.parametrize("command", [None, *subcommands()])
def test_help_exits_0_and_never_shows_a_token(
    command: str | None, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--help"] if command is None else [command, "--help"]
    assert exit_code(argv) == 0
    out, err = capsys.readouterr()
    assert "usage: optikpi-connector" in out
    if command is not None:
        assert command in out.splitlines()[0]
    # --help given next to a real configuration, too: nothing is loaded, nothing is shown
    if command in ("run", "check", "send", "produce-sample"):
        extra = ["deposit", "x.jsonl"] if command == "send" else []
        assert exit_code([command, *extra, "--config", str(config), "--help"]) == 0
        out2, err2 = capsys.readouterr()
        out, err = out + out2, err + err2
    for token in (CONFIG_TOKEN, ENV_TOKEN):
        assert token not in out and token not in err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["send", "bets", "x.jsonl", "--config", "c.yaml"],  # unknown endpoint
        ["send", "deposit", "x.jsonl"],  # --config missing
        ["run"],
        ["sandbox", "--fail-rate", "2"],
        ["sandbox", "--port", "-1"],
        ["produce-sample", "--config", "c.yaml", "--count", "ten"],
        ["--log-level", "loud", "run", "--config", "c.yaml"],
    ],
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(argv) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "usage:" in err and "error:" in err and "Traceback" not in err


def test_a_config_with_three_problems_prints_three_lines_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        f"""
optikpi:
  base_url: ftp://gateway.example.com
  workspace_id: ws
  auth_token: {CONFIG_TOKEN}
batching:
  max_records: 0
""",
        encoding="utf-8",
    )
    records = write_jsonl(tmp_path / "r.jsonl", [valid_record("deposit", 1)])
    assert main(["send", "deposit", str(records), "--config", str(config)]) == ExitCode.USAGE
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 3, err
    assert all(line.startswith("configuration error:") for line in lines)
    assert [
        key for key in ("optikpi.base_url", "optikpi.account_id", "batching.max_records") if key in err
    ] == [
        "optikpi.base_url",
        "optikpi.account_id",
        "batching.max_records",
    ]
    assert "Traceback" not in err and CONFIG_TOKEN not in out + err


def test_a_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = write_jsonl(tmp_path / "r.jsonl", [valid_record("deposit", 1)])
    code = main(["send", "deposit", str(records), "--config", str(tmp_path / "nope.yaml")])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert err.startswith("configuration error:") and "nope.yaml" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("auth_token", "tökén-1234"),
        ("auth_token", "tab\tinside"),
        ("account_id", "accé"),
        ("workspace_id", "ws "),
    ],
)
def test_ids_and_token_that_cannot_be_headers_are_configuration_errors(
    field: str,
    value: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # They become HTTP headers and the signing key; refusing them at request time was a traceback.
    monkeypatch.setenv("OPTIKPI_TEST_TOKEN", value if field == "auth_token" else "good-token")
    ids = {"account_id": "acc", "workspace_id": "ws"}
    if field != "auth_token":
        ids[field] = f'"{value}"'
    config = write_send_config(
        tmp_path / "c.yaml",
        "http://127.0.0.1:9/apigw/ingest",
        account_id=ids["account_id"],
        workspace_id=ids["workspace_id"],
        max_elapsed_s=1,
    )
    records = write_jsonl(tmp_path / "r.jsonl", [valid_record("deposit", 1)])
    code = main(["send", "deposit", str(records), "--config", str(config)])
    out, err = capsys.readouterr()
    assert code == ExitCode.USAGE, out + err
    assert err.startswith("configuration error:") and f"optikpi.{field}" in err
    assert "Traceback" not in err
    if field == "auth_token":
        assert value not in out + err


def test_a_token_file_that_cannot_be_a_header_is_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("tökén-secret\n", encoding="utf-8")
    config = tmp_path / "c.yaml"
    config.write_text(
        "optikpi:\n"
        "  base_url: http://127.0.0.1:9/apigw/ingest\n"
        "  account_id: acc\n"
        "  workspace_id: ws\n"
        f"  auth_token_file: {token_file}\n"
        "retry:\n"
        "  max_elapsed_s: 1\n",
        encoding="utf-8",
    )
    records = write_jsonl(tmp_path / "r.jsonl", [valid_record("deposit", 1)])
    code = main(["send", "deposit", str(records), "--config", str(config)])
    out, err = capsys.readouterr()
    assert code == ExitCode.USAGE, out + err
    assert "configuration error: optikpi.auth_token_file" in err and "printable ASCII" in err
    assert "Traceback" not in err and "tökén" not in out + err


def test_exit_codes_are_the_documented_contract() -> None:
    assert [int(code) for code in ExitCode] == [0, 1, 2, 3, 130]


def test_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("connector.cli._dispatch", interrupted)
    assert main(["sandbox"]) == ExitCode.INTERRUPTED
    assert capsys.readouterr().err == "interrupted\n"


def test_python_dash_m_connector_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "connector", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"optikpi-connector {__version__}"


def test_python_dash_m_connector_bad_config_exits_2_without_traceback(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("optikpi: [not, a, mapping]\nbogus: 1\n", encoding="utf-8")
    records = write_jsonl(tmp_path / "r.jsonl", [valid_record("deposit", 1)])
    done = subprocess.run(
        [sys.executable, "-m", "connector", "send", "deposit", str(records), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("configuration error:") for line in lines), done.stderr
    assert "Traceback" not in done.stderr


# --- produce-sample, on the in-memory broker -----------------------------------------------------


@pytest.fixture
def sample_broker(monkeypatch: pytest.MonkeyPatch) -> InMemoryBroker:
    """The in-memory broker standing behind `produce-sample`'s Kafka producer and admin client."""
    broker = InMemoryBroker()
    monkeypatch.setattr("connector.kafka.producer.KafkaProducer", lambda _config: broker.producer())
    monkeypatch.setattr("connector.kafka.admin.KafkaAdmin", lambda _config: broker.admin())
    return broker


def _sample_config(tmp_path: Path) -> Path:
    path = tmp_path / "samples.yaml"
    path.write_text(
        """
kafka:
  bootstrap_servers: localhost:9092
mappings:
  - topic: casino.bets
    endpoint: gaming-activity
    schema: bet.avsc
    format: avro
""",
        encoding="utf-8",
    )
    return path


def test_produce_sample_exits_0_when_every_event_is_delivered(
    sample_broker: InMemoryBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["produce-sample", "--config", str(_sample_config(tmp_path)), "--count", "10"])

    out, err = capsys.readouterr()
    assert code == 0, err
    assert "casino.bets: 10 events" in out and "not delivered" not in err
    assert len(sample_broker.records("casino.bets")) == 10


def test_produce_sample_exits_1_and_says_how_many_when_deliveries_fail(
    sample_broker: InMemoryBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample_broker.create_topic("casino.bets", 3)
    sample_broker.fail_deliveries("casino.bets", 3)

    code = main(["produce-sample", "--config", str(_sample_config(tmp_path)), "--count", "10"])

    out, err = capsys.readouterr()
    assert code == 1
    assert "casino.bets: 10 events" in out
    assert (
        [line for line in err.splitlines() if "not delivered" in line]
        == [
            line
            for line in err.splitlines()
            if line.startswith("error: 3 of 10 sample events were not delivered")
        ]
        != []
    )
    assert len(sample_broker.records("casino.bets")) == 7
