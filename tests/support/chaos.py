"""The fault-injection suite's common shape: every scenario ends in one `judge()` that asserts the four
promises and returns one `Verdict`, the row it contributes to docs/reliability.md.

The promises:
(a) nothing lost: every produced record is accepted by the API or in the dead-letter topic;
(b) no valid record is dead-lettered;
(c) no poison record is accepted;
(d) within one consumer session, each partition's records reach the API in offset order (a crash
    legitimately re-sends records already accepted, so order is only checked per session).

The figures: records, lost, duplicates raw (every extra copy the connector delivered, including the
requests the sandbox answered from its idempotency cache) and as the API stores them (after
`X-Idempotency-Key` deduplication), records dead-lettered, peak RSS summed over every connector
process and its children (transform workers included), duration.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.proctree import descendants, tree_rss
from tests.support.e2e import Ledger, Outcome, Produced, order_breaks

MIB = 1024 * 1024


class PeakRss:
    """Samples the resident memory of the watched process trees (summed) on a thread; `peak` in bytes.
    Trees are added as processes start; a tree whose root has exited counts for nothing."""

    def __init__(self, interval_s: float = 0.1) -> None:
        self._interval_s = interval_s
        self._roots: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-rss", daemon=True)
        self.peak = 0
        self.max_processes = 0

    def watch(self, pid: int) -> None:
        with self._lock:
            self._roots.add(pid)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                roots = list(self._roots)
            total, processes = 0, 0
            for root in roots:
                rss, members = tree_rss(root)
                total += rss
                processes += members
            self.peak = max(self.peak, total)
            self.max_processes = max(self.max_processes, processes)
            self._stop.wait(self._interval_s)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def transform_workers(pid: int) -> list[int]:
    """The transform worker processes of connector `pid`: its grandchildren (the workers are forked
    by the forkserver, a child of the connector; the resource tracker is a child too)."""
    children = set(descendants(pid)) - {pid}
    return sorted(p for p in children if _parent(p) in children)


def _parent(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # it exited meanwhile
    return int(text[text.rindex(")") + 2 :].split()[1])


@dataclass
class Verdict:
    """One scenario's row in docs/reliability.md, plus what its own section shows."""

    scenario: str
    size: str  # "short" (make test) or "full" (make chaos)
    records: int
    lost: int
    raw_duplicates: int
    dedup_duplicates: int
    dead_lettered: int
    peak_rss_bytes: int
    duration_s: float
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        scalars = {k: v for k, v in self.details.items() if isinstance(v, int | float | str)}
        return (
            f"{self.scenario} ({self.size}): {self.records:,} records, lost {self.lost}, duplicates raw "
            f"{self.raw_duplicates} / after dedup {self.dedup_duplicates}, dead-lettered "
            f"{self.dead_lettered}, peak RSS {self.peak_rss_bytes / MIB:.0f} MiB, {self.duration_s:.0f} s; "
            f"{scalars}"
        )


def keep(verdicts: dict[str, Verdict], verdict: Verdict) -> None:
    """Only full-size runs go into the report."""
    if verdict.size == "full":
        verdicts[verdict.scenario] = verdict


def session_order_breaks(
    sessions: Iterable[tuple[str, list[dict[str, Any]]]],
    by_id: Mapping[str, Produced],
    restarts: Mapping[str, Mapping[str, int]] | None = None,
) -> list[str]:
    """Promise (d) over named sessions (name, records the API stored from it, in arrival order).
    `restarts[name][partition]`: how many times the session was given the partition again after
    losing it (a rebalance), each of which may legitimately start over from the committed offset."""
    out = []
    for name, records in sessions:
        allowed = (restarts or {}).get(name, {})
        for tp in order_breaks(records, by_id, allowed):
            out.append(f"{name}: {tp}")
    return out


def judge(
    *,
    scenario: str,
    size: str,
    ledger: Ledger,
    outcome: Outcome,
    order: Sequence[str],
    replayed_records: int,
    peak_rss_bytes: int,
    duration_s: float,
    details: Mapping[str, Any] | None = None,
    dedup_duplicates_max: int | None = None,
) -> Verdict:
    """Assert promises (a), (b), (c) and take (d)'s findings (`order`, from session_order_breaks);
    then the row. `dedup_duplicates_max`: the scenario's own bound on duplicates the API stored."""
    lost = outcome.lost(ledger)
    good_dead = [r.position for r in ledger.good() if r.position in outcome.dead]
    poison_ids = {r.event_id for r in ledger.poison() if r.event_id is not None}
    poison_accepted = sorted(poison_ids & set(outcome.accepted))
    verdict = Verdict(
        scenario=scenario,
        size=size,
        records=len(ledger.records),
        lost=len(lost),
        raw_duplicates=outcome.api_duplicates + replayed_records,
        dedup_duplicates=outcome.api_duplicates,
        dead_lettered=len(outcome.dead),
        peak_rss_bytes=peak_rss_bytes,
        duration_s=duration_s,
        details=dict(details or {}),
    )
    print(f"\nchaos {verdict.summary()}")
    assert lost == [], f"(a) lost {len(lost)} records, e.g. {[r.position for r in lost[:5]]}"
    assert good_dead == [], f"(b) valid records dead-lettered: {good_dead[:5]}"
    assert poison_accepted == [], f"(c) poison accepted by the API: {poison_accepted[:5]}"
    assert list(order) == [], f"(d) offset order broken within a session: {list(order)[:5]}"
    if dedup_duplicates_max is not None:
        assert verdict.dedup_duplicates <= dedup_duplicates_max, (
            f"{verdict.dedup_duplicates} duplicates stored, bound {dedup_duplicates_max}"
        )
    return verdict


def replayed_records(sandbox_stats: Mapping[str, Any]) -> int:
    return int(sandbox_stats["replayed_records"])


def readiness(port: int) -> dict[str, str] | None:
    """The reasons /readyz gives (empty when ready), None when it cannot be reached."""
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2.0).json()
    except (httpx.HTTPError, ValueError):
        return None
    reasons: dict[str, str] = body.get("reasons") or {}
    return reasons


class Watch:
    """Polls a connector's /metrics and /readyz on a thread: the maxima of some gauges and every
    readiness reason seen, for scenarios that promise a pause or a reason while a fault lasts."""

    def __init__(self, port: int, gauges: Sequence[str], interval_s: float = 0.25) -> None:
        self._port = port
        self._gauges = gauges
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-watch", daemon=True)
        self.maxima: dict[str, float] = dict.fromkeys(gauges, 0.0)
        self.reasons: set[str] = set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._interval_s)

    def sample(self) -> None:
        try:
            text = httpx.get(f"http://127.0.0.1:{self._port}/metrics", timeout=2.0).text
        except httpx.HTTPError:
            return
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in self.maxima:
                self.maxima[name] = max(self.maxima[name], float(value))
        self.reasons |= set(readiness(self._port) or {})

    def reset(self) -> None:
        self.maxima = dict.fromkeys(self._gauges, 0.0)
        self.reasons = set()

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def wait_s(seconds: float, still: Callable[[], bool] = lambda: True) -> None:
    """Sleep `seconds` in small steps, failing early when `still()` turns false (a process died)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert still(), "a connector process exited while a fault lasted"
        time.sleep(0.1)
