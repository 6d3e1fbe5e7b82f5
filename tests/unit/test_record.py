"""The consumed-record type: cheap to build, headers converted only when someone reads them."""

from __future__ import annotations

from typing import Any

import confluent_kafka as ck
import pytest

from connector.kafka.consumer import to_record
from connector.kafka.ports import Record, TopicPartition

pytestmark = pytest.mark.unit


class FakeMessage:
    def __init__(self, partition: int, offset: int, headers: Any) -> None:
        self._partition = partition
        self._offset = offset
        self._headers = headers
        self.header_reads = 0

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"v"

    def timestamp(self) -> tuple[int, int]:
        return ck.TIMESTAMP_CREATE_TIME, 1234

    def headers(self) -> Any:
        self.header_reads += 1
        return self._headers


def test_headers_are_converted_on_first_read_only() -> None:
    message = FakeMessage(0, 5, [("a", "text"), ("b", b"\x00"), ("c", None)])
    record = to_record(message)  # type: ignore[arg-type]

    assert (record.tp, record.offset, record.key, record.value, record.timestamp_ms) == (
        TopicPartition("t", 0),
        5,
        b"k",
        b"v",
        1234,
    )
    assert message.header_reads == 0
    assert record.headers == (("a", b"text"), ("b", b"\x00"), ("c", None))
    assert record.headers == (("a", b"text"), ("b", b"\x00"), ("c", None))
    assert message.header_reads == 1


def test_dict_and_missing_headers_convert_too() -> None:
    assert to_record(FakeMessage(0, 0, {"a": "x"})).headers == (("a", b"x"),)  # type: ignore[arg-type]
    assert to_record(FakeMessage(0, 0, None)).headers == ()  # type: ignore[arg-type]


def test_records_of_a_partition_share_one_topic_partition() -> None:
    shared: dict[tuple[str, int], TopicPartition] = {}
    first, second, other = (
        to_record(FakeMessage(p, o, None), shared)  # type: ignore[arg-type]
        for p, o in ((0, 1), (0, 2), (1, 1))
    )
    assert first.tp is second.tp
    assert other.tp == TopicPartition("t", 1) and other.tp is not first.tp


def test_records_compare_and_hash_by_value() -> None:
    a = Record("t", 0, 1, b"k", b"v", (("h", b"1"),), 5)
    b = Record("t", 0, 1, b"k", b"v", lambda: [("h", "1")], 5)
    assert a == b and hash(a) == hash(b)
    assert a != Record("t", 0, 2, b"k", b"v", (("h", b"1"),), 5)
    assert "offset=1" in repr(a)
