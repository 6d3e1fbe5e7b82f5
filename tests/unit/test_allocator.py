"""connector.runtime.allocator: glibc keeps a batch's worth of free heap; operators can override."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

PROBE = "from connector.runtime.allocator import keep_heap_for_batches as k; print(k())"


def run_probe(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_the_settings_apply_on_glibc() -> None:
    assert run_probe({"PATH": ""}) == "True"


def test_an_operators_malloc_environment_wins() -> None:
    assert run_probe({"MALLOC_TRIM_THRESHOLD_": "131072"}) == "False"
