"""connector/samples.py: sample records are valid Avro, deterministic, and poison fails where it says."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.validation import validate

from connector.avro.decoding import RawAvroDecoder, encode_confluent, encode_raw
from connector.avro.schemas import load_schema, parse
from connector.config.settings import DestinationSettings, MappingSettings
from connector.devtools.samples import (
    MAP_POISON_FIELDS,
    POISON_HEADER,
    SAMPLE_KINDS,
    SampleMessage,
    make_messages,
    player_id_of,
    sample_mappings,
    sample_record,
)
from connector.errors import DecodeError, MappingError
from connector.ingest.models import MODELS
from connector.ingest.validation import validate_record
from connector.mapping.compiled import TopicMapping

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DEMO_MAPPINGS = REPO / "connector" / "devtools" / "demo_mappings.yaml"
DESTINATION = DestinationSettings.model_validate(
    {
        "base_url": "http://127.0.0.1:8088/apigw/ingest",
        "account_id": "acc-1",
        "workspace_id": "ws-1",
        "auth_token": "t",
    }
)


def confluent_decode(schema: dict[str, Any], schema_id: int, value: bytes) -> dict[str, Any]:
    """What ConfluentAvroDecoder does with a registry that knows only `schema_id`."""
    if not value or value[0] != 0 or len(value) < 5:
        raise DecodeError("framing")
    if int.from_bytes(value[1:5], "big") != schema_id:
        raise DecodeError("unknown schema id")
    return RawAvroDecoder(schema).decode(value[5:])


def mappings_under_test() -> Iterator[tuple[str, str, MappingSettings]]:
    """The demo's mapping file: the poison promises are made under it."""
    for kind, entry in sample_mappings().items():
        yield f"demo:{kind}", kind, MappingSettings.model_validate(entry)


MAPPINGS = list(mappings_under_test())


@pytest.mark.parametrize("kind", SAMPLE_KINDS)
def test_every_sample_record_is_valid_for_its_schema(kind: str) -> None:
    parsed = parse(load_schema(kind))
    for seed in range(3):
        rng = random.Random(seed)
        for index in range(150):
            record = sample_record(kind, rng, index)
            assert validate(record, parsed, raise_errors=True)


@pytest.mark.parametrize("kind", SAMPLE_KINDS)
def test_samples_round_trip_through_both_decoders(kind: str) -> None:
    schema = load_schema(kind)
    parsed = parse(schema)
    rng = random.Random(3)
    raw = RawAvroDecoder(schema)
    for index in range(100):
        record = sample_record(kind, rng, index)
        assert raw.decode(encode_raw(parsed, record)) == record
        assert confluent_decode(schema, 9, encode_confluent(9, parsed, record)) == record


def test_sample_kinds_are_the_schema_files() -> None:
    assert set(SAMPLE_KINDS) <= {p.stem for p in (REPO / "schemas").glob("*.avsc")}
    with pytest.raises(ValueError, match="unknown sample kind"):
        sample_record("lottery", random.Random(1), 0)


def _messages(kind: str, seed: int, count: int, rate: float, **kwargs: Any) -> list[SampleMessage]:
    parsed = parse(load_schema(kind))
    return make_messages(
        kind,
        count,
        partial(encode_confluent, 9, parsed),
        random.Random(seed),
        poison_rate=rate,
        unknown_schema_id_encode=partial(encode_confluent, 4242, parsed),
        **kwargs,
    )


def test_deterministic_for_a_seed() -> None:
    for kind in SAMPLE_KINDS:
        assert _messages(kind, 5, 50, 0.3) == _messages(kind, 5, 50, 0.3)
        assert _messages(kind, 5, 50, 0.3) != _messages(kind, 6, 50, 0.3)


@pytest.mark.parametrize("kind", SAMPLE_KINDS)
def test_keys_headers_and_values(kind: str) -> None:
    schema = load_schema(kind)
    for message in _messages(kind, 1, 60, 0.0):
        record = confluent_decode(schema, 9, message.value)
        assert message.key == player_id_of(kind, record).encode()
        assert ("source", b"sample-generator") in message.headers
        assert ("sample.kind", kind.encode()) in message.headers
        assert message.poison is None and all(name != POISON_HEADER for name, _ in message.headers)


def test_realistic_values() -> None:
    rng = random.Random(8)
    bets = [sample_record("bet", rng, i) for i in range(300)]
    assert {b["currency"] for b in bets} == {"EUR", "GBP", "USD", "SEK"}
    assert all(b["stake"].as_tuple().exponent == -2 and b["stake"] > 0 for b in bets)
    assert all(b["placed_at"].tzinfo is not None for b in bets)
    assert {b["status"] for b in bets} >= {"OPEN", "WON", "LOST"}
    assert any(b["odds"] is not None for b in bets) and any(b["odds"] is None for b in bets)
    # One player, one market: the currency is a property of the player.
    by_player: dict[str, set[str]] = {}
    for b in bets:
        by_player.setdefault(b["player"]["id"], set()).add(b["currency"])
    assert all(len(currencies) == 1 for currencies in by_player.values())
    # Event times advance with the index.
    assert bets[0]["placed_at"] < bets[-1]["placed_at"]


