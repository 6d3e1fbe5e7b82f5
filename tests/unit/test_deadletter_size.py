"""Dead-letter copies too large for the dead-letter topic are written without their value, with
`optikpi.value.omitted`, so the partition moves on; `dlq show` says where the original is and
`dlq replay` refuses them (a null would be a tombstone on a compacted topic)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import cast

import pytest

from connector.dlq.command import DlqRequest
from connector.dlq.render import show_json, show_lines
from connector.errors import DeliveryError, RecordTooLargeError, Stage
from connector.kafka.memory.broker import InMemoryBroker
from connector.kafka.ports import DeliveryCallback, Header, Record
from connector.pipeline.deadletter import H_OFFSET, H_STAGE, H_TOPIC, H_VALUE_OMITTED, DeadLetterWriter
from tests.unit.test_dlq import DLQ, NOW, at, run, source_record

pytestmark = pytest.mark.unit

BIG = b"\x07" * 20_000


class SizeLimitedProducer:
    """Refuses, from its delivery report, any value above `limit` bytes (what librdkafka and the
    broker do with MSG_SIZE_TOO_LARGE); keeps what it accepted."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: list[tuple[bytes | None, list[Header]]] = []
        self._reports: list[tuple[DeliveryCallback, DeliveryError | None]] = []

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[Header],
        on_delivery: DeliveryCallback,
        partition: int | None = None,
    ) -> None:
        if value is not None and len(value) > self.limit:
            self._reports.append((on_delivery, RecordTooLargeError("MSG_SIZE_TOO_LARGE")))
            return
        self.sent.append((value, list(headers)))
        self._reports.append((on_delivery, None))

    def poll(self, timeout_s: float) -> int:
        ran = 0
        while self._reports:
            callback, error = self._reports.pop(0)
            callback(error)
            ran += 1
        return ran

    def flush(self, timeout_s: float) -> int:
        self.poll(0)
        return 0

    def close(self) -> None:
        pass


def write(
    writer: DeadLetterWriter, producer: SizeLimitedProducer, value: bytes
) -> list[DeliveryError | None]:
    done: list[DeliveryError | None] = []
    record = source_record("bets", 2, 41, value=value)
    writer.write(record, Stage.UPLOAD, "PayloadTooLarge", "too large to upload", done.append)
    producer.flush(1.0)
    return done


def test_a_copy_over_the_known_limit_is_written_at_once_without_its_value() -> None:
    producer = SizeLimitedProducer(limit=10**9)  # would take it: the writer decides up front
    writer = DeadLetterWriter(producer, DLQ, max_bytes=10_000)

    assert write(writer, producer, BIG) == [None]
    [(value, headers)] = producer.sent
    names = dict(headers)
    assert value is None
    assert names[H_VALUE_OMITTED] == b"20000"
    assert names[H_TOPIC] == b"bets" and names[H_OFFSET] == b"41" and names[H_STAGE] == b"UPLOAD"


def test_a_copy_under_the_limit_keeps_its_value() -> None:
    producer = SizeLimitedProducer(limit=10**9)
    writer = DeadLetterWriter(producer, DLQ, max_bytes=100_000)

    assert write(writer, producer, BIG) == [None]
    assert producer.sent[0][0] == BIG and H_VALUE_OMITTED not in dict(producer.sent[0][1])


def test_a_copy_refused_as_too_large_is_written_once_more_without_its_value() -> None:
    producer = SizeLimitedProducer(limit=1_000)  # a topic limit nobody told the writer about
    writer = DeadLetterWriter(producer, DLQ)

    assert write(writer, producer, BIG) == [None]
    [(value, headers)] = producer.sent
    assert value is None and dict(headers)[H_VALUE_OMITTED] == b"20000"


def test_other_delivery_failures_are_reported_not_rewritten() -> None:
    broker = InMemoryBroker()  # no dead-letter topic: the write fails, and stays the caller's to retry
    done: list[DeliveryError | None] = []
    producer = broker.producer()
    DeadLetterWriter(producer, DLQ).write(source_record(), Stage.DECODE, "E", "m", done.append)
    producer.flush(1.0)
    assert len(done) == 1 and done[0] is not None and not isinstance(done[0], RecordTooLargeError)


