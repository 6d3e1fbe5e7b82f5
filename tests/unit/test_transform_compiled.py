"""The compiled transform gives the reference transform's bytes, or its Poison, for every payload."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from connector.errors import SchemaError
from connector.transform.compiled import compile_transform
from connector.transform.reference import build_reference
from connector.transform.spec import TransformSpec
from tests.unit.transform_cases import cases, comparable

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
