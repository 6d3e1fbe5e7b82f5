"""TopicMapping: decoded Avro record → ingest record."""

from __future__ import annotations

import enum
import io
import math
import uuid
from collections import OrderedDict
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import fastavro
import pytest

from connector.commands.send import complete_record
from connector.config.settings import DestinationSettings, MappingSettings
from connector.errors import MappingError
from connector.ingest.models import MODELS, FieldKind
from connector.ingest.validation import validate_record
from connector.mapping.compiled import TopicMapping, split_path, to_json_value
from connector.mapping.precedence import Source, derived_fields, derived_values, field_source

pytestmark = pytest.mark.unit

DESTINATION = DestinationSettings(
    base_url="https://gateway.example.com/apigw/ingest",
    account_id="acc-dest",
    workspace_id="ws-dest",
    auth_token="tok_test",  # type: ignore[arg-type]
)


def settings(endpoint: str = "gaming-activity", **kwargs: Any) -> MappingSettings:
    return MappingSettings.model_validate({"topic": "casino.bets", "endpoint": endpoint, **kwargs})


def compile_mapping(endpoint: str = "gaming-activity", **kwargs: Any) -> TopicMapping:
    return TopicMapping.from_settings(settings(endpoint, **kwargs), DESTINATION)


def bet_record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "bet_id": "bet-0001",
        "placed_at": datetime(2024, 1, 15, 12, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
        "player": {"id": 12345, "country": "MT", "segment": "VIP"},
        "stake": Decimal("12.50"),
        "win_amount": Decimal("25.00"),
        "currency": "EUR",
        "game_id": "starburst",
        "num_spins_played": 10,
        "auto_play": False,
        "game_release_date": None,
        "odds": 2.5,
        "session": {"id": uuid.UUID("12345678-1234-5678-1234-567812345678"), "channel": "web"},
        "internal_note": "not a model field",
    }
    record.update(overrides)
    return record


BET_FIELDS = {
    "user_id": "player.id",
    "event_id": "bet_id",
    "event_time": "placed_at",
    "wager_amount": "stake",
    "channel": "session.channel",
    "session_id": "session.id",
}


# --------------------------------------------------------------------------------------------
# End to end


def test_realistic_nested_record_maps_to_exact_ingest_record_in_model_order() -> None:
    mapping = compile_mapping(
        fields=BET_FIELDS,
        constants={"event_name": "Sports Betting", "source_system": "kafka"},
    )

    out = mapping.map(bet_record())

    expected = {
        "account_id": "acc-dest",
        "workspace_id": "ws-dest",
        "user_id": "12345",
        "event_category": "Gaming Activity",
        "event_name": "Sports Betting",
        "event_id": "bet-0001",
        "event_time": "2024-01-15T10:30:00.123Z",
        "wager_amount": 12.5,
        "win_amount": 25,
        "odds": 2.5,
        "num_spins_played": 10,
        "auto_play": False,
        "game_id": "starburst",
        "currency": "EUR",
        "channel": "web",
        "session_id": "12345678-1234-5678-1234-567812345678",
        "source_system": "kafka",
    }
    assert out == expected
    assert list(out) == list(expected)
    assert type(out["win_amount"]) is int
    assert validate_record("gaming-activity", out) == []


def test_mapping_identity_and_repr() -> None:
    mapping = compile_mapping(fields=BET_FIELDS)
    assert (mapping.topic, mapping.endpoint, mapping.destination) == (
        "casino.bets",
        "gaming-activity",
        "optikpi",
    )
    assert "plan" not in repr(mapping)


