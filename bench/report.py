"""docs/performance.md from the measured figures: what was run, what came out, and each target met or not.

Pure: `render(figures)` returns the page, so a test can check it with figures it made up. A scenario
that was not run (or failed) is None and its targets read "not measured", never "met".
"""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
from dataclasses import dataclass, field, replace

MB = 1_000_000


@dataclass(frozen=True)
class Throughput:
    """One run from the first record consumed to the last one accepted."""

    records: int
    seconds: float
    cpu_s: float | None = None  # the process tree's CPU over the same span
    peak_rss: int | None = None  # bytes, summed over the process tree
    processes: int | None = None  # the most processes seen in the tree at once
    api_cpu_s: float | None = None  # the receiver's CPU, to show it was not the limit
    rates: tuple[float, ...] = ()  # every repeat's records/s, when this is the median of several

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    @property
    def cpu_us_per_record(self) -> float | None:
        return None if self.cpu_s is None else 1e6 * self.cpu_s / self.records

    @property
    def api_cpu_us_per_record(self) -> float | None:
        return None if self.api_cpu_s is None else 1e6 * self.api_cpu_s / self.records


@dataclass(frozen=True)
class Latency:
    offered_rate: float  # records/s the paced producer achieved
    records: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass(frozen=True)
class Backlog:
    records: int
    outage_s: float
    peak_rss_outage: int
    peak_rss_total: int
    accepted: int  # after the outage, within the drain deadline
    drain_s: float
    refused_requests: int


@dataclass(frozen=True)
class Figures:
    setup: list[tuple[str, str]]
    partitions: int
    max_records: int
    latency_ms: int
    max_wait_ms: int
    ceiling: float | None = None  # records/s, fastavro.schemaless_reader on one core
    naive: Throughput | None = None
    workers_1: Throughput | None = None
    workers_auto: Throughput | None = None
    with_latency: Throughput | None = None  # workers: auto, `latency_ms` at the API
    live: Latency | None = None
    backlog: Backlog | None = None
    notes: list[str] = field(default_factory=list)
    usable_cpus: int | None = None  # what broker, receiver and connector share in this run


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    target: str
    met: bool | None  # None: not measured


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _rate(run: Throughput | None) -> float | None:
    return None if run is None else run.rate


def _at_least(name: str, value: float | None, bound: float, unit: str = "x") -> Target:
    # Rounded towards "not met", so that a printed figure never looks as if it passed when it did not.
    measured = "not measured" if value is None else f"{math.floor(value * 100) / 100:.2f}{unit}"
    return Target(name, measured, f"≥ {bound:g}{unit}", None if value is None else value >= bound)


