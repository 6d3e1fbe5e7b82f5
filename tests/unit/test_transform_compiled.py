"""The compiled transform gives the reference transform's bytes, or its Poison, for every payload."""

from __future__ import annotations

import io

import fastavro
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import connector.transform.compiled as compiled_module
from connector.config.settings import MappingSettings
from connector.errors import SchemaError
from connector.ingest import jsjson
from connector.mapping.compiled import TopicMapping
from connector.transform.compiled import compile_transform
from connector.transform.reference import build_reference
from connector.transform.serialize import float_is_plain, number_is_plain
from connector.transform.spec import TransformSpec
from tests.unit.transform_cases import DESTINATION, cases, comparable, every_type_cases

pytestmark = pytest.mark.unit

SLOW_DATA = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def assert_same(spec: TransformSpec, payloads: list[bytes]) -> None:
    try:
        reference = build_reference(spec)
    except SchemaError as exc:
        with pytest.raises(type(exc)) as caught:
            compile_transform(spec)
        assert str(caught.value) == str(exc)
        return
    compiled = compile_transform(spec)
    assert hasattr(compiled, "__source__"), "a record schema must compile"
    for payload in payloads:
        assert comparable(compiled(payload)) == comparable(reference(payload)), (payload, compiled.__source__)


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_DATA)
@given(cases())
def test_generated_schemas_mappings_and_payloads(case: tuple[TransformSpec, list[bytes]]) -> None:
    assert_same(*case)


@settings(max_examples=150, deadline=None, suppress_health_check=SLOW_DATA)
@given(cases(with_reader=True))
def test_generated_cases_read_with_a_reader_schema(case: tuple[TransformSpec, list[bytes]]) -> None:
    assert_same(*case)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**60), 2**60)))
def test_numbers_called_plain_are_written_by_orjson_as_by_javascript(value: float) -> None:
    if number_is_plain(value):
        assert orjson.dumps(value) == jsjson.dumps_bytes(value)
    if isinstance(value, float) and float_is_plain(value):
        assert orjson.dumps(value) == jsjson.dumps_bytes(value)


def test_names_and_constants_with_quotes_and_newlines_stay_data() -> None:
    settings_ = MappingSettings.model_validate(
        {
            "topic": "t",
            "endpoint": "account",
            "fields": {
                "we'ird\n\"key": "bet_id",
                "user_id": "bet_id",
                "event_id": "bet_id",
                "__import__('os')": "bet_id",
            },
            "constants": {
                "x\\'\"": "v'\n",
                "event_name": "')\nraise SystemExit\n#",
                "event_time": "2024-01-15T10:30:00Z",
            },
        }
    )
    mapping = TopicMapping.from_settings(settings_, DESTINATION)
    schema = {"type": "record", "name": "R", "fields": [{"name": "bet_id", "type": "string"}]}
    spec = TransformSpec(mapping, schema, "R (writer)")
    payload = b"\x06b-1"
    body = compile_transform(spec)(payload)
    assert body == build_reference(spec)(payload)
    assert isinstance(body, bytes) and b'"we\'ird\\n\\"key":"b-1"' in body


@settings(max_examples=150, deadline=None, suppress_health_check=SLOW_DATA)
@given(every_type_cases())
def test_every_avro_type_plain_and_nullable_reaches_the_body_as_the_reference_writes_it(
    case: tuple[TransformSpec, list[bytes]],
) -> None:
    assert_same(*case)


def test_integral_doubles_reach_orjson_as_the_integers_javascript_prints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A win of 20.0 or a balance of -0.0 is common; the record must not fall back to the slow path.
    def slow_path(value: object) -> bytes:
        raise AssertionError(f"sent to dumps_bytes: {value}")

    monkeypatch.setitem(compiled_module._NAMES, "dumps_bytes", slow_path)
    settings_ = MappingSettings.model_validate(
        {
            "topic": "t",
            "endpoint": "account",
            "fields": {"user_id": "bet_id", "event_id": "bet_id", "win": "win", "odds": "odds"},
            "constants": {"event_name": "Bet", "event_time": "2024-01-15T10:30:00Z"},
        }
    )
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "bet_id", "type": "string"},
            {"name": "win", "type": "double"},
            {"name": "odds", "type": ["null", "double"]},
        ],
    }
    spec = TransformSpec(TopicMapping.from_settings(settings_, DESTINATION), schema, "R (writer)")
    transform = compile_transform(spec)
    parsed = fastavro.parse_schema(schema)
    for win, odds in [(20.0, -0.0), (-0.0, None), (2.0**53, 1.5)]:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, {"bet_id": "b-1", "win": win, "odds": odds})
        body = transform(buffer.getvalue())
        assert isinstance(body, bytes)
        assert body == build_reference(spec)(buffer.getvalue())
        assert orjson.loads(body)["win"] == int(win)