def test_record_decoded_by_fastavro_maps_to_a_valid_record() -> None:
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "Deposit",
            "fields": [
                {"name": "txn", "type": {"type": "string", "logicalType": "uuid"}},
                {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
                {"name": "player_id", "type": "long"},
                {
                    "name": "amount",
                    "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
                },
                {"name": "method", "type": {"type": "enum", "name": "Method", "symbols": ["card", "bank"]}},
                {"name": "payment_provider_id", "type": ["null", "string"], "default": None},
                {"name": "failure_reason", "type": ["null", "string"], "default": None},
            ],
        }
    )
    buffer = io.BytesIO()
    fastavro.schemaless_writer(
        buffer,
        schema,
        {
            "txn": "0b0e8d4c-8f6b-4d3c-9a4e-2f1c7f1d9a10",
            "at": datetime(2024, 1, 15, 10, 30, 0, 987654, tzinfo=UTC),
            "player_id": 77,
            "amount": Decimal("500.00"),
            "method": "bank",
            "payment_provider_id": "psp-1",
            "failure_reason": None,
        },
    )
    buffer.seek(0)
    decoded = fastavro.schemaless_reader(buffer, schema)
    assert isinstance(decoded, dict)
    mapping = compile_mapping(
        "deposit",
        fields={"user_id": "player_id", "event_id": "txn", "event_time": "at", "payment_method": "method"},
        constants={"event_name": "Successful Deposit"},
    )

    out = mapping.map(decoded)

    assert out == {
        "account_id": "acc-dest",
        "workspace_id": "ws-dest",
        "user_id": "77",
        "event_category": "Deposit",
        "event_name": "Successful Deposit",
        "event_id": "0b0e8d4c-8f6b-4d3c-9a4e-2f1c7f1d9a10",
        "event_time": "2024-01-15T10:30:00.987Z",
        "amount": 500,
        "payment_method": "bank",
        "payment_provider_id": "psp-1",
    }
    assert validate_record("deposit", out) == []


# --------------------------------------------------------------------------------------------
# Value conversion


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 1, 15, 10, 30, tzinfo=UTC), "2024-01-15T10:30:00.000Z"),
        (datetime(2024, 1, 15, 10, 30), "2024-01-15T10:30:00.000Z"),  # naive: already UTC
        (datetime(2024, 1, 15, 10, 30, 59, 999999, tzinfo=UTC), "2024-01-15T10:30:59.999Z"),
        (datetime(2024, 1, 15, 10, 30, 0, 1000, tzinfo=UTC), "2024-01-15T10:30:00.001Z"),
        (
            datetime(2024, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            "2023-12-31T19:30:00.000Z",
        ),
        (datetime(2024, 1, 15, 23, 0, tzinfo=timezone(timedelta(hours=-3))), "2024-01-16T02:00:00.000Z"),
        (datetime(999, 3, 4, 5, 6, 7), "0999-03-04T05:06:07.000Z"),
        (date(2024, 2, 29), "2024-02-29"),
        (date(12, 1, 2), "0012-01-02"),
        (time(1, 2, 3, 4999), "01:02:03.004"),
        (time(23, 59, 59), "23:59:59.000"),
        (Decimal("12.50"), 12.5),
        (Decimal("100.00"), 100),
        (Decimal("-0.00"), 0),
        (Decimal("1E+3"), 1000),
        (Decimal("0.1"), 0.1),
        (uuid.UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
        ("VIP", "VIP"),
        (7, 7),
        (1.25, 1.25),
        (True, True),
    ],
)
def test_scalar_conversions(value: Any, expected: Any) -> None:
    result = to_json_value(value, None, "f")
    assert result == expected
    assert type(result) is type(expected)


def test_conversion_is_recursive_inside_dicts_and_lists() -> None:
    value = {
        "when": datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        "items": [Decimal("1.5"), {"day": date(2024, 5, 6)}, (uuid.UUID(int=1),)],
        "nothing": None,
    }
    assert to_json_value(value, FieldKind.OBJECT, "custom_data") == {
        "when": "2024-05-06T07:08:09.000Z",
        "items": [1.5, {"day": "2024-05-06"}, ["00000000-0000-0000-0000-000000000001"]],
        "nothing": None,
    }


def test_subclasses_become_plain_json_types() -> None:
    class Colour(enum.StrEnum):
        RED = "red"

    class Size(enum.IntEnum):
        BIG = 3

    result = to_json_value(OrderedDict([("c", Colour.RED), ("s", Size.BIG)]), None, "f")
    assert result == {"c": "red", "s": 3}
    assert type(result) is dict
    assert type(result["c"]) is str
    assert type(result["s"]) is int


@pytest.mark.parametrize("value", [12345, 0, -7, 2**63 - 1])
def test_int_becomes_decimal_string_for_string_targets(value: int) -> None:
    assert to_json_value(value, FieldKind.STRING, "user_id") == str(value)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (True, FieldKind.STRING),  # a bool is not a numeric id
        (12, FieldKind.NUMBER),
        (12, FieldKind.INTEGER),
        (12, FieldKind.DATETIME),  # validation reports it; the mapping does not guess
        (12, None),  # a pass-through field has no kind to coerce to
        (1.5, FieldKind.STRING),
    ],
)
def test_no_other_coercion(value: Any, kind: FieldKind | None) -> None:
    result = to_json_value(value, kind, "f")
    assert result == value
    assert type(result) is type(value)