def omitted_broker() -> InMemoryBroker:
    broker = InMemoryBroker()
    broker.create_topic(DLQ, 1)
    broker.create_topic("bets", 3)
    producer = broker.producer()
    writer = DeadLetterWriter(producer, DLQ, now=at(NOW), max_bytes=10_000)
    for offset, value in ((41, BIG), (42, b'{"a": 1}')):
        record = source_record("bets", 2, offset, value=value)
        writer.write(record, Stage.UPLOAD, "E", "too large", lambda err: None)
    producer.flush(1.0)
    return broker


def test_show_says_the_value_was_omitted_and_where_the_original_is() -> None:
    broker = omitted_broker()
    code, out, _err, _ = run(broker, DlqRequest("show", position="0:0"))
    assert code == 0
    assert "the original value of 20000 bytes was too large" in out
    assert "still at bets partition 2 offset 41" in out
    record = Record(
        DLQ,
        0,
        0,
        None,
        None,
        (
            (H_TOPIC, b"bets"),
            ("__connect.errors.partition", b"2"),
            (H_OFFSET, b"41"),
            (H_VALUE_OMITTED, b"20000"),
        ),
    )
    doc = show_json(record, DLQ, None)
    assert doc["value_omitted"] == {
        "size": 20000,
        "original": {"topic": "bets", "partition": 2, "offset": 41},
    }
    assert any("omitted" in line for line in show_lines(doc))


def test_list_json_gives_the_omitted_size_of_a_copy_without_its_value() -> None:
    code, out, _err, _ = run(omitted_broker(), DlqRequest("list", as_json=True))
    assert code == 0
    assert [r["value_omitted"] for r in json.loads(out)["records"]] == [20000, None]


def test_replay_refuses_omitted_copies_names_them_and_replays_the_rest() -> None:
    broker = omitted_broker()
    before = len(broker.records("bets", 2))
    code, _out, err, _ = run(broker, DlqRequest("replay", yes=True), stdin=io.StringIO("y\n"))
    assert code == 1
    assert "skipped 0:0: its value (20000 bytes) was too large" in err
    assert "tombstone" in err and "bets partition 2 offset 41" in err
    replayed = broker.records("bets", 2)[before:]
    assert [r.value for r in replayed] == [b'{"a": 1}']


class TopicLimitAdmin:
    def __init__(self, limit: int | None) -> None:
        self.limit = limit

    def topic_max_message_bytes(self, topic: str, timeout_s: float) -> int | None:
        return self.limit


@pytest.mark.parametrize(
    ("producer_settings", "topic_limit", "expected"),
    [
        ({}, None, 1_000_000),  # librdkafka's default message.max.bytes
        ({"message.max.bytes": "5000000"}, None, 5_000_000),
        ({"message.max.bytes": 5_000_000}, 200_000, 200_000),  # the topic's is smaller
        ({"message.max.bytes": 100_000}, 1_048_588, 100_000),
    ],
)
def test_the_limit_is_the_smaller_of_the_producers_and_the_topics(
    producer_settings: dict[str, object], topic_limit: int | None, expected: int
) -> None:
    from connector.kafka.admin import KafkaAdmin
    from connector.kafka.producer import dead_letter_size_limit

    admin = cast(KafkaAdmin, TopicLimitAdmin(topic_limit))
    assert dead_letter_size_limit(producer_settings, admin, DLQ, 1.0) == expected


def test_the_readme_table_names_every_header_the_writer_adds() -> None:
    from pathlib import Path

    from connector.pipeline.deadletter import ADDED_HEADERS

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Dead-letter records", 1)[1].split("\n\n**", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    named = " ".join(rows)
    for name in ADDED_HEADERS:
        base, _, field = name.rpartition(".")
        assert f"`{name}`" in named or (f"`{base}." in named and f"`.{field}`" in named), name