def test_poison_rate_zero_and_one() -> None:
    for kind in SAMPLE_KINDS:
        assert all(m.poison is None for m in _messages(kind, 2, 80, 0.0))
        poisoned = _messages(kind, 2, 80, 1.0)
        assert all(m.poison is not None for m in poisoned)
        stages = Counter(m.poison for m in poisoned)
        expected = {"DECODE", "VALIDATE"} | ({"MAP"} if kind in MAP_POISON_FIELDS else set())
        assert set(stages) == expected
        for m in poisoned:
            assert (POISON_HEADER, m.poison.encode()) in m.headers  # type: ignore[union-attr]


def test_bad_arguments() -> None:
    encode = partial(encode_raw, parse(load_schema("bet")))
    with pytest.raises(ValueError, match="unknown sample kind"):
        make_messages("poker_hand", 1, encode, random.Random(1))
    with pytest.raises(ValueError, match="poison_rate"):
        make_messages("bet", 1, encode, random.Random(1), poison_rate=1.5)


@pytest.mark.parametrize(("label", "kind", "settings"), MAPPINGS, ids=[m[0] for m in MAPPINGS])
def test_mapping_targets_and_sources_exist(label: str, kind: str, settings: MappingSettings) -> None:
    model = MODELS[settings.endpoint]
    schema = load_schema(kind)
    for target, path in settings.fields.items():
        assert target in model.fields, f"{label}: {target} is not a field of {settings.endpoint}"
        node: Any = schema
        for part in path.split("."):
            fields = {f["name"]: f["type"] for f in node["fields"]}
            assert part in fields, f"{label}: {path} is not in schema {kind}"
            node = fields[part]
    poison_field = MAP_POISON_FIELDS.get(kind)
    if poison_field is not None:
        # The MAP promise: the NaN field reaches a number field of the model (by name or by copy).
        targets = [t for t, p in settings.fields.items() if p == poison_field]
        if settings.copy_matching and poison_field in model.fields:
            targets.append(poison_field)
        assert targets, f"{label}: {poison_field} is not mapped"


@pytest.mark.parametrize(("label", "kind", "settings"), MAPPINGS, ids=[m[0] for m in MAPPINGS])
def test_poison_fails_at_its_stage_and_clean_messages_pass(
    label: str, kind: str, settings: MappingSettings
) -> None:
    schema = load_schema(kind)
    mapping = TopicMapping.from_settings(settings, DESTINATION)
    seen: Counter[str] = Counter()
    for message in _messages(kind, 17, 300, 0.5):
        stage = _first_failing_stage(schema, mapping, message.value)
        assert stage == message.poison, f"{label}: a {message.poison} message failed at {stage}"
        seen[str(stage)] += 1
    assert seen["None"] > 0 and seen["DECODE"] > 0 and seen["VALIDATE"] > 0
    assert (seen["MAP"] > 0) == (kind in MAP_POISON_FIELDS)


def _first_failing_stage(schema: dict[str, Any], mapping: TopicMapping, value: bytes) -> str | None:
    try:
        record = confluent_decode(schema, 9, value)
    except DecodeError:
        return "DECODE"
    try:
        mapped = mapping.map(record)
    except MappingError:
        return "MAP"
    return "VALIDATE" if validate_record(mapping.endpoint, mapped) else None


def test_map_poison_is_a_nan_in_a_valid_record() -> None:
    for kind, field_name in MAP_POISON_FIELDS.items():
        schema = load_schema(kind)
        poisoned = [m for m in _messages(kind, 4, 200, 1.0) if m.poison == "MAP"]
        assert poisoned
        for message in poisoned:
            assert math.isnan(confluent_decode(schema, 9, message.value)[field_name])


@pytest.mark.parametrize("kind", SAMPLE_KINDS)
def test_raw_wire_format_decode_poison(kind: str) -> None:
    schema = load_schema(kind)
    parsed = parse(schema)
    messages = make_messages(
        kind, 200, partial(encode_raw, parsed), random.Random(21), poison_rate=0.5, wire_format="avro"
    )
    decoder = RawAvroDecoder(schema)
    decode_poison = 0
    for message in messages:
        if message.poison == "DECODE":
            decode_poison += 1
            with pytest.raises(DecodeError):
                decoder.decode(message.value)
        else:
            decoder.decode(message.value)
    assert decode_poison > 0


def test_decode_poison_variants_all_occur() -> None:
    schema = load_schema("bet")
    reasons: Counter[str] = Counter()
    for message in _messages("bet", 30, 400, 1.0):
        if message.poison != "DECODE":
            continue
        value = message.value
        if value[:1] != b"\x00":
            reasons["magic"] += 1
        elif len(value) < 5:
            reasons["short"] += 1
        elif value[1:5] != (9).to_bytes(4, "big"):
            reasons["unknown id"] += 1
        else:
            with pytest.raises(DecodeError):
                RawAvroDecoder(schema).decode(value[5:])
            reasons["payload"] += 1
    assert set(reasons) >= {"magic", "unknown id", "payload"}


def test_every_sample_kind_has_a_demo_mapping() -> None:
    mappings = sample_mappings()
    assert set(mappings) == set(SAMPLE_KINDS)
    for kind, entry in mappings.items():
        settings = MappingSettings.model_validate(entry)
        assert load_schema(settings.schema_path or "") == load_schema(kind)
    assert len({m["topic"] for m in mappings.values()}) == len(mappings)


def test_fastavro_is_what_validates() -> None:
    # Guard for the tests above: a wrong datum must really be rejected by `validate`.
    parsed = parse(load_schema("deposit"))
    record = sample_record("deposit", random.Random(1), 0)
    with pytest.raises(fastavro.validation.ValidationError):
        validate({**record, "amount": "12.00"}, parsed, raise_errors=True)
