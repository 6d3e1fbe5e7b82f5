from __future__ import annotations

import pytest

from connector.kafka.ports import TopicPartition
from tests.support.pipeline_kit import deposit, make_kit

pytestmark = pytest.mark.unit
TP0 = TopicPartition("deposits", 0)


def test_records_flow_to_the_api_and_offsets_commit() -> None:
    kit = make_kit()
    for i in range(7):
        kit.broker.produce("deposits", deposit(i), key=b"k", partition=0)
    p = kit.pipeline()
    code = p.run(until=lambda p: p.stats["accepted"] == 7 and p.in_flight_records == 0)
    assert code == 0
    assert [r["event_id"] for _, r in kit.uploader.received] == [f"d{i}" for i in range(7)]
    first = kit.uploader.received[0][1]
    assert first == {
        "account_id": "acc",
        "workspace_id": "ws",
        "user_id": "p0",
        "event_category": "Deposit",
        "event_name": "Successful Deposit",
        "event_id": "d0",
        "event_time": "2024-01-15T10:30:00Z",
        "amount": 10,
    }
    assert kit.broker.committed("g", TP0) == 7


def test_metrics_count_consumed_records_and_commits() -> None:
    kit = make_kit()
    for i in range(7):
        kit.broker.produce("deposits", deposit(i), partition=0)
    p = kit.pipeline()
    assert p.run(until=lambda p: p.stats["accepted"] == 7 and p.in_flight_records == 0) == 0
    sample = p.metrics.registry.get_sample_value
    assert sample("optikpi_records_consumed_total", {"topic": "deposits"}) == 7
    assert (sample("optikpi_offset_commits_total", {"result": "ok"}) or 0) >= 1
    assert p.commits == sample("optikpi_offset_commits_total", {"result": "ok"})
    assert sample("optikpi_in_flight_records") == 0
