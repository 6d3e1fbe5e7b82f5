"""`dev-stack` and `demo --keep-running` as a user runs them: subprocesses, then `produce-sample`
and `run` against the stack's configuration, then SIGTERM and a clean exit 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest
import yaml

pytestmark = pytest.mark.broker

REPO_ROOT = Path(__file__).resolve().parents[2]
UP = "Ctrl-C (or SIGTERM) stops the stack."


def cli(*args: str, out: IO[bytes] | int = subprocess.PIPE, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "connector", *args],
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT)},
    )


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def stopper() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes to SIGKILL at the end if a test left them running."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(60)


def test_dev_stack_serves_a_working_configuration_until_sigterm(
    tmp_path: Path, stopper: list[subprocess.Popen[bytes]]
) -> None:
    output = tmp_path / "dev-stack.out"
    with output.open("wb") as out:
        stack = cli("dev-stack", "--workdir", "stack", out=out, cwd=tmp_path)
    stopper.append(stack)
    wait_for(lambda: UP in output.read_text() or stack.poll() is not None, "dev-stack to come up")
    text = output.read_text()
    assert stack.poll() is None, text
    config = tmp_path / "stack" / "connector.yaml"
    doc = yaml.safe_load(config.read_text())
    for command in ("produce-sample", "run", "dlq list"):
        assert f"optikpi-connector {command} --config stack/connector.yaml" in text
    health = int(re.findall(r"curl -s localhost:(\d+)/readyz", text)[0])
    assert f"localhost:{health}/metrics" in text
    api_root = doc["optikpi"]["base_url"].removesuffix("/apigw/ingest")

    produce = cli(
        "produce-sample", "--config", str(config), "--count", "30", "--poison-rate", "0.1", cwd=tmp_path
    )
    stopper.append(produce)
    produced, _ = produce.communicate(timeout=120)
    assert produce.returncode == 0, produced.decode()

    run = cli("--log-format", "json", "run", "--config", str(config), cwd=tmp_path)
    stopper.append(run)

    def accepted() -> int:
        stats = httpx.get(f"{api_root}/_sandbox/stats", timeout=5).json()
        return int(sum(stats.get("accepted", {}).values()))

    wait_for(lambda: accepted() >= 6 * 30 * 0.5, "the sandbox to accept most sample events")
    ready = httpx.get(f"http://127.0.0.1:{health}/readyz", timeout=5)
    assert ready.status_code == 200, ready.text
    metrics = httpx.get(f"http://127.0.0.1:{health}/metrics", timeout=5).text
    assert "optikpi_records_accepted_total" in metrics
    assert stop(run) == 0

    assert stop(stack) == 0
    assert "dev-stack: stopped" in output.read_text()


def test_demo_keep_running_leaves_the_stack_up_until_sigterm(
    tmp_path: Path, stopper: list[subprocess.Popen[bytes]]
) -> None:
    output = tmp_path / "demo.out"
    with output.open("wb") as out:
        demo = cli("demo", "--count", "20", "--workdir", "demo", "--keep-running", out=out, cwd=tmp_path)
    stopper.append(demo)
    wait_for(lambda: UP in output.read_text() or demo.poll() is not None, "the demo to finish", 180)
    text = output.read_text()
    assert demo.poll() is None, text
    assert "accepted by the ingest API" in text
    doc = yaml.safe_load((tmp_path / "demo" / "connector.yaml").read_text())
    api_root = doc["optikpi"]["base_url"].removesuffix("/apigw/ingest")
    assert httpx.get(f"{api_root}/_sandbox/stats", timeout=5).status_code == 200  # still up
    assert "optikpi-connector run --config demo/connector.yaml" in text
    assert stop(demo) == 0
