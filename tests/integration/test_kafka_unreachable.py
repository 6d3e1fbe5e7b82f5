"""Nothing listens at the broker address: each one-shot command says so in one line naming the
broker, within its --timeout, and none lets librdkafka's raw `%3|...` lines through."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.e2e import bet_mapping, connector_doc, free_port, write_config

pytestmark = pytest.mark.integration

TIMEOUT_S = 2


@pytest.fixture
def closed_config(tmp_path: Path) -> tuple[Path, str]:
    broker = f"127.0.0.1:{free_port()}"
    doc = connector_doc(
        bootstrap=broker,
        registry_url=f"http://127.0.0.1:{free_port()}",
        api_url=f"http://127.0.0.1:{free_port()}/apigw/ingest",
        group="g",
        dlq_topic="dlq",
        mappings=[{**bet_mapping("bets"), "format": "avro"}],
    )
    return write_config(tmp_path, doc), broker


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", *args, "--timeout", str(TIMEOUT_S)],
        capture_output=True,
        text=True,
        timeout=120,  # a safety net only: the command's own --timeout is what is under test
        check=False,
    )


def broker_lines(output: str, broker: str) -> list[str]:
    return [line for line in output.splitlines() if broker in line]


@pytest.mark.parametrize(
    "command",
    [
        ["produce-sample", "--count", "5"],
        ["dlq", "list"],
        ["dlq", "stats"],
    ],
    ids=["produce-sample", "dlq-list", "dlq-stats"],
)
def test_one_line_naming_the_broker(closed_config: tuple[Path, str], command: list[str]) -> None:
    config, broker = closed_config
    done = run_cli(*command, "--config", str(config))
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "%3|" not in output
    assert output.strip().splitlines() == [
        f"error: cannot reach Kafka at {broker} within {TIMEOUT_S} s: "
        + output.split(f"within {TIMEOUT_S} s: ", 1)[-1].strip()
    ], output
    assert "Connection refused" in output  # why, not just "timed out"


def test_check_names_the_broker_in_its_kafka_line(closed_config: tuple[Path, str]) -> None:
    config, broker = closed_config
    done = run_cli("check", "--config", str(config))
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "%3|" not in output
    lines = broker_lines(output, broker)
    assert len(lines) == 1, output
    assert lines[0].startswith(f"kafka: FAILED (cannot reach Kafka at {broker} within {TIMEOUT_S} s: ")
    assert len(output.splitlines()) < 10, output  # the mapping table, kafka, the API: no flood
