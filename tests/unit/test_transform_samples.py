"""The compiled transform on the bundled samples: the reference's results for every demo mapping,
poison included, and the work it proves away for the bet mapping."""

from __future__ import annotations

import random
from functools import partial
from typing import Any

import pytest

from connector.avro.decoding import encode_confluent, encode_raw
from connector.avro.schemas import load_schema, parse
from connector.config.settings import MappingSettings
from connector.devtools.samples import SAMPLE_KINDS, make_messages, sample_mappings
from connector.mapping.compiled import TopicMapping
from connector.transform import build as build_module
from connector.transform.build import build_transform
from connector.transform.compiled import compile_transform, transform_source
from connector.transform.reference import build_reference
from connector.transform.spec import Poison, TransformSpec
from tests.unit.transform_cases import DESTINATION, comparable

pytestmark = pytest.mark.unit


def spec_for(kind: str, reader: dict[str, Any] | None = None) -> TransformSpec:
    entry = sample_mappings()[kind]
    mapping = TopicMapping.from_settings(MappingSettings.model_validate(entry), DESTINATION)
    label = "reader" if reader is not None else ""
    return TransformSpec(mapping, load_schema(entry["schema"]), f"{kind} (schema id 7)", reader, label)


def payloads(kind: str, schema: dict[str, Any], wire_format: str) -> list[bytes]:
    parsed = parse(schema)
    if wire_format == "avro":
        encode = partial(encode_raw, parsed)
        messages = make_messages(kind, 400, encode, random.Random(11), 0.3, wire_format="avro")
        return [m.value for m in messages]
    encode = partial(encode_confluent, 7, parsed)
    unknown = partial(encode_confluent, 99, parsed)
    messages = make_messages(kind, 400, encode, random.Random(11), 0.3, unknown)
    # The transform gets what follows the Confluent header; framing errors are not its job.
    return [m.value[5:] for m in messages if len(m.value) >= 5 and m.value[0] == 0]


@pytest.mark.parametrize("wire_format", ["confluent-avro", "avro"])
@pytest.mark.parametrize("kind", SAMPLE_KINDS)
def test_every_demo_mapping_gives_the_reference_results(kind: str, wire_format: str) -> None:
    spec = spec_for(kind)
    reference, compiled = build_reference(spec), compile_transform(spec)
    results = []
    for payload in payloads(kind, dict(spec.writer_schema), wire_format):
        expected = reference(payload)
        assert comparable(compiled(payload)) == comparable(expected)
        results.append(expected.stage if isinstance(expected, Poison) else "body")
    assert {"body", "DECODE", "VALIDATE"} <= set(results)


@pytest.mark.parametrize(("writer", "reader"), [("bet", "bet_v2"), ("bet_v2", "bet")])
def test_bets_read_with_the_other_version_as_reader(writer: str, reader: str) -> None:
    entry = sample_mappings()["bet"]
    mapping = TopicMapping.from_settings(MappingSettings.model_validate(entry), DESTINATION)
    writer_schema, reader_schema = load_schema(writer), load_schema(reader)
    spec = TransformSpec(mapping, writer_schema, "Bet (schema id 7)", reader_schema, "Bet (reader)")
    reference, compiled = build_reference(spec), compile_transform(spec)
    for payload in payloads("bet", writer_schema, "avro"):
        assert comparable(compiled(payload)) == comparable(reference(payload))


def test_the_bet_transform_reads_only_what_the_schema_has_and_checks_only_what_can_fail() -> None:
    source = transform_source(spec_for("bet"))
    # copy_matching over the model's 71 fields: only the schema's currency and money_type remain.
    assert sum(1 for line in source.splitlines() if line.strip().startswith("out[")) == 20
    assert "'username'" not in source
    # Enums, timestamps and fixed values cannot fail; the two required plain strings can be blank.
    assert source.count("errors.append") == 2
    assert "check_" in source and "user_id" in source and "event_id" in source
    assert "orjson_dumps(out)" in source
    # The mapped timestamp is read as a long and formatted from it.
    assert "isoformat" not in source and "r['placed_at'] = text_" in source


def test_a_schema_that_is_not_a_record_gets_the_reference_transform() -> None:
    spec = spec_for("bet")
    spec = TransformSpec(spec.mapping, {"type": "array", "items": "string"}, "strings (writer)")
    compiled, reference = compile_transform(spec), build_reference(spec)
    assert not hasattr(compiled, "__source__")
    for payload in (b"\x02\x02a\x00", b"", b"\xff"):
        assert comparable(compiled(payload)) == comparable(reference(payload))


def test_build_transform_falls_back_to_the_reference_when_compiling_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(spec: TransformSpec) -> Any:
        raise RuntimeError("compiler bug")

    spec = spec_for("deposit")
    assert hasattr(build_transform(spec), "__source__")
    monkeypatch.setattr(build_module, "compile_transform", broken)
    transform = build_transform(spec)
    assert not hasattr(transform, "__source__")
    payload = payloads("deposit", dict(spec.writer_schema), "avro")[0]
    assert comparable(transform(payload)) == comparable(build_reference(spec)(payload))


def test_the_pipeline_and_the_workers_get_the_compiled_transform() -> None:
    from connector.transform.factory import make_transform

    assert hasattr(make_transform(spec_for("bet")), "__source__")