def test_object_targets_keep_dicts_lists_and_strings() -> None:
    mapping = compile_mapping("customers", fields={"user_id": "uid", "creation_timestamp": "at"})
    for custom in ({"tier": "gold", "since": date(2020, 1, 1)}, ["a", 1], '{"tier":"gold"}'):
        out = mapping.map({"uid": "u1", "at": datetime(2024, 1, 1, tzinfo=UTC), "custom_data": custom})
        expected = {"tier": "gold", "since": "2020-01-01"} if isinstance(custom, dict) else custom
        assert out["custom_data"] == expected


@pytest.mark.parametrize("value", [b"\x00\x01", bytearray(b"ab"), memoryview(b"ab")])
def test_bytes_are_rejected(value: Any) -> None:
    with pytest.raises(MappingError) as info:
        to_json_value(value, FieldKind.STRING, "game_id")
    assert info.value.field == "game_id"
    assert info.value.rule == "bytes"
    assert str(info.value) == "game_id: bytes cannot be sent as JSON"


def test_nested_bytes_name_the_place() -> None:
    mapping = compile_mapping("customers", fields={"user_id": "uid", "creation_timestamp": "at"})
    record = {"uid": "u", "at": "2024-01-01T00:00:00Z", "custom_data": {"blobs": [b"x"]}}
    with pytest.raises(MappingError) as info:
        mapping.map(record)
    assert info.value.field == "custom_data"
    assert info.value.rule == "bytes"
    assert "custom_data.blobs[0]" in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        math.nan,
        math.inf,
        -math.inf,
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
    ],
)
def test_non_finite_numbers_are_rejected(value: Any) -> None:
    mapping = compile_mapping(fields={"wager_amount": "stake"})
    with pytest.raises(MappingError) as info:
        mapping.map(bet_record(stake=value))
    assert info.value.field == "wager_amount"
    assert info.value.rule == "finite"
    assert str(info.value).startswith("wager_amount: not a finite number")


def test_non_finite_numbers_are_rejected_deep_inside_objects() -> None:
    mapping = compile_mapping("system-events", constants={"event_category": "SystemEvent"})
    with pytest.raises(MappingError) as info:
        mapping.map({"event_data": {"stats": [1.0, {"ratio": math.nan}]}})
    assert info.value.field == "event_data"
    assert info.value.rule == "finite"
    assert "event_data.stats[1].ratio" in info.value.message


def test_decimal_too_large_for_a_double_is_not_finite() -> None:
    with pytest.raises(MappingError) as info:
        to_json_value(Decimal("1E+400"), FieldKind.NUMBER, "amount")
    assert info.value.rule == "finite"


def test_datetime_that_leaves_the_calendar_in_utc_is_rejected() -> None:
    with pytest.raises(MappingError) as info:
        to_json_value(datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))), FieldKind.DATETIME, "t")
    assert info.value.rule == "range"


def test_unsupported_types_and_keys_are_rejected() -> None:
    with pytest.raises(MappingError, match="type set cannot be sent as JSON"):
        to_json_value({1, 2}, None, "f")
    with pytest.raises(MappingError, match="keys must be strings"):
        to_json_value({1: "a"}, FieldKind.OBJECT, "f")


def test_error_messages_never_contain_the_value() -> None:
    secret = "alice@example.com"
    mapping = compile_mapping(fields={"user_id": "player.id"})
    with pytest.raises(MappingError) as info:
        mapping.map(bet_record(player=secret))
    assert secret not in str(info.value)


# --------------------------------------------------------------------------------------------
# Source paths


def test_walking_into_a_non_record_is_a_mapping_error() -> None:
    mapping = compile_mapping(fields={"user_id": "player.id"})
    with pytest.raises(MappingError) as info:
        mapping.map(bet_record(player="12345"))
    assert info.value.field == "user_id"
    assert info.value.rule == "path"
    assert str(info.value) == "user_id: source path player.id: player is a str, not a record"


def test_walking_into_a_list_is_a_mapping_error() -> None:
    mapping = compile_mapping(fields={"game_id": "game.meta.id"})
    with pytest.raises(MappingError, match=r"game\.meta is a list, not a record"):
        mapping.map(bet_record(game={"meta": [1]}))


