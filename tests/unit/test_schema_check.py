"""The static check of a mapping against its Avro schema and the endpoint model."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from connector.config.settings import MappingSettings
from connector.mapping.check import CheckIssue, CheckResult, check_mapping

pytestmark = pytest.mark.unit

TIMESTAMP_MILLIS = {"type": "long", "logicalType": "timestamp-millis"}

BET_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Bet",
    "namespace": "com.example.casino",
    "fields": [
        {"name": "bet_id", "type": "string"},
        {"name": "placed_at", "type": TIMESTAMP_MILLIS},
        {
            "name": "player",
            "type": {
                "type": "record",
                "name": "Player",
                "fields": [
                    {"name": "id", "type": "long"},
                    {"name": "country", "type": ["null", "string"], "default": None},
                    {
                        "name": "segment",
                        "type": {"type": "enum", "name": "Segment", "symbols": ["VIP", "REGULAR"]},
                    },
                    {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
                ],
            },
        },
        {"name": "stake", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
        {"name": "spins", "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 0}},
        {"name": "currency", "type": "string"},
        {"name": "odds", "type": "double"},
        {
            "name": "game",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "Game",
                    "fields": [
                        {"name": "code", "type": "string"},
                        {"name": "released", "type": {"type": "int", "logicalType": "date"}},
                    ],
                },
            ],
            "default": None,
        },
        {"name": "attributes", "type": {"type": "map", "values": "string"}},
        {"name": "raw", "type": "bytes"},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 16}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "previous_player", "type": ["null", "Player"], "default": None},
        {"name": "spin_count", "type": "int"},
        {"name": "won", "type": "boolean"},
        {"name": "placed_on", "type": "string"},
        {"name": "local_time", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
        {"name": "amount_or_label", "type": ["null", "string", "long"]},
        {"name": "flag_or_text", "type": ["string", "boolean"]},
        {"name": "flag_or_blob", "type": ["boolean", "bytes"]},
        {"name": "nothing", "type": "null"},
    ],
}

GOOD_FIELDS = {
    "user_id": "player.id",
    "event_id": "bet_id",
    "event_time": "placed_at",
    "wager_amount": "stake",
}


def settings(endpoint: str = "gaming-activity", **kwargs: Any) -> MappingSettings:
    return MappingSettings.model_validate({"topic": "casino.bets", "endpoint": endpoint, **kwargs})


def check(
    fields: dict[str, str] | None = None,
    constants: dict[str, Any] | None = None,
    endpoint: str = "gaming-activity",
    schema: dict[str, Any] | None = BET_SCHEMA,
    **kwargs: Any,
) -> CheckResult:
    m = settings(
        endpoint,
        fields=GOOD_FIELDS if fields is None else fields,
        constants={"event_name": "Sports Betting"} if constants is None else constants,
        **kwargs,
    )
    return check_mapping(m, schema, "inline")


def issues_for(result: CheckResult, field: str) -> list[CheckIssue]:
    return [issue for issue in result.issues if issue.field == field]


def only_issue(result: CheckResult, field: str, level: str) -> CheckIssue:
    found = [issue for issue in issues_for(result, field) if issue.level == level]
    assert len(found) == 1, result.issues
    return found[0]


# --------------------------------------------------------------------------------------------
# Good mappings


def test_good_mapping_has_no_issues() -> None:
    result = check()
    assert result.issues == ()
    assert result.ok
    assert (result.topic, result.endpoint, result.schema_source) == (
        "casino.bets",
        "gaming-activity",
        "inline",
    )


def test_result_splits_errors_and_warnings() -> None:
    result = check(fields={**GOOD_FIELDS, "game_id": "nope", "channel": "placed_on"})
    assert not result.ok
    assert [i.field for i in result.errors] == ["game_id"]
    assert [i.field for i in result.warnings] == ["channel"]


def test_every_compatible_source_type_passes() -> None:
    result = check(
        fields={
            **GOOD_FIELDS,
            "game_id": "player.segment",  # enum → string
            "bonus_id": "player.ref",  # uuid → string
            "campaign_id": "spin_count",  # int → string
            "win_amount": "spin_count",  # int → number
            "loss_amount": "player.id",  # long → number
            "odds": "odds",  # double → number
            "num_spins_played": "spin_count",  # int → integer
            "remaining_spins": "spins",  # decimal with scale 0 → integer
            "auto_play": "won",
            "free_spin_expiry_date": "local_time",
            "game_title": "amount_or_label",  # every branch fits a string
        }
    )
    assert result.issues == ()


def test_object_targets_accept_records_maps_and_strings() -> None:
    for source in ("player", "attributes", "bet_id", "game"):
        result = check(
            endpoint="customers",
            fields={"user_id": "player.id", "creation_timestamp": "placed_at", "custom_data": source},
            constants={},
            copy_matching=False,
        )
        assert result.issues == (), (source, result.issues)


def test_date_target_accepts_avro_date() -> None:
    result = check(
        endpoint="customers",
        fields={"user_id": "player.id", "creation_timestamp": "placed_at", "date_of_birth": "game.released"},
        constants={},
        copy_matching=False,
    )
    assert result.issues == ()


def test_schema_is_not_modified() -> None:
    before = copy.deepcopy(BET_SCHEMA)
    check(fields={**GOOD_FIELDS, "game_id": "game.code"})
    assert before == BET_SCHEMA


# --------------------------------------------------------------------------------------------
# Required fields


def test_missing_required_field_is_an_error_naming_it() -> None:
    fields = {k: v for k, v in GOOD_FIELDS.items() if k != "event_id"}
    issue = only_issue(check(fields=fields), "event_id", "error")
    assert "required field event_id is not mapped" in issue.message
    assert "no top-level field 'event_id'" in issue.message


def test_missing_required_without_copy_matching_does_not_mention_the_schema() -> None:
    fields = {k: v for k, v in GOOD_FIELDS.items() if k != "event_time"}
    issue = only_issue(check(fields=fields, copy_matching=False), "event_time", "error")
    assert "top-level" not in issue.message


def test_missing_constant_field_is_an_error() -> None:
    only_issue(check(constants={}), "event_name", "error")


def test_copy_matching_covers_required_fields_from_same_named_source_fields() -> None:
    schema = {
        "type": "record",
        "name": "E",
        "fields": [
            {"name": "user_id", "type": "string"},
            {"name": "event_id", "type": "string"},
            {"name": "event_name", "type": "string"},
            {"name": "event_time", "type": TIMESTAMP_MILLIS},
        ],
    }
    assert check(fields={}, constants={}, schema=schema).issues == ()
    off = check(fields={}, constants={}, schema=schema, copy_matching=False)
    assert sorted(i.field for i in off.errors) == ["event_id", "event_name", "event_time", "user_id"]


def test_destination_ids_and_fixed_category_need_no_mapping() -> None:
    result = check(copy_matching=False)
    assert result.issues == ()


def test_system_events_need_an_event_category() -> None:
    fields = {"event_id": "bet_id", "event_time": "placed_at", "event_data": "attributes"}
    result = check(endpoint="system-events", fields=fields)
    issue = only_issue(result, "event_category", "error")
    assert "system-events has no fixed category" in issue.message
    assert [i.field for i in result.errors] == ["event_category"]

    fixed = check(
        endpoint="system-events", fields=fields, constants={"event_name": "x", "event_category": "Ops"}
    )
    assert fixed.issues == ()


def test_null_constant_for_a_required_field_is_an_error() -> None:
    result = check(constants={"event_name": None})
    only_issue(result, "event_name", "error")
    only_issue(result, "event_name", "warning")


# --------------------------------------------------------------------------------------------
# Source paths


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("player.idd", "'player' has no field 'idd' (did you mean id?)"),
        ("bet_idd", "the record has no field 'bet_idd' (did you mean bet_id?)"),
        ("game.cod", "'game' has no field 'cod' (did you mean code?)"),
        ("player.zzzzz", "(fields there: id, country, segment, ref)"),
    ],
)
def test_unknown_source_path_is_an_error_with_close_names(path: str, expected: str) -> None:
    issue = only_issue(check(fields={**GOOD_FIELDS, "user_id": path}), "user_id", "error")
    assert f"source path {path!r} not found" in issue.message
    assert expected in issue.message


def test_unknown_path_is_reported_once() -> None:
    result = check(fields={**GOOD_FIELDS, "user_id": "player.idd"})
    assert len(result.issues) == 1


@pytest.mark.parametrize(
    ("path", "what"),
    [("bet_id.x", "'bet_id' is a string"), ("tags.first", "'tags' is an array"), ("player.id.x", "a long")],
)
def test_path_through_a_non_record_is_an_error(path: str, what: str) -> None:
    issue = only_issue(check(fields={**GOOD_FIELDS, "game_id": path}), "game_id", "error")
    assert what in issue.message
    assert "not a record" in issue.message


def test_paths_walk_nullable_unions_named_references_and_maps() -> None:
    result = check(
        fields={
            **GOOD_FIELDS,
            "game_id": "game.code",
            "provider": "previous_player.segment",
            "campaign_id": "attributes.campaign",
        }
    )
    assert result.issues == ()


def test_empty_path_part_is_an_error() -> None:
    issue = only_issue(check(fields={**GOOD_FIELDS, "game_id": "game..code"}), "game_id", "error")
    assert "empty part" in issue.message


def test_namespaced_references_resolve() -> None:
    schema = {
        "type": "record",
        "name": "Outer",
        "namespace": "a.b",
        "fields": [
            {
                "name": "p",
                "type": {
                    "type": "record",
                    "name": "P",
                    "namespace": "x.y",
                    "fields": [
                        {"name": "id", "type": "string"},
                    ],
                },
            },
            {"name": "q", "type": ["null", "x.y.P"]},
            {
                "name": "r",
                "type": {
                    "type": "record",
                    "name": "c.d.R",
                    "fields": [
                        {"name": "inner", "type": "P"},  # not in c.d: resolved leniently by short name
                    ],
                },
            },
        ],
    }
    fields = {"user_id": "q.id", "event_id": "r.inner.id", "event_time": "p.id"}
    result = check(fields=fields, schema=schema, copy_matching=False)
    assert [i.field for i in result.errors] == []


# --------------------------------------------------------------------------------------------
# Types


@pytest.mark.parametrize(
    ("target", "source", "message"),
    [
        ("user_id", "won", "source won has type boolean, which is not compatible with string"),
        ("game_id", "odds", "type double, which is not compatible with string"),
        ("num_spins_played", "odds", "type double, which is not compatible with integer"),
        ("num_spins_played", "stake", "type bytes (decimal), which is not compatible with integer"),
        ("wager_amount", "placed_on", "type string, which is not compatible with number"),
        ("wager_amount", "placed_at", "type long (timestamp-millis), which is not compatible with number"),
        ("auto_play", "spin_count", "type int, which is not compatible with boolean"),
        ("event_time", "game.released", "type int (date), which is not compatible with datetime"),
        ("event_time", "player.id", "type long, which is not compatible with datetime"),
        ("game_release_date", "player", "type record Player, which is not compatible with datetime"),
        ("odds", "attributes", "type map, which is not compatible with number"),
        ("odds", "player.segment", "type enum Segment, which is not compatible with number"),
        ("wager_amount", "won", "type boolean, which is not compatible with number"),
    ],
)
def test_incompatible_types_are_errors(target: str, source: str, message: str) -> None:
    issue = only_issue(check(fields={**GOOD_FIELDS, target: source}), target, "error")
    assert message in issue.message


def test_date_target_rejects_timestamps() -> None:
    result = check(
        endpoint="customers",
        fields={"user_id": "player.id", "creation_timestamp": "placed_at", "date_of_birth": "placed_at"},
        constants={},
        copy_matching=False,
    )
    assert "not compatible with date" in only_issue(result, "date_of_birth", "error").message


def test_object_target_rejects_arrays_and_numbers() -> None:
    for source, word in (("tags", "array"), ("odds", "double")):
        result = check(
            endpoint="customers",
            fields={"user_id": "player.id", "creation_timestamp": "placed_at", "custom_data": source},
            constants={},
            copy_matching=False,
        )
        issue = only_issue(result, "custom_data", "error")
        assert f"type {word}, which is not compatible with object" in issue.message


@pytest.mark.parametrize("source", ["raw", "digest"])
def test_bytes_sources_are_errors_even_for_pass_through_fields(source: str) -> None:
    for target in ("game_id", "blob"):
        issue = only_issue(check(fields={**GOOD_FIELDS, target: source}), target, "error")
        assert "bytes cannot be sent as JSON" in issue.message


def test_strings_for_date_times_and_dates_are_warnings() -> None:
    result = check(fields={**GOOD_FIELDS, "event_time": "placed_on"})
    issue = only_issue(result, "event_time", "warning")
    assert "format checked at run time" in issue.message
    assert result.ok

    customers = check(
        endpoint="customers",
        fields={"user_id": "player.id", "creation_timestamp": "placed_at", "date_of_birth": "placed_on"},
        constants={},
        copy_matching=False,
    )
    assert "YYYY-MM-DD" in only_issue(customers, "date_of_birth", "warning").message


def test_temporal_source_for_a_string_target_is_a_warning() -> None:
    result = check(fields={**GOOD_FIELDS, "game_id": "placed_at"})
    assert "ISO-8601 text" in only_issue(result, "game_id", "warning").message
    assert result.ok


def test_union_with_some_incompatible_branches_is_a_warning() -> None:
    result = check(fields={**GOOD_FIELDS, "auto_play": "flag_or_text"})
    issue = only_issue(result, "auto_play", "warning")
    assert "type string, which is not compatible with boolean" in issue.message
    assert "union branch" in issue.message
    assert result.ok


def test_union_with_no_compatible_branch_is_an_error() -> None:
    result = check(fields={**GOOD_FIELDS, "odds": "flag_or_text"})
    assert len([i for i in issues_for(result, "odds") if i.level == "error"]) == 2
    blob = check(fields={**GOOD_FIELDS, "odds": "flag_or_blob"})
    messages = sorted(i.message for i in issues_for(blob, "odds") if i.level == "error")
    assert messages == [
        "source flag_or_blob has type boolean, which is not compatible with number",
        "source flag_or_blob has type bytes: bytes cannot be sent as JSON",
    ]


def test_always_null_source() -> None:
    assert (
        "always null"
        in only_issue(check(fields={**GOOD_FIELDS, "user_id": "nothing"}), "user_id", "error").message
    )
    assert (
        "always null"
        in only_issue(check(fields={**GOOD_FIELDS, "game_id": "nothing"}), "game_id", "warning").message
    )


# --------------------------------------------------------------------------------------------
# Nullable sources


def test_nullable_source_for_required_target_is_a_warning() -> None:
    result = check(fields={**GOOD_FIELDS, "user_id": "player.country"})
    issue = only_issue(result, "user_id", "warning")
    assert "null values will be dead-lettered at VALIDATE" in issue.message
    assert result.ok


def test_null_on_the_way_counts_as_nullable() -> None:
    result = check(fields={**GOOD_FIELDS, "event_id": "game.code"})
    assert "nullable" in only_issue(result, "event_id", "warning").message


def test_map_key_for_required_target_is_a_warning() -> None:
    result = check(fields={**GOOD_FIELDS, "event_id": "attributes.bet"})
    assert "map key that may be missing" in only_issue(result, "event_id", "warning").message


def test_nullable_source_for_optional_target_is_fine() -> None:
    assert check(fields={**GOOD_FIELDS, "game_id": "player.country"}).issues == ()


# --------------------------------------------------------------------------------------------
# Constants


@pytest.mark.parametrize(
    ("constants", "field", "message"),
    [
        ({"win_amount": "lots"}, "win_amount", "win_amount must be a number"),
        ({"event_category": "Casino"}, "event_category", "must be 'Gaming Activity'"),
        ({"free_spin_expiry_date": "yesterday"}, "free_spin_expiry_date", "ISO-8601 UTC date-time"),
        ({"auto_play": "yes"}, "auto_play", "must be a boolean"),
        ({"odds": math.inf}, "odds", "not a finite number"),
        ({"event_name": "  "}, "event_name", "must not be empty"),
    ],
)
def test_constants_must_fit_the_target(constants: dict[str, Any], field: str, message: str) -> None:
    result = check(constants={"event_name": "Spin", **constants})
    issue = only_issue(result, field, "error")
    assert issue.message.startswith("constant: ")
    assert message in issue.message


def test_constant_value_rules_of_other_models() -> None:
    customers = check(
        endpoint="customers",
        fields={"user_id": "player.id", "creation_timestamp": "placed_at"},
        constants={"subscription": "Yes"},
        copy_matching=False,
    )
    assert "must be one of" in only_issue(customers, "subscription", "error").message

    ext = check(
        endpoint="extattributes",
        fields={"user_id": "player.id", "ext_data": "attributes"},
        constants={"list_name": "vip list"},
        copy_matching=False,
    )
    assert "letters, digits" in only_issue(ext, "list_name", "error").message


def test_good_constants_pass() -> None:
    result = check(
        fields={k: v for k, v in GOOD_FIELDS.items() if k != "user_id"},
        constants={
            "event_name": "Spin",
            "user_id": 42,  # sent as "42"
            "odds": 1.5,
            "num_spins_played": 3,
            "free_spin_expiry_date": "2024-01-15T10:30:00Z",
            "event_category": "Gaming Activity",
        },
    )
    assert result.issues == ()


def test_pass_through_constant_that_json_cannot_carry_is_an_error() -> None:
    issue = only_issue(check(constants={"event_name": "x", "blob": b"\x00"}), "blob", "error")
    assert "bytes cannot be sent as JSON" in issue.message


# --------------------------------------------------------------------------------------------
# copy_matching and derived fields


def test_copied_fields_with_incompatible_types_are_warnings() -> None:
    schema = copy.deepcopy(BET_SCHEMA)
    schema["fields"] += [
        {"name": "win_amount", "type": "string"},
        {"name": "event_id", "type": ["null", "string"]},
        {"name": "game_id", "type": "bytes"},
    ]
    fields = {k: v for k, v in GOOD_FIELDS.items() if k != "event_id"}
    result = check(fields=fields, schema=schema)
    assert result.ok
    win = only_issue(result, "win_amount", "warning")
    assert win.message.startswith("copied (copy_matching)")
    assert "not compatible with number" in win.message
    assert "nullable" in only_issue(result, "event_id", "warning").message
    assert "bytes" in only_issue(result, "game_id", "warning").message
    assert check(fields=fields, schema=schema, copy_matching=False).errors[0].field == "event_id"


def test_source_fields_shadowed_by_derived_values_are_warnings() -> None:
    schema = copy.deepcopy(BET_SCHEMA)
    schema["fields"] += [
        {"name": "account_id", "type": "string"},
        {"name": "event_category", "type": "string"},
    ]
    result = check(schema=schema)
    assert "comes from the destination" in only_issue(result, "account_id", "warning").message
    assert (
        "comes from the endpoint ('Gaming Activity')"
        in only_issue(result, "event_category", "warning").message
    )
    assert check(schema=schema, copy_matching=False).issues == ()


def test_mapping_event_category_of_a_fixed_endpoint_warns_about_the_value() -> None:
    result = check(fields={**GOOD_FIELDS, "event_category": "placed_on"})
    assert (
        "must have event_category 'Gaming Activity'"
        in only_issue(result, "event_category", "warning").message
    )


# --------------------------------------------------------------------------------------------
# Fields the model does not know


def test_pass_through_fields_and_constants_are_warnings() -> None:
    result = check(
        fields={**GOOD_FIELDS, "channel": "placed_on"}, constants={"event_name": "x", "source": "k"}
    )
    for field in ("channel", "source"):
        assert only_issue(result, field, "warning").message == "not a model field; passed through as is"
    assert result.ok


def test_pass_through_field_close_to_a_model_field_suggests_it() -> None:
    result = check(fields={**GOOD_FIELDS, "game_idd": "placed_on"})
    assert "(did you mean game_id?)" in only_issue(result, "game_idd", "warning").message


def test_pass_through_field_with_a_bad_path_is_still_an_error() -> None:
    result = check(fields={**GOOD_FIELDS, "channel": "nope"})
    only_issue(result, "channel", "error")


# --------------------------------------------------------------------------------------------
# Without a schema, and broken schemas


def test_without_schema_only_schema_free_checks_run() -> None:
    result = check(schema=None)
    assert result.ok
    assert [i.field for i in result.issues] == [""]
    assert "not checked" in result.issues[0].message


def test_without_schema_required_fields_still_need_a_source() -> None:
    fields = {k: v for k, v in GOOD_FIELDS.items() if k != "event_id"}
    off = check(fields=fields, schema=None, copy_matching=False)
    assert [i.field for i in off.errors] == ["event_id"]
    on = check(fields=fields, schema=None)
    assert on.ok
    assert "unchecked without a schema" in only_issue(on, "event_id", "warning").message


def test_without_schema_constants_are_still_checked() -> None:
    result = check(constants={"event_name": "x", "win_amount": "lots"}, schema=None)
    only_issue(result, "win_amount", "error")


def test_without_schema_system_events_still_need_a_category() -> None:
    result = check(
        endpoint="system-events",
        fields={"event_id": "id", "event_time": "at", "event_data": "payload"},
        schema=None,
        copy_matching=False,
    )
    assert [i.field for i in result.errors] == ["event_category"]


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "enum", "name": "E", "symbols": ["A"]}, "top-level type must be a record (got enum E)"),
        ({"type": "record", "name": "R"}, "record R has no field list"),
        ({"type": "record", "name": "R", "fields": [{"name": "a"}]}, "without a name or a type"),
        ({"type": "record", "fields": []}, "has no name"),
        (
            {"type": "record", "name": "R", "fields": [{"name": "bet_id", "type": "Missing"}]},
            "type 'Missing' is used but not defined",
        ),
    ],
)
def test_broken_schemas_are_errors(schema: dict[str, Any], message: str) -> None:
    result = check(schema=schema)
    errors = issues_for(result, "")
    assert any(i.level == "error" and message in i.message for i in errors), result.issues
    assert not result.ok
