"""bench/report.py: the targets table of docs/performance.md, from made-up figures."""

from __future__ import annotations

import pytest

from bench.report import (
    MB,
    Backlog,
    Figures,
    Latency,
    Throughput,
    median_run,
    render,
    target_table,
    throughput_table,
)

pytestmark = pytest.mark.unit


def _figures(**overrides: object) -> Figures:
    values: dict[str, object] = {
        "setup": [("date (UTC)", "2026-01-01 00:00")],
        "partitions": 6,
        "max_records": 500,
        "latency_ms": 50,
        "max_wait_ms": 500,
        "ceiling": 100_000.0,
        "naive": Throughput(100_000, 5.0, cpu_s=4.0, api_cpu_s=0.5),  # 20,000/s
        "workers_1": Throughput(100_000, 2.0, cpu_s=3.0, peak_rss=120 * MB, processes=1),  # 50,000/s
        "workers_auto": Throughput(100_000, 1.6, cpu_s=3.5, peak_rss=200 * MB),  # 62,500/s
        "with_latency": Throughput(100_000, 2.5, cpu_s=3.5),  # 40,000/s
        "live": Latency(2000.0, 30_000, 450.0, 700.0, 812.0),
        "backlog": Backlog(1_000_000, 20.0, 250 * MB, 280 * MB, 1_000_000, 60.0, 40),
    }
    values.update(overrides)
    return Figures(**values)  # type: ignore[arg-type]


def test_each_target_gets_its_ratio_and_an_honest_verdict() -> None:
    assert target_table(_figures()) == [
        "| target | measured | bound | verdict |",
        "|---|---|---|---|",
        "| workers: 1 vs the decode ceiling | 0.50x | ≥ 0.45x | met |",
        "| workers: 1 vs the naive loop | 2.50x | ≥ 1.2x | met |",
        "| workers: auto vs the decode ceiling | 0.62x | ≥ 0.7x | **not met** |",
        "| workers: auto vs the naive loop | 3.12x | ≥ 1.8x | met |",
        # min(62,500, 6 * 500 / 0.05 = 60,000) = 60,000; 40,000 / 60,000
        "| 50 ms API latency vs min(zero-latency, partitions * max_records / latency) | 0.66x | ≥ 0.8x "
        "| **not met** |",
        "| p99 Kafka timestamp → accepted | 812 ms | ≤ 800 ms (max_wait_ms + 300) | **not met** |",
        "| peak RSS, backlog while the API is down | 250 MB | ≤ 300 MB | met |",
    ]


def test_a_scenario_that_did_not_run_is_not_measured_never_met() -> None:
    lines = target_table(_figures(naive=None, live=None, backlog=None))
    assert lines[3] == "| workers: 1 vs the naive loop | not measured | ≥ 1.2x | not measured |"
    assert lines[7].endswith("| not measured | ≤ 800 ms (max_wait_ms + 300) | not measured |")
    assert lines[8].endswith("| not measured | ≤ 300 MB | not measured |")


def test_the_throughput_table_gives_rate_cpu_per_record_and_rss() -> None:
    lines = throughput_table(_figures())
    assert lines[2] == "| decode ceiling (`fastavro.schemaless_reader`, one core) | | | 100,000 | | | | |"
    assert lines[3] == "| naive loop | 100,000 | 5.0 | 20,000 | 40 | - | - | 5 |"
    assert lines[4] == "| connector, `workers: 1` | 100,000 | 2.0 | 50,000 | 30 | 1 | 120 MB | - |"
    assert throughput_table(_figures(with_latency=None))[6].endswith("| not measured | | | | | | |")


def test_the_page_has_the_targets_first_and_the_failures_as_notes() -> None:
    page = render(_figures(notes=["- `live` failed, not measured: boom"]), ["intro"], ["- method"])
    headings = [line for line in page.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Targets",
        "## Throughput",
        "## What the CPU allows",
        "## Setup",
        "## How it is measured",
    ]
    assert "p50 450 ms, p95 700 ms, p99 812 ms" in page
    assert "p99 801 ms" in render(_figures(live=Latency(2000.0, 30_000, 450.0, 700.0, 800.2)), [], [])
    assert "250 MB during the outage, 280 MB over the whole run" in page
    assert page.rstrip().endswith("- `live` failed, not measured: boom")


def test_the_median_round_carries_every_rounds_rate() -> None:
    runs = [Throughput(100, 1.0), Throughput(100, 4.0), Throughput(100, 2.0)]  # 100/s, 25/s, 50/s
    median = median_run(runs)
    assert (median.rate, median.rates) == (50.0, (25.0, 50.0, 100.0))
    row = throughput_table(_figures(naive=median))[3]
    assert row.startswith("| naive loop | 100 | 2.0 | 50 (25-100) |")


def test_a_figure_just_short_of_its_bound_never_prints_as_the_bound() -> None:
    lines = target_table(
        _figures(
            workers_1=Throughput(100_000, 100_000 / 44_990),  # 0.4499 of the ceiling
            live=Latency(2000.0, 30_000, 450.0, 700.0, 800.2),
            backlog=Backlog(1_000_000, 20.0, 300 * MB + 1, 300 * MB + 1, 1_000_000, 60.0, 40),
        )
    )
    assert lines[2] == "| workers: 1 vs the decode ceiling | 0.44x | ≥ 0.45x | **not met** |"
    assert (
        lines[7] == "| p99 Kafka timestamp → accepted | 801 ms | ≤ 800 ms (max_wait_ms + 300) | **not met** |"
    )
    assert lines[8] == "| peak RSS, backlog while the API is down | 301 MB | ≤ 300 MB | **not met** |"


def test_the_cpu_budget_says_what_the_measured_cpu_per_record_allows() -> None:
    slow = _figures(
        usable_cpus=2,
        workers_1=Throughput(100_000, 4.0, cpu_s=2.5),  # 25 µs per record: at most 40,000/s
        workers_auto=Throughput(100_000, 3.0, cpu_s=3.0, api_cpu_s=0.5),  # 30 + 5 µs on 2 CPUs
    )
    page = render(slow, [], [])
    assert "## What the CPU allows" in page
    # Targets: max(1.2 * 20,000, 0.45 * 100,000) = 45,000/s, so at most 22.2 µs per record.
    assert "allow at most 40,000 records/s even with a core to itself" in page
    assert "ask for 45,000 records/s, which needs at most 22.2 µs per record." in page
    # max(1.8 * 20,000, 0.7 * 100,000) = 70,000/s on 2 CPUs: 28.6 µs for all processes together.
    assert "at most 57,143 records/s before the broker's share" in page
    assert "ask for 70,000 records/s, which needs at most 28.6 µs per record" in page