def machine_rows(load: float) -> list[tuple[str, str]]:
    """The setup rows every bench report starts with: when, what Python, which machine, how busy."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        ("date (UTC)", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")),
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("platform", f"{platform.system()} {platform.machine()}"),
        ("CPUs (usable / total)", f"{affinity} / {os.cpu_count()}"),
        ("load average before the run (1 min)", f"{load:.2f}"),
    ]


def median_run(runs: list[Throughput]) -> Throughput:
    """The run with the median rate (the lower middle of an even count), carrying every run's rate."""
    ordered = sorted(runs, key=lambda run: run.rate)
    return replace(ordered[(len(ordered) - 1) // 2], rates=tuple(run.rate for run in ordered))


def targets(f: Figures) -> list[Target]:
    w1, auto = _rate(f.workers_1), _rate(f.workers_auto)
    naive = _rate(f.naive)
    latency_bound = f.partitions * f.max_records / (f.latency_ms / 1000) if f.latency_ms else None
    reference = None if auto is None or latency_bound is None else min(auto, latency_bound)
    p99 = None if f.live is None else f.live.p99_ms
    p99_bound = f.max_wait_ms + 300
    rss = None if f.backlog is None else f.backlog.peak_rss_outage
    return [
        _at_least("workers: 1 vs the decode ceiling", _ratio(w1, f.ceiling), 0.45),
        _at_least("workers: 1 vs the naive loop", _ratio(w1, naive), 1.2),
        _at_least("workers: auto vs the decode ceiling", _ratio(auto, f.ceiling), 0.7),
        _at_least("workers: auto vs the naive loop", _ratio(auto, naive), 1.8),
        _at_least(
            f"{f.latency_ms} ms API latency vs min(zero-latency, partitions * max_records / latency)",
            _ratio(_rate(f.with_latency), reference),
            0.8,
        ),
        Target(
            "p99 Kafka timestamp → accepted",
            "not measured" if p99 is None else f"{math.ceil(p99)} ms",
            f"≤ {p99_bound} ms (max_wait_ms + 300)",
            None if p99 is None else p99 <= p99_bound,
        ),
        Target(
            "peak RSS, backlog while the API is down",
            "not measured" if rss is None else f"{math.ceil(rss / MB)} MB",
            "≤ 300 MB",
            None if rss is None else rss <= 300 * MB,
        ),
    ]


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**not met**", None: "not measured"}[met]


def target_table(f: Figures) -> list[str]:
    lines = ["| target | measured | bound | verdict |", "|---|---|---|---|"]
    lines += [f"| {t.name} | {t.measured} | {t.target} | {_verdict(t.met)} |" for t in targets(f)]
    return lines


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def throughput_table(f: Figures) -> list[str]:
    lines = [
        "| run | records | seconds | records/s | CPU µs/record | processes | peak RSS "
        "| receiver CPU µs/record |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if f.ceiling is not None:
        ceiling = f"{f.ceiling:,.0f}"
        lines.append(f"| decode ceiling (`fastavro.schemaless_reader`, one core) | | | {ceiling} | | | | |")
    runs = [
        ("naive loop", f.naive),
        ("connector, `workers: 1`", f.workers_1),
        ("connector, `workers: auto`", f.workers_auto),
        (f"connector, `workers: auto`, {f.latency_ms} ms API latency", f.with_latency),
    ]
    for name, run in runs:
        if run is None:
            lines.append(f"| {name} | not measured | | | | | | |")
            continue
        cpu = _fmt(run.cpu_us_per_record, "{:.0f}")
        rss = _fmt(None if run.peak_rss is None else run.peak_rss / MB, "{:.0f} MB")
        tail = f"{_fmt(run.processes, '{:d}')} | {rss} | {_fmt(run.api_cpu_us_per_record, '{:.0f}')}"
        rate = f"{run.rate:,.0f}"
        if len(run.rates) > 1:
            rate += f" ({min(run.rates):,.0f}-{max(run.rates):,.0f})"
        lines.append(f"| {name} | {run.records:,} | {run.seconds:.1f} | {rate} | {cpu} | {tail} |")
    return lines


def detail_lines(f: Figures) -> list[str]:
    lines: list[str] = []
    if f.live is not None:
        lv = f.live
        lines += [
            f"**Latency** at {lv.offered_rate:,.0f} records/s offered ({lv.records:,} records, "
            f"`max_wait_ms: {f.max_wait_ms}`), Kafka timestamp → accepted at the API: "
            # Whole milliseconds rounded up, as in the targets table.
            f"p50 {math.ceil(lv.p50_ms)} ms, p95 {math.ceil(lv.p95_ms)} ms, p99 {math.ceil(lv.p99_ms)} ms.",
            "",
        ]
    if f.backlog is not None:
        b = f.backlog
        lines += [
            f"**Backlog** of {b.records:,} records while the API answered 503 for {b.outage_s:.0f} s "
            f"({b.refused_requests:,} requests refused): peak RSS of the connector's processes "
            f"{b.peak_rss_outage / MB:.0f} MB during the outage, {b.peak_rss_total / MB:.0f} MB over "
            f"the whole run; after the outage {b.accepted:,} records were accepted in {b.drain_s:.0f} s.",
            "",
        ]
    return lines


def _needed_rate(f: Figures, naive_factor: float, ceiling_factor: float) -> float | None:
    """The rate both throughput targets of a mode ask for (the stricter of the two)."""
    naive, ceiling = _rate(f.naive), f.ceiling
    if naive is None or ceiling is None:
        return None
    return max(naive_factor * naive, ceiling_factor * ceiling)


def cpu_budget_lines(f: Figures) -> list[str]:
    """What the measured CPU per record allows, against what the throughput targets need.

    A rate of R records/s at C µs of CPU per record keeps R * C / 1e6 cores busy. `workers: 1`
    runs the Python work of every record on one interpreter (one core at most); with workers, the
    connector's processes and the receiver share `usable_cpus` with the broker. These are upper
    bounds: a run reaches them only if nothing else needs the cores.
    """
    lines: list[str] = []
    w1, auto = f.workers_1, f.workers_auto
    need_1 = _needed_rate(f, 1.2, 0.45)
    if w1 is not None and w1.cpu_us_per_record and need_1:
        most = 1e6 / w1.cpu_us_per_record
        lines.append(
            f"- `workers: 1`: {w1.cpu_us_per_record:.0f} µs of CPU per record in one process allow at most "
            f"{most:,.0f} records/s even with a core to itself. Its targets ask for {need_1:,.0f} "
            f"records/s, which needs at most {1e6 / need_1:.1f} µs per record."
        )
    need_auto = _needed_rate(f, 1.8, 0.7)
    if auto is not None and auto.cpu_us_per_record and need_auto and f.usable_cpus:
        per_record = auto.cpu_us_per_record + (auto.api_cpu_us_per_record or 0.0)
        most = f.usable_cpus * 1e6 / per_record
        lines.append(
            f"- `workers: auto`: the connector's processes ({auto.cpu_us_per_record:.0f} µs per record) "
            f"and the receiver ({auto.api_cpu_us_per_record or 0:.0f} µs) share {f.usable_cpus} CPUs "
            f"with the broker: at most {most:,.0f} records/s before the broker's share. Its targets "
            f"ask for {need_auto:,.0f} records/s, which needs at most "
            f"{f.usable_cpus * 1e6 / need_auto:.1f} µs per record for all of them together."
        )
    if not lines:
        return []
    return ["## What the CPU allows", "", *lines, ""]


def render(f: Figures, intro: list[str], method: list[str]) -> str:
    setup = ["| setting | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in f.setup)]
    parts = [
        "# Performance",
        "",
        *intro,
        "",
        "## Targets",
        "",
        *target_table(f),
        "",
        "## Throughput",
        "",
        *throughput_table(f),
        "",
        *detail_lines(f),
        *cpu_budget_lines(f),
        "## Setup",
        "",
        *setup,
        "",
        "## How it is measured",
        "",
        *method,
        *(["", *f.notes] if f.notes else []),
        "",
    ]
    return "\n".join(parts)
