"""Nothing listens at the broker address: each one-shot command says so in one line naming the
broker, within its --timeout, and none lets librdkafka's raw `%3|...` lines through."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.e2e import bet_mapping, connector_doc, free_port, log_events, wait_until, write_config

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


def test_run_names_the_silent_brokers_on_readyz_without_flooding_the_log(
    closed_config: tuple[Path, str], tmp_path: Path
) -> None:
    config, broker = closed_config
    port = free_port()
    doc = yaml.safe_load(config.read_text(encoding="utf-8"))
    doc["server"]["port"] = port
    write_config(tmp_path, doc)
    log_path = tmp_path / "run.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "connector", "--log-format", "json", "run", "--config", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        reasons: dict[str, str] = {}

        def kafka_named() -> bool:
            nonlocal reasons
            try:
                reasons = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).json()["reasons"]
            except httpx.HTTPError:
                return False
            return "kafka" in reasons

        wait_until(kafka_named, 60, "reason kafka on /readyz")
        assert broker in reasons["kafka"] and "kafka.bootstrap_servers" in reasons["kafka"]
        assert "starting" in reasons  # existing reasons keep their meaning
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    output = log_path.read_text(encoding="utf-8")
    assert "%3|" not in output
    refused = [e for e in log_events(log_path) if "Connection refused" in str(e.get("event"))]
    # About 20 reconnects a second for each of three clients, until /readyz said `kafka`: at most
    # one line each per 30 s goes through.
    assert 1 <= len(refused) <= 3, refused
    assert all(e["level"] == "error" for e in refused)
