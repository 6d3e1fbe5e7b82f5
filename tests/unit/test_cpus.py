"""connector.runtime.cpus: the CPU quota and affinity behind `processing.workers: auto`."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.runtime.cpus import MAX_AUTO_WORKERS, cgroup_cpu_limit, resolve_workers, usable_cpus

pytestmark = pytest.mark.unit


def test_cgroup_v2_quota_is_read_in_cpus(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path / "cpu.max", tmp_path / "none", tmp_path / "none") == 1.5


def test_cgroup_v2_without_a_quota_means_no_limit(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path / "cpu.max", tmp_path / "none", tmp_path / "none") is None


def test_cgroup_v1_quota_is_read_when_v2_is_absent(tmp_path: Path) -> None:
    (tmp_path / "quota").write_text("300000\n")
    (tmp_path / "period").write_text("100000\n")
    assert cgroup_cpu_limit(tmp_path / "none", tmp_path / "quota", tmp_path / "period") == 3.0
    (tmp_path / "quota").write_text("-1\n")
    assert cgroup_cpu_limit(tmp_path / "none", tmp_path / "quota", tmp_path / "period") is None


def test_auto_is_the_usable_cpus_capped_and_explicit_counts_are_kept() -> None:
    assert resolve_workers("auto", cpus=1) == 1
    assert resolve_workers("auto", cpus=2) == 2
    assert resolve_workers("auto", cpus=64) == MAX_AUTO_WORKERS
    assert resolve_workers(3, cpus=64) == 3
    assert resolve_workers(1) == 1
    assert 1 <= resolve_workers("auto") <= MAX_AUTO_WORKERS
    assert usable_cpus() >= 1
