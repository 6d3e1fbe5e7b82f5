"""`make bench` in miniature: the harness runs end to end on 2,000 records and writes figures.

Only that it works and produces numbers; the figures themselves are never asserted.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_the_bench_harness_runs_end_to_end_and_writes_numbers(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    args = ["--count", "2000", "--repeat", "1", "--only", "ceiling,naive,workers-1", "--doc", str(doc)]
    done = subprocess.run(
        [sys.executable, "-m", "bench.performance", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    page = doc.read_text()
    for run in ("naive loop", r"connector, `workers: 1`"):
        # records, seconds, records/s: all numbers
        assert re.search(rf"^\| {re.escape(run)} \| 2,000 \| [\d.]+ \| [\d,]+ \| \d+ \|", page, re.M), page
    assert re.search(r"^\| decode ceiling .* \| [\d,]+ \|( \|)+$", page, re.M), page
    assert re.search(
        r"^\| workers: 1 vs the decode ceiling \| [\d.]+x \| ≥ 0.45x \| (met|\*\*not met\*\*) \|$", page, re.M
    )
    assert "not measured" in page  # the scenarios it skipped say so
