"""A record too large for the dead-letter topic no longer blocks its partition (issue: a 10 MB
record was refused by the producer with MSG_SIZE_TOO_LARGE on every try and every restart)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from connector.cli import main
from connector.devtools.embedded_broker import EmbeddedBroker
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.sandbox.server import SandboxServer
from connector.errors import DeliveryError, Stage
from connector.kafka.admin import KafkaAdmin
from connector.kafka.config import admin_config
from connector.kafka.ports import Record, TopicPartition
from connector.pipeline.deadletter import H_OFFSET, H_STAGE, H_TOPIC, H_VALUE_OMITTED, DeadLetterWriter
from tests.support.brokers import UniqueNames, make_producer
from tests.support.e2e import (
    accepted_count,
    bet_mapping,
    committed_offsets,
    connector_doc,
    create_topics,
    encode_bet,
    header,
    in_process,
    make_bet,
    read_topic,
    register_bet_schema,
    settings_of,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.broker

TEN_MB = 10_000_000
SETTLE_S = 90.0


def test_a_10_mb_poison_record_is_dead_lettered_without_its_value_and_its_partition_moves_on(
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox: SandboxServer,
    names: UniqueNames,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic, dlq, group = names.topic("bets"), names.topic("dlq"), names.group()
    create_topics(broker.bootstrap_servers, {topic: 1, dlq: 1})
    schema_id = register_bet_schema(registry, topic)
    rng = random.Random(8)
    huge = b"\x05" + b"x" * (TEN_MB - 1)  # not the Confluent wire format: DECODE poison
    values = [encode_bet(schema_id, make_bet(rng, 1)), huge, encode_bet(schema_id, make_bet(rng, 2))]
    producer = make_producer(broker.bootstrap_servers, **{"message.max.bytes": 2 * TEN_MB})
    reports: list[DeliveryError | None] = []
    for value in values:
        producer.produce(topic, b"k", value, (), reports.append, partition=0)
    assert producer.flush(30.0) == 0 and reports == [None, None, None]
    producer.close()

    doc = connector_doc(
        bootstrap=broker.bootstrap_servers,
        registry_url=registry.url,
        api_url=sandbox.base_url,
        group=group,
        dlq_topic=dlq,
        mappings=[bet_mapping(topic)],
    )
    config = write_config(tmp_path, doc)
    with in_process(settings_of(doc, config)) as runner:
        stats = runner.pipeline.stats
        wait_until(
            lambda: (
                stats["accepted"] == 2
                and stats["dead_lettered"] == 1
                and runner.pipeline.in_flight_records == 0
            ),
            SETTLE_S,
            "both good records accepted and the 10 MB one dead-lettered",
        )
        assert runner.stop() == 0

    assert accepted_count(sandbox) == 2
    end = {TopicPartition(topic, 0): 3}
    assert committed_offsets(broker.bootstrap_servers, group, end) == end, "the commit moved past it"
    [copy] = read_topic(broker.bootstrap_servers, dlq)
    assert copy.value is None
    assert header(copy, H_VALUE_OMITTED) == str(TEN_MB).encode()
    assert header(copy, H_TOPIC) == topic.encode() and header(copy, H_OFFSET) == b"1"
    assert header(copy, H_STAGE) == b"DECODE"

    code, out, err = run_cli(capsys, "dlq", "show", "0:0", "--config", str(config))
    assert code == 0, err
    assert f"still at {topic} partition 0 offset 1" in out

    code, out, err = run_cli(capsys, "dlq", "replay", "--config", str(config), "--yes")
    assert code == 1
    assert f"skipped 0:0: its value ({TEN_MB} bytes) was too large" in err and "tombstone" in err
    assert len(read_topic(broker.bootstrap_servers, topic)) == 3, "nothing was replayed"


def test_a_copy_the_producer_refuses_as_too_large_is_written_again_without_its_value(
    broker: EmbeddedBroker, names: UniqueNames
) -> None:
    """No limit known up front: librdkafka's MSG_SIZE_TOO_LARGE is answered by one more write."""
    dlq = names.topic("dlq")
    create_topics(broker.bootstrap_servers, {dlq: 1})
    producer = make_producer(broker.bootstrap_servers, **{"message.max.bytes": 100_000})
    done: list[DeliveryError | None] = []
    record = Record("bets", 3, 77, b"k", b"v" * 300_000, (("trace", b"t"),))
    DeadLetterWriter(producer, dlq).write(record, Stage.UPLOAD, "E", "too large", done.append)
    assert producer.flush(30.0) == 0
    producer.close()

    assert done == [None]
    [copy] = read_topic(broker.bootstrap_servers, dlq)
    assert copy.value is None and header(copy, H_VALUE_OMITTED) == b"300000"
    assert header(copy, "trace") == b"t" and header(copy, H_OFFSET) == b"77"


def test_the_topic_size_limit_is_read_where_the_broker_gives_it(
    broker: EmbeddedBroker, names: UniqueNames
) -> None:
    dlq = names.topic("dlq")
    create_topics(broker.bootstrap_servers, {dlq: 1})
    limit = KafkaAdmin(admin_config(broker.bootstrap_servers, {})).topic_max_message_bytes(dlq, 10.0)
    assert limit is None or limit > 0
    assert (
        KafkaAdmin(admin_config(broker.bootstrap_servers, {})).topic_max_message_bytes("no-such-topic-x", 5.0)
        is None
    )


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