@pytest.mark.parametrize(
    "record",
    [
        bet_record(player=None),  # None on the way
        bet_record(player={"country": "MT"}),  # missing leaf
        {k: v for k, v in bet_record().items() if k != "player"},  # missing branch
        bet_record(player={"id": None}),  # None leaf
    ],
)
def test_missing_or_null_source_leaves_the_field_out(record: dict[str, Any]) -> None:
    mapping = compile_mapping(fields={"user_id": "player.id"})
    out = mapping.map(record)
    assert "user_id" not in out
    assert [e.field for e in validate_record("gaming-activity", out) if e.rule == "required"] == [
        "user_id",
        "event_name",
        "event_id",
        "event_time",
    ]


def test_map_values_are_reachable_by_key() -> None:
    mapping = compile_mapping(fields={"campaign_id": "attributes.campaign"})
    assert mapping.map({"attributes": {"campaign": "spring"}})["campaign_id"] == "spring"
    assert "campaign_id" not in mapping.map({"attributes": {}})


def test_deep_paths() -> None:
    mapping = compile_mapping(fields={"provider": "game.studio.name"})
    assert mapping.map({"game": {"studio": {"name": "NetEnt"}}})["provider"] == "NetEnt"


def test_a_decoded_value_that_is_not_a_record_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match="decoded value is a list, not a record"):
        compile_mapping().map([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["player..id", ".id", "player."])
def test_empty_path_parts_fail_at_compile_time(path: str) -> None:
    with pytest.raises(MappingError) as info:
        compile_mapping(fields={"user_id": path})
    assert info.value.field == "user_id"
    assert info.value.rule == "path"


def test_split_path() -> None:
    assert split_path("t", "a") == ("a",)
    assert split_path("t", "a.b.c") == ("a", "b", "c")


# --------------------------------------------------------------------------------------------
# copy_matching


def test_copy_matching_copies_model_fields_only_and_skips_nulls() -> None:
    mapping = compile_mapping(fields={"user_id": "player.id"})
    out = mapping.map(bet_record(currency=None))
    assert out["game_id"] == "starburst"
    assert "currency" not in out
    assert "internal_note" not in out
    assert "bet_id" not in out
    assert None not in out.values()


def test_copy_matching_off_copies_nothing() -> None:
    mapping = compile_mapping(fields={"user_id": "player.id"}, copy_matching=False)
    assert mapping.map(bet_record()) == {
        "account_id": "acc-dest",
        "workspace_id": "ws-dest",
        "user_id": "12345",
        "event_category": "Gaming Activity",
    }


def test_mapped_fields_win_over_same_named_source_fields() -> None:
    mapping = compile_mapping(fields={"game_id": "game.code"}, constants={"currency": "USD"})
    out = mapping.map(bet_record(game={"code": "book-of-dead"}))
    assert out["game_id"] == "book-of-dead"
    assert out["currency"] == "USD"


def test_copied_values_are_converted_for_their_target_kind() -> None:
    mapping = compile_mapping()
    out = mapping.map(
        {"user_id": 42, "event_time": datetime(2024, 1, 2, tzinfo=UTC), "odds": Decimal("1.75")}
    )
    assert out["user_id"] == "42"
    assert out["event_time"] == "2024-01-02T00:00:00.000Z"
    assert out["odds"] == 1.75


# --------------------------------------------------------------------------------------------
# Destination ids and fixed category


def test_destination_ids_and_category_are_defaults() -> None:
    out = compile_mapping(copy_matching=False).map({})
    assert out == {"account_id": "acc-dest", "workspace_id": "ws-dest", "event_category": "Gaming Activity"}


def test_source_fields_do_not_override_derived_values() -> None:
    out = compile_mapping().map({"account_id": "src", "workspace_id": "src", "event_category": "Casino"})
    assert (out["account_id"], out["workspace_id"], out["event_category"]) == (
        "acc-dest",
        "ws-dest",
        "Gaming Activity",
    )


def test_mapped_and_constant_ids_override_the_destination() -> None:
    mapping = compile_mapping(
        fields={"account_id": "tenant.account", "event_category": "category"},
        constants={"workspace_id": "ws-const"},
    )
    out = mapping.map({"tenant": {"account": "acc-src"}, "category": "Gaming Activity"})
    assert out == {
        "account_id": "acc-src",
        "workspace_id": "ws-const",
        "event_category": "Gaming Activity",
    }


def test_mapped_id_missing_in_the_record_is_not_replaced_by_the_destination() -> None:
    # The mapping said where account_id comes from; a record without it is a data problem.
    out = compile_mapping(fields={"account_id": "tenant"}).map({})
    assert "account_id" not in out


def test_category_constant_override() -> None:
    out = compile_mapping(constants={"event_category": "Casino"}).map({})
    assert out["event_category"] == "Casino"


def test_endpoints_without_category_get_none() -> None:
    for endpoint in ("customers", "extattributes"):
        out = TopicMapping.from_settings(settings(endpoint), DESTINATION).map({"event_category": "x"})
        assert out == {"account_id": "acc-dest", "workspace_id": "ws-dest"}


def test_each_destination_gets_its_own_ids() -> None:
    other = DestinationSettings(
        base_url="https://eu.example.com/apigw/ingest",
        account_id="acc-eu",
        workspace_id="ws-eu",
        auth_token="t",  # type: ignore[arg-type]
    )
    m = settings(destination="eu")
    out = TopicMapping.from_settings(m, other).map({})
    assert (out["account_id"], out["workspace_id"]) == ("acc-eu", "ws-eu")
    assert TopicMapping.from_settings(m, other).destination == "eu"


# --------------------------------------------------------------------------------------------
# Precedence: one rule (mapping.precedence) for the compiled mapping, the check and `send`

_ABSENT = object()


def _expected_source(in_fields: bool, constant: object, derived: bool, copy: bool) -> Source:
    # README.md, "Mapping rules": fields, then constants, then derived values, then copy_matching.
    if in_fields:
        return Source.FIELD
    if constant is not _ABSENT:
        return Source.LEFT_OUT if constant is None else Source.CONSTANT
    if derived:
        return Source.DERIVED
    return Source.COPY if copy else Source.NONE


@pytest.mark.parametrize("copy", [False, True])
@pytest.mark.parametrize("derived", [False, True])
@pytest.mark.parametrize("constant", [_ABSENT, None, "c"])
@pytest.mark.parametrize("in_fields", [False, True])
def test_field_source_precedence(in_fields: bool, constant: object, derived: bool, copy: bool) -> None:
    source = field_source(
        "x",
        fields={"x": "a.b"} if in_fields else {},
        constants={} if constant is _ABSENT else {"x": constant},
        derived=("x",) if derived else (),
        copy_matching=copy,
    )
    assert source is _expected_source(in_fields, constant, derived, copy)


def test_derived_fields_are_the_destination_ids_and_the_fixed_category() -> None:
    assert derived_fields(MODELS["deposit"]) == ("account_id", "workspace_id", "event_category")
    for endpoint in ("customers", "extattributes", "system-events"):
        assert derived_fields(MODELS[endpoint]) == ("account_id", "workspace_id")
    assert derived_values(MODELS["deposit"], DESTINATION) == {
        "account_id": "acc-dest",
        "workspace_id": "ws-dest",
        "event_category": "Deposit",
    }


@pytest.mark.parametrize("copy", [False, True])
@pytest.mark.parametrize(
    ("in_fields", "constant"),
    # Never in fields and constants at once: the settings refuse that.
    [(True, _ABSENT), (False, _ABSENT), (False, None), (False, "from-constant")],
)
@pytest.mark.parametrize("name", ["account_id", "event_category", "user_id"])
def test_compiled_mapping_follows_the_precedence(
    name: str, in_fields: bool, constant: object, copy: bool
) -> None:
    mapping = compile_mapping(
        "deposit",
        fields={name: "src.path"} if in_fields else {},
        constants={} if constant is _ABSENT else {name: constant},
        copy_matching=copy,
    )
    out = mapping.map({"src": {"path": "from-path"}, name: "from-copy"})
    derived = derived_values(MODELS["deposit"], DESTINATION)
    expected = {
        Source.FIELD: "from-path",
        Source.CONSTANT: "from-constant",
        Source.DERIVED: derived.get(name),
        Source.COPY: "from-copy",
    }.get(_expected_source(in_fields, constant, name in derived, copy))
    assert out.get(name) == expected


@pytest.mark.parametrize("name", ["account_id", "workspace_id", "event_category"])
def test_send_completes_records_by_the_same_precedence(name: str) -> None:
    # In `send` the record's own fields are the explicit ones: they win over derived values.
    assert complete_record("deposit", {name: "own"}, DESTINATION)[name] == "own"
    derived = derived_values(MODELS["deposit"], DESTINATION)
    assert complete_record("deposit", {}, DESTINATION)[name] == derived[name]
    assert "event_category" not in complete_record("customers", {}, DESTINATION)


# --------------------------------------------------------------------------------------------
# Constants


def test_constants_are_converted_once_and_coerced() -> None:
    mapping = compile_mapping(
        constants={
            "event_name": "Spin",
            "user_id": 7,
            "game_release_date": datetime(2023, 6, 1, 12, 0),  # YAML parses unquoted timestamps
            "number_of_reels": 5,
            "live_dealer_availability": True,
        },
        copy_matching=False,
    )
    out = mapping.map({})
    assert out["event_name"] == "Spin"
    assert out["user_id"] == "7"
    assert out["game_release_date"] == "2023-06-01T12:00:00.000Z"
    assert out["number_of_reels"] == 5
    assert out["live_dealer_availability"] is True


def test_object_constants_are_not_shared_between_records() -> None:
    mapping = compile_mapping("system-events", constants={"event_category": "Ops", "event_data": {"k": [1]}})
    first = mapping.map({})
    first["event_data"]["k"].append(2)
    assert mapping.map({})["event_data"] == {"k": [1]}


def test_null_constant_leaves_the_field_out_and_blocks_defaults() -> None:
    mapping = compile_mapping(constants={"account_id": None, "game_id": None})
    out = mapping.map(bet_record())
    assert "account_id" not in out
    assert "game_id" not in out


def test_constant_that_json_cannot_carry_fails_at_compile_time() -> None:
    with pytest.raises(MappingError) as info:
        compile_mapping(constants={"odds": math.nan})
    assert info.value.field == "odds"
    assert info.value.rule == "finite"


# --------------------------------------------------------------------------------------------
# Pass-through fields and order


def test_extra_fields_follow_model_fields_in_mapping_order() -> None:
    mapping = compile_mapping(
        fields={"zeta": "z", "user_id": "uid", "alpha": "a"},
        constants={"mid": 1, "event_name": "Spin"},
        copy_matching=False,
    )
    out = mapping.map({"z": 1, "uid": "u", "a": 2})
    assert list(out) == [
        "account_id",
        "workspace_id",
        "user_id",
        "event_category",
        "event_name",
        "zeta",
        "alpha",
        "mid",
    ]


def test_extra_fields_are_not_coerced() -> None:
    out = compile_mapping(fields={"player_number": "n"}).map({"n": 42})
    assert out["player_number"] == 42


def test_none_values_never_appear() -> None:
    mapping = compile_mapping(fields=BET_FIELDS)
    record = {key: None for key in bet_record()}
    assert mapping.map(record) == {
        "account_id": "acc-dest",
        "workspace_id": "ws-dest",
        "event_category": "Gaming Activity",
    }


# --------------------------------------------------------------------------------------------
# system-events


def test_system_events_have_no_fixed_category_and_no_user_id() -> None:
    mapping = compile_mapping(
        "system-events",
        fields={"event_id": "id", "event_time": "at", "event_data": "payload"},
        constants={"event_category": "SystemEvent", "event_name": "Maintenance"},
    )
    out = mapping.map(
        {
            "id": "e-1",
            "at": datetime(2024, 3, 1, tzinfo=UTC),
            "payload": {"window_minutes": 30, "starts": datetime(2024, 3, 2, tzinfo=UTC)},
            "user_id": "u-1",
        }
    )
    assert out == {
        "account_id": "acc-dest",
        "workspace_id": "ws-dest",
        "event_category": "SystemEvent",
        "event_name": "Maintenance",
        "event_id": "e-1",
        "event_time": "2024-03-01T00:00:00.000Z",
        "event_data": {"window_minutes": 30, "starts": "2024-03-02T00:00:00.000Z"},
    }
    assert validate_record("system-events", out) == []


def test_system_events_category_is_copied_when_not_set() -> None:
    out = compile_mapping("system-events").map({"event_category": "Ops", "event_data": '{"a":1}'})
    assert out["event_category"] == "Ops"
    assert out["event_data"] == '{"a":1}'


def test_mapping_error_str() -> None:
    assert str(MappingError("user_id", "it broke")) == "user_id: it broke"
    error = MappingError("user_id", "it broke")
    assert (error.field, error.message, error.rule) == ("user_id", "it broke", "mapping")
