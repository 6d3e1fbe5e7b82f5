"""How many CPUs this process may really use: the affinity mask and the cgroup CPU quota.

`os.cpu_count()` reports the node's CPUs; in a Kubernetes pod with `limits.cpu: 2` on a 64-core
node, 64 worker processes would only fight over two CPUs' worth of quota.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Final

MAX_AUTO_WORKERS: Final = 8
_CGROUP_V2_MAX: Final = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_V1_QUOTA: Final = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
_CGROUP_V1_PERIOD: Final = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def cgroup_cpu_limit(
    v2_max: Path = _CGROUP_V2_MAX, v1_quota: Path = _CGROUP_V1_QUOTA, v1_period: Path = _CGROUP_V1_PERIOD
) -> float | None:
    """The CPU quota in CPUs (1.5 for `150000 100000`), or None when there is none or none is readable."""
    try:
        quota_text, period_text = v2_max.read_text().split()[:2]
        if quota_text == "max":
            return None
        return int(quota_text) / int(period_text)
    except (OSError, ValueError):
        pass
    try:
        quota = int(v1_quota.read_text())
        period = int(v1_period.read_text())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def usable_cpus() -> int:
    """The CPUs this process may use: the affinity mask, capped by the cgroup quota rounded down
    (at least 1)."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        count = min(count, max(1, math.floor(limit)))
    return max(1, count)


def resolve_workers(setting: str | int, cpus: int | None = None) -> int:
    """Worker processes for `processing.workers`; 1 means inline, in the consumer process."""
    if setting == "auto":
        available = usable_cpus() if cpus is None else cpus
        return max(1, min(available, MAX_AUTO_WORKERS))
    return int(setting)
