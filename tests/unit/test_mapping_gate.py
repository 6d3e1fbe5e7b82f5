"""A mapping that cannot apply is a configuration error, not poison; and one breaker per topic.

Writer schemas come from the registry stub (real HTTP on loopback), records are real Confluent
Avro, transforms are the production ones, the broker is the in-memory fake with a fake clock.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from connector.avro.decoding import encode_confluent
from connector.avro.registry import SchemaRegistryClient
from connector.avro.schemas import load_schema, parse
from connector.cli import main
from connector.config.loader import parse_settings
from connector.config.settings import MappingSettings
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.samples import sample_mappings, sample_record
from connector.errors import ConfigError, DecodeError, ExitCode, UnusableMappingError
from connector.kafka.ports import TopicPartition
from connector.mapping.compiled import TopicMapping
from connector.pipeline.deadletter_path import DeadLetterBreaker
from connector.pipeline.loop import Pipeline
from connector.pipeline.wiring import build_framing, warn_unfit_latest
from connector.runtime.health import Reason
from connector.transform.factory import make_transform
from connector.transform.framing import ConfluentFraming
from tests.support.pipeline_kit import DEPOSIT_MAPPING, DEST, Kit, deposit, make_kit

pytestmark = pytest.mark.unit

BET_SCHEMA: dict[str, Any] = load_schema("bet")
DEPOSIT_SCHEMA: dict[str, Any] = load_schema("deposit")
BETS = "bets"
H_CLASS = "__connect.errors.exception.class.name"
H_MESSAGE = "__connect.errors.exception.message"
H_STAGE = "__connect.errors.stage"


def bet_mapping(topic: str = BETS, **changes: Any) -> MappingSettings:
    entry = {**sample_mappings()["bet"], "topic": topic}
    entry.pop("schema")  # confluent-avro without a reader schema: the writer schema is what is mapped
    entry.update(changes)
    return MappingSettings.model_validate(entry)


# The source field does not exist in the bet schema: `check` reports it, every record would fail.
BAD_FIELDS = {**sample_mappings()["bet"]["fields"], "user_id": "player.uid"}


@pytest.fixture
def stub() -> Iterator[RegistryStub]:
    with RegistryStub() as registry:
        yield registry


@pytest.fixture
def registry(stub: RegistryStub) -> Iterator[SchemaRegistryClient]:
    with SchemaRegistryClient(stub.url) as client:
        yield client


def bets(schema_id: int, count: int, first: int = 0) -> list[bytes]:
    parsed = parse(BET_SCHEMA)
    rng = random.Random(first)
    return [
        encode_confluent(schema_id, parsed, sample_record("bet", rng, i)) for i in range(first, first + count)
    ]


def headers(record: Any) -> dict[str, str]:
    return {k: (v or b"").decode() for k, v in record.headers}


# ============================================================================ the registry lookup
def test_registered_under_asks_once_per_id(stub: RegistryStub, registry: SchemaRegistryClient) -> None:
    schema_id = stub.register("bets-value", BET_SCHEMA)
    other = stub.register("deposits-value", DEPOSIT_SCHEMA)

    assert registry.registered_under(schema_id, "bets-value")
    assert not registry.registered_under(other, "bets-value")
    assert registry.registered_under(schema_id, "bets-value")
    assert registry.registered_under(other, "deposits-value")
    asked = [path for method, path in stub.requests if path.endswith("/versions") and "/ids/" in path]
    assert asked == [f"/schemas/ids/{schema_id}/versions", f"/schemas/ids/{other}/versions"]


def test_a_registry_without_the_subjects_of_an_id_counts_it_as_the_topics_own() -> None:
    import httpx

    def answer(request: httpx.Request) -> httpx.Response:  # an old registry: no such route
        return httpx.Response(404, json={"error_code": 404, "message": "HTTP 404 Not Found"})

    with SchemaRegistryClient("http://registry.invalid", transport=httpx.MockTransport(answer)) as client:
        # Pausing the topic loses nothing; dead-lettering what may be its own data would.
        assert client.registered_under(7, "bets-value")


# ============================================================================ the first-seen check
def test_a_writer_schema_the_mapping_fits_makes_a_spec(
    stub: RegistryStub, registry: SchemaRegistryClient
) -> None:
    m = bet_mapping()
    schema_id = stub.register("bets-value", BET_SCHEMA)
    spec = ConfluentFraming(registry, checked=m).spec(schema_id, TopicMapping.from_settings(m, DEST))
    assert spec.writer_schema == BET_SCHEMA


def test_an_unfit_schema_of_the_topics_subject_is_a_mapping_error(
    stub: RegistryStub, registry: SchemaRegistryClient
) -> None:
    m = bet_mapping(fields=BAD_FIELDS)
    schema_id = stub.register("bets-value", BET_SCHEMA)
    with pytest.raises(UnusableMappingError) as caught:
        ConfluentFraming(registry, checked=m).spec(schema_id, TopicMapping.from_settings(m, DEST))
    assert (caught.value.topic, caught.value.schema_id, caught.value.field) == (BETS, schema_id, "user_id")
    assert "player.uid" in caught.value.message


def test_an_unfit_schema_of_another_subject_is_a_foreign_record(
    stub: RegistryStub, registry: SchemaRegistryClient
) -> None:
    m = bet_mapping()
    stub.register("bets-value", BET_SCHEMA)
    foreign = stub.register("deposits-value", DEPOSIT_SCHEMA)
    with pytest.raises(DecodeError, match=r"not registered under subject 'bets-value'.*another topic"):
        ConfluentFraming(registry, checked=m).spec(foreign, TopicMapping.from_settings(m, DEST))


def test_subject_names_the_topics_subject(stub: RegistryStub, registry: SchemaRegistryClient) -> None:
    schema_id = stub.register("com.example.Bet", BET_SCHEMA)  # RecordNameStrategy
    named = bet_mapping(fields=BAD_FIELDS, subject="com.example.Bet")
    with pytest.raises(UnusableMappingError):
        ConfluentFraming(registry, checked=named).spec(schema_id, TopicMapping.from_settings(named, DEST))
    default = bet_mapping(fields=BAD_FIELDS)
    with pytest.raises(DecodeError, match="bets-value"):
        ConfluentFraming(registry, checked=default).spec(schema_id, TopicMapping.from_settings(default, DEST))


def test_subject_is_for_confluent_avro_only() -> None:
    with pytest.raises(ValueError, match="subject"):
        bet_mapping(format="avro", schema="bet.avsc", subject="x")
    assert bet_mapping().value_subject == "bets-value"
    assert bet_mapping(subject="s").value_subject == "s"


# ============================================================================ the pipeline
def gated_kit(
    stub: RegistryStub, registry: SchemaRegistryClient, bet_fields: dict[str, str]
) -> tuple[Kit, Pipeline]:
    kit = make_kit(partitions=2)
    kit.broker.create_topic(BETS, 1)
    m = bet_mapping(fields=bet_fields)
    p = kit.started(
        mappings=(m, DEPOSIT_MAPPING),
        framings={BETS: ConfluentFraming(registry, checked=m)},
        make=_json_or_avro,
    )
    return kit, p


def _json_or_avro(spec: Any) -> Any:
    from tests.support.pipeline_kit import json_transform

    return make_transform(spec) if spec.mapping.topic == BETS else json_transform(spec)


def bet_schema_with_uid() -> dict[str, Any]:
    """A later bet schema whose player has a `uid`: the mapping that reads player.uid fits it."""
    schema = copy.deepcopy(BET_SCHEMA)
    player = next(f for f in schema["fields"] if f["name"] == "player")
    player["type"]["fields"].append({"name": "uid", "type": "string", "default": ""})
    return schema


def test_an_unfit_writer_schema_pauses_its_topic_only(
    stub: RegistryStub, registry: SchemaRegistryClient
) -> None:
    schema_id = stub.register("bets-value", BET_SCHEMA)
    v2 = bet_schema_with_uid()
    v2_id = stub.register("bets-value", v2)
    kit, p = gated_kit(stub, registry, BAD_FIELDS)
    for value in bets(schema_id, 5):
        kit.broker.produce(BETS, value, partition=0)
    rng = random.Random(9)
    for i in range(2):  # a schema the mapping fits, behind the paused ones: it waits with them
        bet = sample_record("bet", rng, 100 + i)
        bet["player"]["uid"] = f"u{i}"
        kit.broker.produce(BETS, encode_confluent(v2_id, parse(v2), bet), partition=0)
    for i in range(6):
        kit.broker.produce("deposits", deposit(i), partition=i % 2)

    bets_tp = TopicPartition(BETS, 0)
    for _ in range(50):
        p.step()
        kit.clock.advance(0.1)
    assert bets_tp in kit.paused()
    assert kit.dlq() == []  # nothing dead-lettered
    assert not kit.broker.committed("g", bets_tp)  # nothing committed
    assert len(kit.uploader.received) == 6  # the other topic flows
    assert all(endpoint == "deposit" for endpoint, _ in kit.uploader.received)
    reasons = p.health.reasons()
    assert not p.health.ready
    assert f"topic bets, schema id {schema_id}: field user_id:" in reasons[Reason.MAPPING]
    assert p.metrics.registry.get_sample_value("optikpi_paused_topics", {"reason": "mapping"}) == 1
    assert p.mapping_paused_topics == {BETS}

    with capture_logs() as logs:
        assert p.shutdown() == 0
    assert not any(e["event"].startswith("drain deadline passed") for e in logs)  # held ones not awaited
    assert not kit.broker.committed("g", bets_tp)

    # Fixed and restarted: the held records flow.
    kit.uploader.cancelled = False  # the shutdown cancelled this uploader; the restart has its own
    fixed = bet_mapping()
    q = kit.started(
        mappings=(fixed, DEPOSIT_MAPPING),
        framings={BETS: ConfluentFraming(registry, checked=fixed)},
        make=_json_or_avro,
    )
    for _ in range(50):
        q.step()
        kit.clock.advance(0.1)
    assert kit.broker.committed("g", bets_tp) == 7
    assert [e for e, _ in kit.uploader.received].count("gaming-activity") == 7
    assert kit.dlq() == []
    assert q.health.ready


def test_a_foreign_schema_is_dead_lettered_at_decode(
    stub: RegistryStub, registry: SchemaRegistryClient
) -> None:
    schema_id = stub.register("bets-value", BET_SCHEMA)
    foreign = stub.register("deposits-value", DEPOSIT_SCHEMA)
    kit, p = gated_kit(stub, registry, sample_mappings()["bet"]["fields"])
    good = bets(schema_id, 4)
    rng = random.Random(3)
    foreign_value = encode_confluent(foreign, parse(DEPOSIT_SCHEMA), sample_record("deposit", rng, 0))
    for value in (good[0], foreign_value, good[1], good[2], good[3]):
        kit.broker.produce(BETS, value, partition=0)
    for _ in range(50):
        p.step()
        kit.clock.advance(0.1)
    bets_tp = TopicPartition(BETS, 0)
    assert kit.broker.committed("g", bets_tp) == 5  # the topic flows past it
    assert p.health.ready
    [dead] = kit.dlq()
    h = headers(dead)
    assert h[H_STAGE] == "DECODE" and h[H_CLASS] == "DecodeError"
    assert (
        f"schema id {foreign}" in h[H_MESSAGE] and "not registered under subject 'bets-value'" in h[H_MESSAGE]
    )


def test_bad_values_under_a_fitting_mapping_still_go_to_the_dead_letter_topic(
    stub: RegistryStub, registry: SchemaRegistryClient
) -> None:
    schema_id = stub.register("bets-value", BET_SCHEMA)
    kit, p = gated_kit(stub, registry, sample_mappings()["bet"]["fields"])
    parsed = parse(BET_SCHEMA)
    bet = sample_record("bet", random.Random(1), 0)
    bet["odds"] = float("nan")  # JSON cannot carry it: this record's own problem
    kit.broker.produce(BETS, encode_confluent(schema_id, parsed, bet), partition=0)
    for value in bets(schema_id, 2, first=1):
        kit.broker.produce(BETS, value, partition=0)
    for _ in range(50):
        p.step()
        kit.clock.advance(0.1)
    assert kit.broker.committed("g", TopicPartition(BETS, 0)) == 3
    [dead] = kit.dlq()
    assert headers(dead)[H_STAGE] == "MAP"
    assert p.health.ready and p.mapping_paused_topics == frozenset()


# ============================================================================ at start
def _settings(tmp_path: Path, mapping: dict[str, Any], registry_url: str | None = None) -> Any:
    (tmp_path / "bet.avsc").write_text(__import__("json").dumps(BET_SCHEMA), encoding="utf-8")
    doc: dict[str, Any] = {
        "kafka": {"bootstrap_servers": "127.0.0.1:1"},
        "optikpi": {
            "base_url": "https://gateway.example.com/apigw/ingest",
            "account_id": "acc",
            "workspace_id": "ws",
            "auth_token": "token-1b2c3d4e",
        },
        "dead_letter": {"topic": "dlq"},
        "mappings": [mapping],
    }
    if registry_url:
        doc["schema_registry"] = {"url": registry_url}
    return parse_settings(doc, "run", source=str(tmp_path / "c.yaml"), env={}), doc


def test_a_local_schema_the_mapping_cannot_apply_is_one_configuration_error(tmp_path: Path) -> None:
    entry = {**sample_mappings()["bet"], "topic": BETS, "format": "avro", "fields": BAD_FIELDS}
    settings, _ = _settings(tmp_path, entry)
    with pytest.raises(ConfigError) as caught:
        build_framing(settings.mappings[0], settings, None)
    [line] = caught.value.problems
    assert "mappings[0] (topic bets): user_id: source path 'player.uid' not found" in line


def test_run_with_an_unfit_avro_mapping_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    entry = {**sample_mappings()["bet"], "topic": BETS, "format": "avro", "fields": BAD_FIELDS}
    _, doc = _settings(tmp_path, entry)
    # Refused when the consumer is made, after the mapping check: without the check, this line shows.
    doc["kafka"]["properties"] = {"no.such.property": 1}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert main(["run", "--config", str(config)]) == ExitCode.USAGE
    err = capsys.readouterr().err.strip().splitlines()
    [line] = [line for line in err if not line.startswith('{"version"')]  # the start-up log line
    assert line.startswith("configuration error: ") and "mappings[0] (topic bets): user_id:" in line
    assert "Traceback" not in "".join(err)


def test_start_warns_when_the_latest_schema_does_not_fit(stub: RegistryStub, tmp_path: Path) -> None:
    stub.register("bets-value", BET_SCHEMA)
    entry = {**sample_mappings()["bet"], "topic": BETS, "fields": BAD_FIELDS}
    entry.pop("schema")
    settings, _ = _settings(tmp_path, entry, stub.url)
    with SchemaRegistryClient(stub.url) as client, capture_logs() as logs:
        build_framing(settings.mappings[0], settings, client)  # no error: a warning only
        warn_unfit_latest(settings, client)
    [warning] = [e for e in logs if e["log_level"] == "warning"]
    assert warning["topic"] == BETS and "user_id" in warning["problem"]

    stub.unavailable = True
    with SchemaRegistryClient(stub.url) as client, capture_logs() as logs:
        warn_unfit_latest(settings, client)  # an unreachable registry does not stop the start
    assert [e["event"] for e in logs] == ["mapping not checked at start: schema registry"]


# ============================================================================ a breaker per topic
def test_one_broken_topic_among_healthy_ones_trips_its_own_breaker() -> None:
    kit = make_kit(partitions=2)
    kit.broker.create_topic("other", 1)
    other = DEPOSIT_MAPPING.model_copy(update={"topic": "other"})
    for i in range(600):  # healthy: 600 good records on two partitions
        kit.broker.produce("deposits", deposit(i), partition=i % 2)
    for _ in range(150):  # broken: every record poison (150 of 750: 20 % overall)
        kit.broker.produce("other", b"poison", partition=0)
    p = kit.started(mappings=(DEPOSIT_MAPPING, other), window=1000, max_ratio=0.5)
    for _ in range(200):
        p.step()
        kit.clock.advance(0.1)

    assert p.tripped_topics == {"other"}
    assert kit.paused() == {TopicPartition("other", 0)}
    assert "topic other:" in p.health.reasons()[Reason.BREAKER]
    assert p.metrics.registry.get_sample_value("optikpi_paused_topics", {"reason": "breaker"}) == 1
    for i in range(600, 610):  # the healthy topic keeps flowing after the trip
        kit.broker.produce("deposits", deposit(i), partition=i % 2)
    kit.broker.produce("other", b"poison", partition=0)
    for _ in range(50):
        p.step()
        kit.clock.advance(0.1)
    assert len(kit.uploader.received) == 610
    assert len(kit.dlq()) <= 150  # nothing more of the paused topic


def test_records_the_api_refuses_trip_the_breaker_too() -> None:
    kit = make_kit()
    kit.uploader.reject_if = lambda record: True
    for i in range(300):
        kit.broker.produce("deposits", deposit(i), partition=0)
    p = kit.started(window=1000, max_ratio=0.5)
    for _ in range(300):
        p.step()
        kit.clock.advance(0.1)
    assert p.tripped_topics == {"deposits"}


def test_refused_turns_a_counted_good_outcome_dead() -> None:
    breaker = DeadLetterBreaker(window=1000, max_ratio=0.5)
    for _ in range(100):
        breaker.record(False)
    assert not any(breaker.refused() for _ in range(50))  # 50 of 100
    assert breaker.refused()  # 51 of 100: the good outcomes became dead, none were added
