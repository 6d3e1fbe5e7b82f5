"""`optikpi-connector dlq ...` end to end against the embedded Tansu broker.

The dead-letter topic is filled once per module by the real DeadLetterWriter on a real producer,
then every command runs in-process through `connector.cli.main`.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.avro.decoding import encode_confluent
from connector.avro.schemas import parse
from connector.cli import main
from connector.devtools.embedded_broker import EmbeddedBroker, free_port
from connector.devtools.registry_stub import RegistryStub
from connector.dlq.read import read_partitions
from connector.dlq.replay import REPLAYED_FROM
from connector.errors import DeliveryError, Stage
from connector.kafka.admin import KafkaAdmin
from connector.kafka.config import READER_GROUP_ID, admin_config, consumer_config, reader_config
from connector.kafka.consumer import KafkaConsumer
from connector.kafka.ports import Header, Record, TopicPartition
from connector.kafka.reader import PartitionReader
from connector.pipeline.deadletter import H_FAILED_AT, H_TOPIC, DeadLetterWriter
from tests.support.brokers import UniqueNames, create_topics, make_producer

pytestmark = pytest.mark.broker

BET_SCHEMA = {
    "type": "record",
    "name": "Bet",
    "namespace": "test.dlq",
    "fields": [
        {"name": "bet_id", "type": "string"},
        {"name": "stake", "type": "double"},
        {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
BINARY_VALUE = bytes(range(255, -1, -1)) + b"\xde\xad\xbe\xef" * 50  # 456 bytes, not UTF-8, not framed


@dataclass(frozen=True)
class Letter:
    """One record as it was consumed, and how it failed."""

    source: Record
    stage: Stage
    message: str
    endpoint: str
    age: timedelta
    http_status: int | None = None


@dataclass
class Dlq:
    bootstrap: str
    topic: str
    bets: str
    deposits: str
    retry: str
    group: str
    letters: list[Letter]
    config: Path
    registry_config: Path
    framed_value: bytes


def _letters(bets: str, deposits: str, framed_value: bytes) -> list[Letter]:
    def rec(
        topic: str, partition: int, offset: int, key: bytes | None, value: bytes, headers: tuple[Header, ...]
    ) -> Record:
        return Record(topic, partition, offset, key, value, headers)

    return [
        Letter(
            rec(bets, 1, 10, b"user-0", BINARY_VALUE, (("trace", b"t-0"),)),
            Stage.DECODE,
            "unknown magic byte 0x00 for schema id 17",
            "gaming-activity",
            timedelta(hours=3),
        ),
        Letter(
            rec(
                bets, 2, 11, b"user-1", framed_value, (("trace", b"t-1"), ("bin", b"\x00\xff"), ("nil", None))
            ),
            Stage.MAP,
            "wager_amount: required: wager_amount is required",
            "gaming-activity",
            timedelta(hours=2),
        ),
        Letter(
            rec(deposits, 0, 12, b"user-2", b'{"amount": -5}', ()),
            Stage.VALIDATE,
            "amount: positive: amount must be greater than 0 (got -5)",
            "deposit",
            timedelta(minutes=30),
        ),
        Letter(
            rec(deposits, 1, 13, None, b'{"amount": 0}', (("trace", b"t-3"),)),
            Stage.VALIDATE,
            "amount: positive: amount must be greater than 0 (got 0)",
            "deposit",
            timedelta(minutes=20),
        ),
        Letter(
            rec(deposits, 2, 14, b"user-4", b'{"amount": 10}', (("trace", b"t-4"),)),
            Stage.UPLOAD,
            "HTTP 400: user_id user-4 unknown",
            "deposit",
            timedelta(minutes=10),
            http_status=400,
        ),
    ]


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


@pytest.fixture(scope="module")
def dlq(broker: EmbeddedBroker, registry: RegistryStub, tmp_path_factory: pytest.TempPathFactory) -> Dlq:
    names = UniqueNames.for_test("dlq-cli")
    bootstrap = broker.bootstrap_servers
    topic, bets, deposits, retry = (
        names.topic("dlq"),
        names.topic("bets"),
        names.topic("deposits"),
        names.topic("retry"),
    )
    create_topics(bootstrap, [topic, bets, deposits], 3)
    create_topics(bootstrap, [retry], 1)
    schema_id = registry.register(f"{bets}-value", BET_SCHEMA)
    framed = encode_confluent(
        schema_id,
        parse(BET_SCHEMA),
        {"bet_id": "b-1", "stake": 2.5, "placed_at": datetime(2024, 1, 15, 10, 30, tzinfo=UTC)},
    )
    letters = _letters(bets, deposits, framed)

    producer = make_producer(bootstrap)
    reports: list[DeliveryError | None] = []
    now = datetime.now(UTC)
    try:
        for letter in letters:
            writer = DeadLetterWriter(producer, topic, now=at(now - letter.age))
            writer.write(
                letter.source,
                letter.stage,
                "TestError",
                letter.message,
                reports.append,
                endpoint=letter.endpoint,
                http_status=letter.http_status,
                http_response="{}" if letter.http_status else None,
            )
        assert producer.flush(30.0) == 0
    finally:
        producer.close()
    assert reports == [None] * len(letters)

    directory = tmp_path_factory.mktemp("dlq-cli")
    group = names.group("connector")
    base = f"kafka:\n  bootstrap_servers: {bootstrap}\n  group_id: {group}\ndead_letter:\n  topic: {topic}\n"
    config = directory / "dlq.yaml"
    config.write_text(base, encoding="utf-8")
    registry_config = directory / "dlq-registry.yaml"
    registry_config.write_text(base + f"schema_registry:\n  url: {registry.url}\n", encoding="utf-8")
    return Dlq(bootstrap, topic, bets, deposits, retry, group, letters, config, registry_config, framed)


@pytest.fixture(autouse=True)
def _no_stdin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # what CI has: not a terminal
    yield


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = cli(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def read_topics(bootstrap: str, partitions: dict[str, int]) -> list[Record]:
    """Everything in these topics, read the way the dlq commands read (no group, nothing committed)."""
    reader = PartitionReader(reader_config(bootstrap, {}))
    positions = {TopicPartition(topic, p): None for topic, count in partitions.items() for p in range(count)}
    try:
        result = read_partitions(reader, positions, idle_timeout_s=15.0)
    finally:
        reader.close()
    assert not result.incomplete
    return sorted(result.records, key=lambda r: (r.topic, r.partition, r.offset))


def read_all(bootstrap: str, topic: str, partitions: int) -> list[Record]:
    return read_topics(bootstrap, {topic: partitions})


def sources(doc: dict[str, Any]) -> set[tuple[str, int, int]]:
    return {(r["topic"], r["partition"], r["offset"]) for r in doc["records"]}


def origin(letter: Letter) -> tuple[str, int, int]:
    return letter.source.topic, letter.source.partition, letter.source.offset


def where(dlq: Dlq, *indexes: int) -> set[tuple[str, int, int]]:
    return {origin(dlq.letters[i]) for i in indexes}


# ----------------------------------------------------------------------------------------- list
def test_list_shows_every_record_and_each_filter_narrows_it(
    dlq: Dlq, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ("dlq", "list", "--config", str(dlq.config))

    everything = cli_json(capsys, *base)
    assert everything["count"] == 5 and everything["complete"] is True
    assert sources(everything) == where(dlq, 0, 1, 2, 3, 4)
    by_origin = {(r["topic"], r["partition"], r["offset"]): r for r in everything["records"]}
    upload = by_origin[origin(dlq.letters[4])]
    assert (upload["stage"], upload["endpoint"], upload["http_status"]) == ("UPLOAD", "deposit", 400)
    assert upload["reason"] == dlq.letters[4].message
    assert 9 * 60 <= upload["age_s"] < 3600

    assert sources(cli_json(capsys, *base, "--stage", "VALIDATE")) == where(dlq, 2, 3)
    assert sources(cli_json(capsys, *base, "--stage", "decode", "--stage", "MAP")) == where(dlq, 0, 1)
    assert sources(cli_json(capsys, *base, "--endpoint", "gaming-activity")) == where(dlq, 0, 1)
    assert sources(cli_json(capsys, *base, "--topic", dlq.deposits)) == where(dlq, 2, 3, 4)
    assert sources(cli_json(capsys, *base, "--since", "1h")) == where(dlq, 2, 3, 4)
    assert sources(cli_json(capsys, *base, "--until", "1h")) == where(dlq, 0, 1)
    assert sources(cli_json(capsys, *base, "--stage", "VALIDATE", "--since", "25m")) == where(dlq, 3)
    limited = cli_json(capsys, *base, "--limit", "2")
    ordered = [(r["dlq_partition"], r["dlq_offset"]) for r in everything["records"]]
    assert (
        [(r["dlq_partition"], r["dlq_offset"]) for r in limited["records"]]
        == ordered[:2]
        == sorted(ordered)[:2]
    )


def test_list_prints_an_aligned_table(dlq: Dlq, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "dlq", "list", "--config", str(dlq.config), "--topic", dlq.bets)

    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["DLQ", "SOURCE", "STAGE", "ENDPOINT", "AGE", "REASON"]
    assert len(rows) == 2
    assert {row.split()[1] for row in rows} == {f"{t}:{p}:{o}" for t, p, o in where(dlq, 0, 1)}
    assert {row.split()[4] for row in rows} == {"3h", "2h"}
    for column in ("SOURCE", "STAGE", "REASON"):
        start = header.index(column)
        assert all(row[start - 2 : start] == "  " and row[start] != " " for row in rows), column


# ----------------------------------------------------------------------------------------- show
def _position(dlq: Dlq, capsys: pytest.CaptureFixture[str], letter: int) -> str:
    doc = cli_json(capsys, "dlq", "list", "--config", str(dlq.config))
    (match,) = [
        r for r in doc["records"] if (r["topic"], r["partition"], r["offset"]) == origin(dlq.letters[letter])
    ]
    return f"{match['dlq_partition']}:{match['dlq_offset']}"


def test_show_decodes_a_framed_value_with_the_registry_and_every_header(
    dlq: Dlq, capsys: pytest.CaptureFixture[str]
) -> None:
    position = _position(dlq, capsys, 1)

    doc = cli_json(capsys, "dlq", "show", position, "--config", str(dlq.registry_config))

    assert f"{doc['partition']}:{doc['offset']}" == position
    assert doc["value"]["format"] == "avro"
    assert doc["value"]["data"] == {"bet_id": "b-1", "stake": 2.5, "placed_at": "2024-01-15T10:30:00.000Z"}
    assert doc["key"] == {"format": "utf-8", "data": "user-1", "size": 6}
    headers = [(h["name"], h["format"], h["data"]) for h in doc["headers"]]
    assert headers[:3] == [("trace", "utf-8", "t-1"), ("bin", "hex", "00ff"), ("nil", "null", None)]
    named = {name: data for name, _, data in headers}
    assert named[H_TOPIC] == dlq.bets and named["__connect.errors.stage"] == "MAP"
    assert named[H_FAILED_AT].endswith("Z")

    code, out, _ = cli(capsys, "dlq", "show", position, "--config", str(dlq.registry_config))
    assert code == 0 and '"bet_id": "b-1"' in out and "schema id" in out


def test_show_falls_back_to_hex_without_a_registry_and_for_binary_values(
    dlq: Dlq, capsys: pytest.CaptureFixture[str]
) -> None:
    framed = cli_json(capsys, "dlq", "show", _position(dlq, capsys, 1), "--config", str(dlq.config))
    binary = cli_json(capsys, "dlq", "show", _position(dlq, capsys, 0), "--config", str(dlq.registry_config))
    text = cli_json(capsys, "dlq", "show", _position(dlq, capsys, 2), "--config", str(dlq.config))

    assert framed["value"]["format"] == "hex" and framed["value"]["data"] == dlq.framed_value.hex()
    assert "schema_registry" in framed["value"]["note"]
    assert binary["value"]["format"] == "hex" and binary["value"]["truncated"] is True
    assert "note" not in binary["value"]
    assert binary["value"]["data"] == BINARY_VALUE[:256].hex() and binary["value"]["size"] == len(
        BINARY_VALUE
    )
    assert text["value"] == {"format": "json", "data": {"amount": -5}, "size": 14}


def test_show_of_a_missing_record_exits_1_and_a_bare_offset_needs_one_partition(
    dlq: Dlq, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ("--config", str(dlq.config))

    code, _, err = cli(capsys, "dlq", "show", "0:999", *config)
    assert code == 1 and "not found" in err
    assert cli(capsys, "dlq", "show", "7:0", *config)[0] == 1
    code, _, err = cli(capsys, "dlq", "show", "0", *config)
    assert code == 2 and "PARTITION:OFFSET" in err


# ---------------------------------------------------------------------------------------- stats
def test_stats_count_by_stage_reason_endpoint_and_topic(dlq: Dlq, capsys: pytest.CaptureFixture[str]) -> None:
    doc = cli_json(capsys, "dlq", "stats", "--config", str(dlq.config))

    assert doc["total"] == 5
    assert doc["by_stage"] == {"VALIDATE": 2, "DECODE": 1, "MAP": 1, "UPLOAD": 1}
    assert doc["by_reason"]["amount: positive: amount must be greater than <n> (got …)"] == 2
    assert sum(doc["by_reason"].values()) == 5 and len(doc["by_reason"]) == 4
    assert doc["by_endpoint"] == {"deposit": 3, "gaming-activity": 2}
    assert doc["by_topic"] == {dlq.deposits: 3, dlq.bets: 2}

    filtered = cli_json(capsys, "dlq", "stats", "--config", str(dlq.config), "--endpoint", "deposit")
    assert filtered["total"] == 3 and filtered["by_stage"] == {"VALIDATE": 2, "UPLOAD": 1}
    code, out, _ = cli(capsys, "dlq", "stats", "--config", str(dlq.config))
    assert code == 0 and out.startswith(f"{dlq.topic}: 5 records")


# --------------------------------------------------------------------------------------- replay
def _positions(dlq: Dlq) -> set[tuple[str, int, int]]:
    written = read_topics(dlq.bootstrap, {dlq.bets: 3, dlq.deposits: 3, dlq.retry: 1})
    return {(r.topic, r.partition, r.offset) for r in written}


def test_replay_dry_run_sends_nothing_and_without_yes_refuses(
    dlq: Dlq, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _positions(dlq)

    doc = cli_json(capsys, "dlq", "replay", "--config", str(dlq.config), "--dry-run")
    code, out, err = cli(capsys, "dlq", "replay", "--config", str(dlq.config))

    assert doc["dry_run"] is True and len(doc["records"]) == 5
    assert {(r["topic"], r["partition"]) for r in doc["records"]} == {
        (t, p) for t, p, _ in where(dlq, 0, 1, 2, 3, 4)
    }
    assert code == 2 and out == "" and "--yes" in err
    assert _positions(dlq) == before


def test_replay_republishes_key_value_and_original_headers_byte_for_byte(
    dlq: Dlq, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {(r.partition, r.offset) for r in read_all(dlq.bootstrap, dlq.bets, 3)}
    code, out, err = cli(capsys, "dlq", "replay", "--config", str(dlq.config), "--topic", dlq.bets, "--yes")
    assert code == 0, err
    assert "2 delivered, 0 failed" in out

    replayed = [r for r in read_all(dlq.bootstrap, dlq.bets, 3) if (r.partition, r.offset) not in before]
    positions = {_position(dlq, capsys, i): dlq.letters[i] for i in (0, 1)}
    assert len(replayed) == 2
    for record in replayed:
        marker = dict(record.headers)[REPLAYED_FROM]
        assert marker is not None
        _, partition, offset = marker.decode().rsplit(":", 2)
        letter = positions[f"{partition}:{offset}"]
        assert marker.decode() == f"{dlq.topic}:{partition}:{offset}"
        assert (record.key, record.value, record.partition) == (
            letter.source.key,
            letter.source.value,
            letter.source.partition,
        )
        assert record.headers == (*letter.source.headers, (REPLAYED_FROM, marker))


def test_replay_to_another_topic(dlq: Dlq, capsys: pytest.CaptureFixture[str]) -> None:
    before = read_all(dlq.bootstrap, dlq.retry, 1)
    code, out, err = cli(
        capsys,
        "dlq",
        "replay",
        "--config",
        str(dlq.config),
        "--stage",
        "VALIDATE",
        "--to",
        dlq.retry,
        "--yes",
        "--json",
    )

    assert code == 0, err
    doc = json.loads(out)
    assert (doc["sent"], doc["delivered"], doc["failed"], doc["by_topic"]) == (2, 2, 0, {dlq.retry: 2})
    added = read_all(dlq.bootstrap, dlq.retry, 1)[len(before) :]
    assert sorted(r.value or b"" for r in added) == sorted(dlq.letters[i].source.value or b"" for i in (2, 3))


# -------------------------------------------------------------------------------------- offsets
def test_reading_never_joins_or_commits_for_any_group(
    dlq: Dlq, broker: EmbeddedBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = KafkaAdmin(admin_config(dlq.bootstrap, {}))
    groups_before = admin.list_groups(10.0)
    config = ("--config", str(dlq.config))

    assert cli(capsys, "dlq", "list", *config)[0] == 0
    assert cli(capsys, "dlq", "stats", *config)[0] == 0
    assert cli(capsys, "dlq", "show", _position(dlq, capsys, 2), *config)[0] == 0
    assert cli(capsys, "dlq", "replay", "--dry-run", *config)[0] == 0

    assert admin.list_groups(10.0) == groups_before
    assert dlq.group not in groups_before and READER_GROUP_ID not in groups_before
    partitions = [TopicPartition(dlq.topic, p) for p in range(3)]
    for group in (dlq.group, READER_GROUP_ID):
        probe = KafkaConsumer(consumer_config(dlq.bootstrap, group, "earliest", {}))
        try:
            assert probe.committed(partitions, 10.0) == dict.fromkeys(partitions)
        finally:
            probe.close()


def test_an_unreachable_broker_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "dlq.yaml"
    config.write_text(
        f"kafka:\n  bootstrap_servers: 127.0.0.1:{free_port()}\ndead_letter:\n  topic: dlq\n",
        encoding="utf-8",
    )

    code, out, err = cli(capsys, "dlq", "list", "--config", str(config), "--timeout", "1")

    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: cannot reach Kafka at 127.0.0.1:")
    assert "refused" in err  # the cause, from librdkafka's error callback
