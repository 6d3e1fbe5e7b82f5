"""SIGTERM before the pipeline runs ends start-up with exit 0 and a log line; `main` leaves the
process's signal handlers as it found them."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest

import connector.config.loader as loader
from connector import cli
from connector.runtime import stopping

pytestmark = pytest.mark.unit


def test_sigterm_while_the_configuration_loads_exits_0_and_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def terminated_while_loading(*_args: Any, **_kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("the SIGTERM handler should have ended start-up")

    monkeypatch.setattr(loader, "load_settings", terminated_while_loading)
    before = signal.getsignal(signal.SIGTERM)
    code = cli.main(["--log-format", "console", "run", "--config", str(tmp_path / "c.yaml")])
    assert code == 0
    assert "stopped before start-up finished" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before


def test_after_the_hand_over_a_signal_asks_the_pipeline_to_stop() -> None:
    restore = stopping.install_early()
    heard: list[int] = []
    try:
        stopping.hand_over(heard.append)
        os.kill(os.getpid(), signal.SIGTERM)
        assert heard == [signal.SIGTERM]
    finally:
        restore()


def test_a_stop_swallowed_during_start_up_is_not_lost_at_the_hand_over() -> None:
    restore = stopping.install_early()
    try:
        with contextlib.suppress(stopping.StopRequested):  # as a callback catching everything would
            os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(stopping.StopRequested):
            stopping.hand_over(lambda _signum: None)
    finally:
        restore()
