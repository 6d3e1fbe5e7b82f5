from __future__ import annotations

import pytest

from connector.kafka_port import TopicPartition
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
