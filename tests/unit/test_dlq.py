"""`connector.dlq.command` and its read, render and replay modules without a broker: arguments, header
parsing, filters, reason grouping, tables, value decoding, the read loop's stop rules, replay planning
and pacing, and the command flow (confirmation, exit codes) over the in-memory broker."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from connector import __version__
from connector.arguments import build_parser
from connector.avro.decoding import encode_confluent
from connector.avro.registry import SchemaRegistryClient
from connector.avro.schemas import parse
from connector.config.settings import DeadLetterSettings, KafkaSettings, Settings
from connector.dlq.command import DlqRequest, run_dlq
from connector.dlq.read import DeadLetter, Filters, parse_position, parse_time_bound, read_partitions, select
from connector.dlq.render import (
    HEX_PREVIEW_BYTES,
    compute_stats,
    format_age,
    list_lines,
    normalize_reason,
    show_json,
    show_lines,
    show_value,
    stats_lines,
)
from connector.dlq.replay import REPLAYED_FROM, plan_replay, replay, replay_headers
from connector.errors import KafkaPortError, Stage
from connector.kafka.memory.broker import InMemoryBroker
from connector.kafka.ports import Record, TopicPartition
from connector.pipeline.deadletter import (
    H_ENDPOINT,
    H_FAILED_AT,
    H_TOPIC,
    DeadLetterWriter,
    dead_letter_headers,
)
from connector.runtime.clock import FakeClock

pytestmark = pytest.mark.unit

DLQ = "app.dlq"
NOW = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


# ----------------------------------------------------------------------------------- doubles
class MemorySource:
    """A PartitionSource over an InMemoryBroker that behaves like librdkafka on Tansu: `chunk` records
    per partition per read, one EOF when a partition's position reaches its end (in the same batch as
    its last records), none when the position is past the end."""

    def __init__(self, broker: InMemoryBroker, *, chunk: int = 2, reachable: bool = True) -> None:
        self.broker = broker
        self.chunk = chunk
        self.reachable = reachable
        self.last_error: str | None = None
        self.positions: dict[TopicPartition, int] = {}
        self.marks: dict[TopicPartition, int] = {}  # end offsets as of the last "fetch"
        self.at_end: set[TopicPartition] = set()
        self.reads = 0
        self.after_first_read: list[Record] = []
        self.closed = False

    def topics(self, timeout_s: float) -> dict[str, int]:
        if not self.reachable:
            self.last_error = "_TRANSPORT: Connect to ipv4#127.0.0.1:1 failed: Connection refused"
            raise KafkaPortError("cannot read the cluster metadata: _TRANSPORT: Broker transport failure")
        return self.broker.topics()

    def assign(self, positions: Mapping[TopicPartition, int | None]) -> None:
        self.positions = {tp: 0 if offset is None else offset for tp, offset in positions.items()}

    def read(self, max_records: int, timeout_s: float) -> tuple[list[Record], dict[TopicPartition, int]]:
        self.reads += 1
        records: list[Record] = []
        ends: dict[TopicPartition, int] = {}
        for tp, position in self.positions.items():
            log = self.broker.records(tp.topic, tp.partition)
            self.marks[tp] = len(log)
            batch = [r for r in log if r.offset >= position][: self.chunk]
            if batch:
                self.positions[tp] = batch[-1].offset + 1
                self.at_end.discard(tp)
                records += batch
            # As librdkafka does, in the same batch as the partition's last records.
            if self.positions[tp] == len(log) and tp not in self.at_end:
                self.at_end.add(tp)
                ends[tp] = len(log)
        if self.reads == 1:
            for record in self.after_first_read:
                self.broker.produce(record.topic, record.value, record.key, record.headers, record.partition)
        return records, ends

    def high_watermarks(self) -> dict[TopicPartition, int]:
        return dict(self.marks)

    def close(self) -> None:
        self.closed = True


class TtyInput(io.StringIO):
    def isatty(self) -> bool:
        return True


def source_record(topic: str = "bets", partition: int = 1, offset: int = 7, **kw: Any) -> Record:
    return Record(
        topic,
        partition,
        offset,
        kw.get("key", b"user-1"),
        kw.get("value", b'{"a": 1}'),
        kw.get("headers", (("trace", b"abc"),)),
    )


def dead_letter(
    record: Record,
    stage: Stage = Stage.VALIDATE,
    message: str = "amount: positive: amount must be greater than 0 (got -5)",
    *,
    endpoint: str | None = "deposit",
    failed_at: datetime = NOW - timedelta(hours=2),
    dlq_partition: int = 0,
    dlq_offset: int = 0,
    http_status: int | None = None,
) -> Record:
    headers = dead_letter_headers(
        record,
        stage,
        "ValidationError",
        message,
        endpoint=endpoint,
        http_status=http_status,
        failed_at=failed_at,
    )
    return Record(DLQ, dlq_partition, dlq_offset, record.key, record.value, tuple(headers))


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def settings(**kafka: Any) -> Settings:
    return Settings(
        source="test.yaml",
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1", **kafka),
        dead_letter=DeadLetterSettings(topic=DLQ),
    )


def filled_broker(partitions: int = 2) -> InMemoryBroker:
    """Five dead letters written by the real DeadLetterWriter, over two DLQ partitions."""
    broker = InMemoryBroker()
    broker.create_topic(DLQ, partitions)
    for topic in ("bets", "deposits"):
        broker.create_topic(topic, 3)
    cases = [
        (
            source_record("bets", 0, 10),
            Stage.DECODE,
            "invalid Avro for Bet (schema id 3): EOFError",
            "gaming-activity",
        ),
        (
            source_record("bets", 1, 11),
            Stage.DECODE,
            "invalid Avro for Bet (schema id 4): EOFError",
            "gaming-activity",
        ),
        (
            source_record("deposits", 2, 12),
            Stage.VALIDATE,
            "amount: positive: must be > 0 (got -5)",
            "deposit",
        ),
        (
            source_record("deposits", 0, 13),
            Stage.VALIDATE,
            "amount: positive: must be > 0 (got 0)",
            "deposit",
        ),
        (source_record("deposits", 1, 14), Stage.UPLOAD, "HTTP 400: user_id unknown", "deposit"),
    ]
    producer = broker.producer()
    for i, (record, stage, message, endpoint) in enumerate(cases):
        failed_at = NOW - timedelta(hours=5 - i)
        writer = DeadLetterWriter(producer, DLQ, now=at(failed_at))
        keyed = Record(
            record.topic, record.partition, record.offset, b"user-%d" % i, record.value, record.headers
        )
        writer.write(keyed, stage, "Error", message, lambda err: None, endpoint=endpoint)
    producer.flush(1.0)
    return broker


def run(
    broker: InMemoryBroker, request: DlqRequest, stdin: io.StringIO | None = None, **kw: Any
) -> tuple[int, str, str, MemorySource]:
    out, err = io.StringIO(), io.StringIO()
    source = MemorySource(broker, reachable=kw.pop("reachable", True))
    code = run_dlq(
        settings(),
        request,
        out=out,
        err=err,
        stdin=stdin or io.StringIO(),
        now=NOW,
        source_factory=lambda: source,
        producer_factory=broker.producer,
        sleep=lambda s: None,
        **kw,
    )
    return code, out.getvalue(), err.getvalue(), source


# --------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW - timedelta(seconds=90)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2h", NOW - timedelta(hours=2)),
        ("1d12h", NOW - timedelta(hours=36)),
        ("1w", NOW - timedelta(days=7)),
        ("2024-01-15T10:30:00Z", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15T12:30:00+02:00", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15T10:30:00", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15", datetime(2024, 1, 15, tzinfo=UTC)),
    ],
)
def test_time_bounds_are_durations_before_now_or_iso_times(text: str, expected: datetime) -> None:
    assert parse_time_bound(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2x", "h2", "2024-13-01"])
def test_bad_time_bounds_are_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_time_bound(text, NOW)
    with pytest.raises(ValueError, match="before the year 1"):
        parse_time_bound("999999999w", NOW)


def test_positions_are_partition_offset_or_offset() -> None:
    assert parse_position("3:17") == (3, 17)
    assert parse_position("17") == (None, 17)
    for bad in ("a:1", "1:b", "-1", "1:-2", "1:2:3", ""):
        with pytest.raises(ValueError, match="PARTITION:OFFSET"):
            parse_position(bad)


def test_the_command_line_refuses_bad_dlq_arguments_with_exit_code_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    for argv in (
        ["dlq", "list", "--config", "c.yaml", "--since", "soon"],
        ["dlq", "list", "--config", "c.yaml", "--stage", "PARSE"],
        ["dlq", "list", "--config", "c.yaml", "--endpoint", "nope"],
        ["dlq", "list", "--config", "c.yaml", "--limit", "0"],
        ["dlq", "replay", "--config", "c.yaml", "--rate", "0"],
        ["dlq", "replay", "--config", "c.yaml", "--rate", "nan"],
        ["dlq", "stats", "--config", "c.yaml", "--timeout", "inf"],
        ["dlq", "show", "--config", "c.yaml"],
        ["dlq", "list"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(argv)
        assert exit_info.value.code == 2, argv
    args = parser.parse_args(["dlq", "stats", "--config", "c.yaml", "--stage", "decode", "--stage", "MAP"])
    assert args.stage == ["DECODE", "MAP"]


# ------------------------------------------------------------------------- entries, filters
def test_a_dead_letter_is_read_from_the_writers_headers() -> None:
    record = source_record(headers=(("optikpi.endpoint", b"spoofed-by-the-source"),))
    entry = DeadLetter.from_record(
        dead_letter(record, Stage.UPLOAD, "HTTP 400", http_status=400, dlq_partition=1, dlq_offset=5)
    )

    assert (entry.position, entry.source) == ("1:5", "bets:1:7")
    assert (entry.stage, entry.endpoint, entry.error_class) == ("UPLOAD", "deposit", "ValidationError")
    assert entry.http_status == 400
    assert entry.failed_at == NOW - timedelta(hours=2)


def test_a_record_without_the_headers_falls_back_to_its_timestamp() -> None:
    entry = DeadLetter.from_record(Record(DLQ, 0, 3, None, b"x", (), timestamp_ms=1_700_000_000_000))

    assert entry.failed_at == datetime.fromtimestamp(1_700_000_000, UTC)
    assert (entry.topic, entry.stage, entry.reason, entry.source) == (None, None, "", "-")


def test_filters_combine_and_the_selection_is_in_dlq_order_and_limited() -> None:
    records = [
        dead_letter(source_record("bets"), Stage.DECODE, dlq_partition=1, dlq_offset=0, failed_at=NOW),
        dead_letter(source_record("bets"), Stage.MAP, dlq_partition=0, dlq_offset=4, failed_at=NOW),
        dead_letter(source_record("bets"), Stage.DECODE, dlq_partition=0, dlq_offset=2, endpoint="account"),
        dead_letter(source_record("deposits"), Stage.DECODE, dlq_partition=0, dlq_offset=1),
    ]

    def positions(filters: Filters) -> list[tuple[int, int]]:
        return [(r.partition, r.offset) for r in select(records, filters)]

    assert positions(Filters()) == [(0, 1), (0, 2), (0, 4), (1, 0)]
    assert positions(Filters(stages=frozenset({"DECODE"}))) == [(0, 1), (0, 2), (1, 0)]
    assert positions(Filters(stages=frozenset({"DECODE"}), topics=frozenset({"bets"}))) == [(0, 2), (1, 0)]
    assert positions(Filters(endpoints=frozenset({"account"}))) == [(0, 2)]
    assert positions(Filters(since=NOW - timedelta(hours=1))) == [(0, 4), (1, 0)]
    assert positions(Filters(until=NOW - timedelta(hours=1))) == [(0, 1), (0, 2)]
    assert positions(Filters(limit=2)) == [(0, 1), (0, 2)]


# --------------------------------------------------------------------------------- rendering
def test_similar_reasons_group_and_different_ones_do_not() -> None:
    same = [
        (
            "amount: positive: amount must be greater than 0 (got -5)",
            "amount: positive: amount must be greater than 0 (got 0)",
        ),
        (
            "schema id 42 is not known to the schema registry",
            "schema id 7 is not known to the schema registry",
        ),
        ("event_id evt_17 already seen", "event_id evt_18 already seen"),
        (
            "user 0b8f6a5e-3c1d-4e2f-9a7b-1c2d3e4f5a6b not found",
            "user 9e1a2b3c-4d5e-4f60-8a7b-0c1d2e3f4a5b not found",
        ),
        ("failed at 2024-01-15T10:30:00.123Z", "failed at 2024-02-01T00:00:00Z"),
        ("unknown magic byte 0x7b", "unknown magic byte 0x22"),
        ("event_time: date_time: bad (got str 'x (y)')", "event_time: date_time: bad (got int 5)"),
    ]
    for a, b in same:
        assert normalize_reason(a) == normalize_reason(b), (a, b)
    assert normalize_reason("HTTP 400: bad request") != normalize_reason("HTTP 413: bad request")
    assert normalize_reason("HTTP 400: 3 records") == "HTTP 400: <n> records"
    assert normalize_reason("int64 field <3> in  \n  record") == "int64 field <<n>> in record"
    assert normalize_reason("   ") == "(no reason)"


def test_stats_count_by_stage_reason_endpoint_and_topic() -> None:
    broker = filled_broker()
    stats = compute_stats(DeadLetter.from_record(r) for r in broker.records(DLQ))

    assert stats.total == 5
    assert stats.by_stage == {"DECODE": 2, "VALIDATE": 2, "UPLOAD": 1}
    assert stats.by_reason == {
        "amount: positive: must be > <n> (got …)": 2,
        "invalid Avro for Bet (schema id <n>): EOFError": 2,
        "HTTP 400: user_id unknown": 1,
    }
    assert stats.by_endpoint == {"deposit": 3, "gaming-activity": 2}
    assert stats.by_topic == {"deposits": 3, "bets": 2}
    lines = stats_lines(stats, DLQ)
    assert lines[0] == f"{DLQ}: 5 records"
    stage_rows = lines[lines.index("STAGE     COUNT") + 1 :][:3]
    assert [row.split() for row in stage_rows] == [["DECODE", "2"], ["VALIDATE", "2"], ["UPLOAD", "1"]]
    assert {len(row) for row in stage_rows} == {len("STAGE     COUNT")}


def test_the_list_table_shows_one_aligned_row_per_record_with_a_short_reason_and_age() -> None:
    long_reason = "custom_data: object: " + "x" * 200
    entries = [
        DeadLetter.from_record(
            dead_letter(source_record("bets", 0, 7), dlq_offset=3, failed_at=NOW - timedelta(minutes=5))
        ),
        DeadLetter.from_record(
            dead_letter(source_record("a-much-longer-topic", 12, 123456), message=long_reason, dlq_offset=4)
        ),
    ]

    lines = list_lines(entries, NOW)

    assert lines[0].split() == ["DLQ", "SOURCE", "STAGE", "ENDPOINT", "AGE", "REASON"]
    assert lines[1].split()[:5] == ["0:3", "bets:0:7", "VALIDATE", "deposit", "5m"]
    assert lines[2].split()[:5] == ["0:4", "a-much-longer-topic:12:123456", "VALIDATE", "deposit", "2h"]
    reason_column = lines[0].index("REASON")
    assert all(line[reason_column - 2 : reason_column] == "  " for line in lines)
    assert lines[1][reason_column:].startswith("amount: positive")
    assert lines[2][reason_column:].endswith("…") and len(lines[2]) - reason_column == 60


def test_ages_use_the_largest_whole_unit() -> None:
    assert [format_age(s) for s in (-3, 0, 59, 60, 3599, 3600, 86399, 86400 * 3 + 5)] == [
        "0s",
        "0s",
        "59s",
        "1m",
        "59m",
        "1h",
        "23h",
        "3d",
    ]


# ------------------------------------------------------------------------------------- values
BET_SCHEMA = {
    "type": "record",
    "name": "Bet",
    "fields": [
        {"name": "bet_id", "type": "string"},
        {"name": "stake", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
        {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}


def registry_client(schemas: Mapping[int, Mapping[str, Any]]) -> SchemaRegistryClient:
    def answer(request: httpx.Request) -> httpx.Response:
        schema_id = int(request.url.path.rsplit("/", 1)[1])
        if schema_id not in schemas:
            return httpx.Response(404, json={"error_code": 40403, "message": "Schema not found"})
        return httpx.Response(200, json={"schema": json.dumps(schemas[schema_id])})

    return SchemaRegistryClient("http://registry.invalid", transport=httpx.MockTransport(answer))


def test_a_confluent_framed_value_is_decoded_with_the_registry() -> None:
    from decimal import Decimal

    value = encode_confluent(
        9, parse(BET_SCHEMA), {"bet_id": "b-1", "stake": Decimal("12.50"), "placed_at": NOW}
    )
    with registry_client({9: BET_SCHEMA}) as registry:
        shown = show_value(value, registry)

    assert (shown.format, shown.schema_id, shown.size) == ("avro", 9, len(value))
    assert shown.data == {"bet_id": "b-1", "stake": "12.50", "placed_at": "2024-03-01T12:00:00.000Z"}


def test_values_fall_back_to_json_text_then_hex() -> None:
    assert show_value(b'{"user_id": "u1"}', None).data == {"user_id": "u1"}
    assert show_value(b'{"user_id": "u1"}', None).format == "json"
    assert (show_value("héllo wörld".encode(), None).format, show_value(b"hello", None).data) == (
        "text",
        "hello",
    )
    assert show_value(None, None).format == "null"
    binary = bytes(range(256)) * 2
    shown = show_value(binary, None)
    assert (shown.format, shown.size, shown.truncated) == ("hex", 512, True)
    assert shown.data == binary[:HEX_PREVIEW_BYTES].hex()


def test_a_framed_value_the_registry_cannot_decode_is_shown_as_hex_with_the_reason() -> None:
    framed = b"\x00\x00\x00\x00\x05\x02\x01"
    with registry_client({}) as registry:
        unknown = show_value(framed, registry)
    no_registry = show_value(framed, None)

    assert (unknown.format, unknown.data) == ("hex", framed.hex())
    assert unknown.note is not None and "schema id 5" in unknown.note and "not known" in unknown.note
    assert no_registry.format == "hex"
    assert no_registry.note is not None and "configure schema_registry" in no_registry.note


def test_show_lists_every_header_decoded_and_the_value() -> None:
    record = dead_letter(source_record(headers=(("bin", b"\xff\x00"), ("none", None))))
    doc = show_json(record, DLQ, None)

    headers = {h["name"]: h for h in doc["headers"]}
    assert headers["bin"]["format"] == "hex" and headers["bin"]["data"] == "ff00"
    assert headers["none"]["format"] == "null"
    assert headers[H_TOPIC]["data"] == "bets"
    assert doc["value"] == {"format": "json", "data": {"a": 1}, "size": 8}
    text = "\n".join(show_lines(doc))
    assert "(hex) ff00" in text and f"{H_FAILED_AT}" in text and '"a": 1' in text


def test_show_text_wraps_hex_and_keeps_header_columns_on_one_line() -> None:
    record = dead_letter(source_record(headers=(("multi", b"a\nb"),), value=b"\xff" * 300))
    lines = show_lines(show_json(record, DLQ, None))

    assert "value      hex, 300 bytes, the first 256 shown" in lines
    start = lines.index("value      hex, 300 bytes, the first 256 shown") + 1
    assert lines[start:] == ["ff" * 32] * 8
    (multi,) = [line for line in lines if line.startswith("  multi ")]
    assert multi.endswith("a\\nb")


# ------------------------------------------------------------------------------------- replay
def test_replay_keeps_the_original_headers_byte_for_byte_and_says_where_it_came_from() -> None:
    original = (
        ("trace", b"\x00\x01"),
        ("optikpi.tenant", b"t1"),
        ("dup", b"1"),
        ("dup", b"2"),
        ("empty", None),
    )
    record = dead_letter(source_record(headers=original), dlq_partition=2, dlq_offset=9)
    earlier_replay = Record(
        DLQ,
        2,
        9,
        None,
        None,
        ((REPLAYED_FROM, b"old:0:0"), ("__connect.errors.stacktrace", b"..."), *record.headers),
    )

    assert replay_headers(record, DLQ) == [*original, (REPLAYED_FROM, f"{DLQ}:2:9".encode())]
    assert replay_headers(earlier_replay, DLQ) == [*original, (REPLAYED_FROM, f"{DLQ}:2:9".encode())]


def test_replay_goes_back_to_the_original_partition_unless_redirected() -> None:
    records = [
        dead_letter(source_record("bets", 1, 7), dlq_offset=0),
        dead_letter(source_record("bets", 5, 8), dlq_offset=1),  # the topic has fewer partitions now
        Record(DLQ, 0, 2, b"k", b"v", ()),  # no origin headers
    ]

    items, skipped = plan_replay(records, DLQ, None, {"bets": 3})
    redirected, _ = plan_replay(records, DLQ, "bets.retry", {"bets": 3, "bets.retry": 3})

    assert [(i.topic, i.partition) for i in items] == [("bets", 1), ("bets", None)]
    assert [r.offset for r in skipped] == [2]
    assert [(i.topic, i.partition) for i in redirected] == [("bets.retry", None)] * 3


def test_replay_paces_sends_to_the_rate_and_counts_delivery_reports() -> None:
    broker = InMemoryBroker()
    broker.create_topic("bets", 3)
    broker.fail_deliveries("bets", 1)
    items, _ = plan_replay(
        [dead_letter(source_record(), dlq_offset=i) for i in range(5)], DLQ, None, {"bets": 3}
    )
    clock = FakeClock()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    report = replay(items, broker.producer(), 10.0, delivery_timeout_s=5.0, clock=clock, sleep=sleep)

    assert clock.now() == pytest.approx(0.4)  # five records at 10/s: the last one leaves at 0.4 s
    assert len(sleeps) == 4
    assert (report.sent, report.delivered, len(report.failures)) == (5, 4, 1)
    assert [r.offset for r in broker.records("bets", 1)] == [0, 1, 2, 3]


# --------------------------------------------------------------------------------- read loop
def test_reading_stops_at_the_end_seen_at_start() -> None:
    broker = filled_broker()
    at_start = sorted((r.partition, r.offset) for r in broker.records(DLQ))
    source = MemorySource(broker, chunk=1)
    late = dead_letter(source_record())
    source.after_first_read = [late, late, Record(DLQ, 1, 0, None, b"late", late.headers)]
    positions = {TopicPartition(DLQ, p): None for p in range(2)}

    result = read_partitions(source, positions, idle_timeout_s=5.0, clock=FakeClock())

    assert len(broker.records(DLQ)) == 8
    assert sorted((r.partition, r.offset) for r in result.records) == at_start
    assert not result.incomplete


def test_reading_an_empty_topic_or_past_the_end_finishes_without_waiting() -> None:
    broker = InMemoryBroker()
    broker.create_topic(DLQ, 2)
    broker.produce(DLQ, b"v", partition=1)
    clock = FakeClock()

    past_end = read_partitions(
        MemorySource(broker), {TopicPartition(DLQ, 1): 40}, idle_timeout_s=5.0, clock=clock
    )
    empty = read_partitions(
        MemorySource(broker), {TopicPartition(DLQ, 0): None}, idle_timeout_s=5.0, clock=clock
    )

    assert past_end.records == [] and not past_end.incomplete
    assert empty.records == [] and not empty.incomplete
    assert clock.now() == 0


def test_a_silent_partition_ends_the_read_after_the_idle_timeout_as_incomplete() -> None:
    class Silent(MemorySource):
        def read(self, max_records: int, timeout_s: float) -> tuple[list[Record], dict[TopicPartition, int]]:
            clock.advance(timeout_s)
            return [], {}

    clock = FakeClock()
    broker = filled_broker()
    result = read_partitions(Silent(broker), {TopicPartition(DLQ, 0): None}, idle_timeout_s=3.0, clock=clock)

    assert result.incomplete == [TopicPartition(DLQ, 0)]
    assert 3.0 <= clock.now() < 3.5


def test_reading_returns_as_soon_as_the_wanted_record_arrives() -> None:
    broker = filled_broker(partitions=1)
    source = MemorySource(broker, chunk=1)

    result = read_partitions(
        source,
        {TopicPartition(DLQ, 0): 1},
        idle_timeout_s=5.0,
        stop=lambda r: r.offset >= 2,
        clock=FakeClock(),
    )

    assert [r.offset for r in result.records] == [1, 2]
    assert source.reads == 2


# ---------------------------------------------------------------------------------- commands
def test_list_json_has_every_field_and_the_full_reason() -> None:
    code, out, err, source = run(
        filled_broker(), DlqRequest("list", Filters(stages=frozenset({"VALIDATE"})), as_json=True)
    )

    doc = json.loads(out)
    assert code == 0 and err == "" and source.closed
    assert (doc["topic"], doc["count"], doc["complete"]) == (DLQ, 2, True)
    assert {r["stage"] for r in doc["records"]} == {"VALIDATE"}
    (entry,) = (r for r in doc["records"] if r["offset"] == 12)
    assert entry["reason"] == "amount: positive: must be > 0 (got -5)"
    assert (entry["topic"], entry["partition"], entry["endpoint"]) == ("deposits", 2, "deposit")
    assert entry["failed_at"] == "2024-03-01T09:00:00.000Z" and entry["age_s"] == 3 * 3600
    assert set(entry) >= {"dlq_partition", "dlq_offset", "error_class", "http_status"}
    assert entry["connector_version"] == __version__
    assert (entry["trace_id"], entry["value_omitted"], entry["http_response"]) == (None, None, None)


def test_list_json_names_the_trace_the_omitted_size_and_the_apis_answer() -> None:
    """Every header the writer sets reaches `list --json`: the trace id to look up, the size of a
    value left out, the API's answer."""
    broker = InMemoryBroker()
    broker.create_topic(DLQ, 1)
    producer = broker.producer()
    writer = DeadLetterWriter(producer, DLQ, now=at(NOW))
    traced = source_record("deposits", 0, 5, headers=(("traceparent", TRACEPARENT.encode()),))
    writer.write(traced, Stage.VALIDATE, "ValidationError", "amount: required", lambda err: None)
    writer.write(
        source_record("deposits", 0, 6),
        Stage.UPLOAD,
        "HttpError",
        "HTTP 400: rejected",
        lambda err: None,
        endpoint="deposit",
        http_status=400,
        http_response='{"error": "user_id unknown"}',
        trace_id="0af7651916cd43dd8448eb211c80319c",
    )
    producer.flush(1.0)

    code, out, _, _ = run(broker, DlqRequest("list", as_json=True))

    first, second = json.loads(out)["records"]
    assert code == 0
    assert first["trace_id"] == TRACEPARENT.split("-")[1]
    assert second["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert (second["http_status"], second["http_response"]) == (400, '{"error": "user_id unknown"}')


def test_list_and_stats_of_a_missing_topic_are_empty_with_a_note() -> None:
    broker = InMemoryBroker()
    code, out, err, _ = run(broker, DlqRequest("stats", as_json=True))

    assert code == 0 and json.loads(out)["total"] == 0
    assert "does not exist" in err


def test_an_unreachable_broker_is_one_line_and_exit_1() -> None:
    code, out, err, _ = run(filled_broker(), DlqRequest("list", timeout_s=2), reachable=False)

    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert "cannot reach Kafka at 127.0.0.1:1 within 2 s" in err and "Connection refused" in err


def test_show_finds_a_record_by_offset_and_reports_what_is_missing() -> None:
    broker = filled_broker(partitions=1)
    code, out, _, _ = run(broker, DlqRequest("show", position="2", as_json=True))
    assert code == 0 and json.loads(out)["offset"] == 2

    assert run(broker, DlqRequest("show", position="0:99"))[0] == 1
    assert run(broker, DlqRequest("show", position="3:0"))[0] == 1
    code, _, err, _ = run(filled_broker(partitions=2), DlqRequest("show", position="2"))
    assert code == 2 and "PARTITION:OFFSET" in err


def test_replay_refuses_to_run_unattended_without_yes_before_reading_anything() -> None:
    broker = filled_broker()
    code, out, err, source = run(broker, DlqRequest("replay"))

    assert code == 2 and "--yes" in err and out == ""
    assert source.reads == 0


def test_replay_asks_on_a_terminal_and_sends_nothing_when_declined() -> None:
    broker = filled_broker()
    code, _, err, _ = run(broker, DlqRequest("replay"), stdin=TtyInput("n\n"))

    assert code == 1 and "replay 5 record(s) to bets (2), deposits (3)? [y/N]" in err and "aborted" in err
    assert broker.records("bets") == [] and broker.records("deposits") == []

    code, out, _, _ = run(
        broker, DlqRequest("replay", Filters(topics=frozenset({"bets"}))), stdin=TtyInput("y\n")
    )
    assert code == 0 and "2 delivered, 0 failed" in out
    assert len(broker.records("bets")) == 2


def test_replay_dry_run_sends_nothing_and_replay_reports_failed_deliveries() -> None:
    broker = filled_broker()
    code, out, _, _ = run(broker, DlqRequest("replay", dry_run=True, as_json=True))
    doc = json.loads(out)
    assert code == 0 and doc["dry_run"] is True and len(doc["records"]) == 5
    assert doc["records"][0]["headers"] == ["trace", REPLAYED_FROM]
    assert broker.records("bets") == [] and broker.records("deposits") == []

    broker.fail_deliveries("deposits", 1)
    code, out, _, _ = run(broker, DlqRequest("replay", yes=True, as_json=True))
    doc = json.loads(out)
    assert code == 1 and (doc["sent"], doc["delivered"], doc["failed"]) == (5, 4, 1)
    assert doc["by_topic"] == {"bets": 2, "deposits": 2}


def test_replay_to_a_missing_topic_sends_nothing() -> None:
    broker = filled_broker()
    code, _, err, _ = run(broker, DlqRequest("replay", to="nope", yes=True))

    assert code == 1 and "nope" in err and "nothing replayed" in err
    assert broker.records("bets") == []


def test_a_replayed_record_carries_only_its_original_headers_and_the_replay_marker() -> None:
    broker = filled_broker()
    code, _, _, _ = run(broker, DlqRequest("replay", Filters(topics=frozenset({"bets"}), limit=1), yes=True))
    assert code == 0

    (replayed,) = broker.records("bets")
    names = [name for name, _ in replayed.headers]
    assert names == ["trace", REPLAYED_FROM] and H_ENDPOINT not in names
