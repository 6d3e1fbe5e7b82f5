"""connector.ingest.models and .validation: the nine models (docs/ingest-api.md, "Record models"), validation.

Most parametrized cases are generated from MODELS itself, so every field of every model is
exercised; the field tables are checked independently against the counts the document lists.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.endpoints import ENDPOINT_KEYS, ENDPOINTS
from connector.ingest.models import MODELS, FieldKind, FieldSpec, Model
from connector.ingest.validation import FieldError, format_errors, validate_record

pytestmark = pytest.mark.unit

ALL_RULES = {
    "required",
    "type",
    "not_empty",
    "datetime",
    "date",
    "category",
    "positive",
    "charset",
    "choice",
    "finite",
    "json_object",
    "record_type",
}

IDS = {"account_id": "68911b7ad58ad825ec00c5ef", "workspace_id": "68911b7ad825ec00c5ef"}


def _event(category: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        **IDS,
        "user_id": "u1",
        "event_category": category,
        "event_name": name,
        "event_id": "evt_1",
        "event_time": "2024-01-15T10:30:00Z",
        **extra,
    }


# One realistic valid record per endpoint, written by hand (not derived from MODELS).
VALID: dict[str, dict[str, Any]] = {
    "customers": {
        **IDS,
        "user_id": "u1",
        "creation_timestamp": "2024-01-15T10:30:00.123Z",
        "username": "jdoe",
        "email": "jdoe@example.com",
        "date_of_birth": "1990-05-17",
        "subscription": "Subscribed",
        "deposit_limits": 1000,
        "closed_time": None,
        "custom_data": {"tier": "gold"},
    },
    "account": _event("Account", "Account Created", device="ios", status="active"),
    # The body of the signing test vector in docs/ingest-api.md.
    "deposit": _event(
        "Deposit", "Successful Deposit", amount=500, payment_method="bank", transaction_id="txn_1"
    ),
    "withdraw": _event("Withdraw", "Withdrawal Requested", amount=20.5, payment_method="card"),
    "gaming-activity": _event(
        "Gaming Activity",
        "Spin",
        game_id="g-77",
        wager_amount=2.5,
        win_amount=0,
        num_spins_played=10,
        auto_play=False,
        free_spin_expiry_date="2024-02-29T23:59:59.999999Z",
    ),
    "wallet-balance": _event("Wallet Balance", "Balance Update", currency="EUR", current_cash_balance=-3.25),
    "refer-friend": _event(
        "Refer Friend",
        "Referral Completed",
        referee_user_id="u2",
        successful_referral_confirmation=True,
        referee_registration_date="2024-01-10T08:00:00Z",
        referee_first_deposit=50,
    ),
    "system-events": {
        **IDS,
        "event_category": "SystemEvent",
        "event_name": "Maintenance Started",
        "event_id": "sys_1",
        "event_time": "2024-01-15T10:30:00Z",
        "event_data": '{"window": "2h"}',
    },
    "extattributes": {**IDS, "user_id": "u1", "list_name": "vip_list-2024", "ext_data": {"score": 5}},
}


def _valid_value(model: Model, spec: FieldSpec) -> Any:
    if spec.name == "event_category":
        return model.category if model.category is not None else "SystemEvent"
    if spec.choices is not None:
        return sorted(spec.choices)[0]
    if spec.name == "list_name":
        return "list_1-A"
    return {
        FieldKind.STRING: f"{spec.name} value",
        FieldKind.NUMBER: 12.5,
        FieldKind.INTEGER: 3,
        FieldKind.BOOLEAN: True,
        FieldKind.OBJECT: {"key": "value"},
        FieldKind.DATETIME: "2024-01-15T10:30:00.123Z",
        FieldKind.DATE: "1990-05-17",
    }[spec.kind]


def full_record(endpoint: str) -> dict[str, Any]:
    """A valid record that sets every field of the model."""
    model = MODELS[endpoint]
    return {name: _valid_value(model, spec) for name, spec in model.fields.items()}


def rules(errors: list[FieldError]) -> list[tuple[str, str]]:
    return [(e.field, e.rule) for e in errors]


ALL_FIELDS = [(endpoint, spec) for endpoint, model in MODELS.items() for spec in model.fields.values()]
REQUIRED_FIELDS = [(endpoint, spec) for endpoint, spec in ALL_FIELDS if spec.required]
OPTIONAL_FIELDS = [(endpoint, spec) for endpoint, spec in ALL_FIELDS if not spec.required]


def _field_id(case: tuple[str, FieldSpec]) -> str:
    return f"{case[0]}.{case[1].name}"


# ---------------------------------------------------------------------------------------------
# The tables


def test_models_cover_the_nine_endpoints_in_order() -> None:
    assert tuple(MODELS) == ENDPOINT_KEYS
    assert len(MODELS) == 9
    for key, model in MODELS.items():
        assert model.endpoint == key
        assert model.category == ENDPOINTS[key].category
        assert all(name == spec.name for name, spec in model.fields.items())


def test_models_are_immutable() -> None:
    model = MODELS["deposit"]
    with pytest.raises(TypeError):
        model.fields["amount"] = FieldSpec("amount", FieldKind.STRING)  # type: ignore[index]
    with pytest.raises(TypeError):
        MODELS["deposit"] = model  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.fields["amount"].required = False  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.category = "Withdraw"  # type: ignore[misc]


COMMON_REQUIRED = (
    "account_id",
    "workspace_id",
    "user_id",
    "event_category",
    "event_name",
    "event_id",
    "event_time",
)
EXPECTED_REQUIRED = {
    "customers": ("account_id", "workspace_id", "user_id", "creation_timestamp"),
    "account": COMMON_REQUIRED,
    "deposit": (*COMMON_REQUIRED, "amount"),
    "withdraw": (*COMMON_REQUIRED, "amount"),
    "gaming-activity": COMMON_REQUIRED,
    "wallet-balance": COMMON_REQUIRED,
    "refer-friend": COMMON_REQUIRED,
    "system-events": (
        "account_id",
        "workspace_id",
        "event_category",
        "event_name",
        "event_id",
        "event_time",
        "event_data",
    ),
    "extattributes": ("account_id", "workspace_id", "user_id", "list_name", "ext_data"),
}


@pytest.mark.parametrize("endpoint", ENDPOINT_KEYS)
def test_required_fields_match_the_document(endpoint: str) -> None:
    assert MODELS[endpoint].required == EXPECTED_REQUIRED[endpoint]


S, N, I, B, O, T, D = "S", "N", "I", "B", "O", "T", "D"  # noqa: E741
LETTER = {
    FieldKind.STRING: S,
    FieldKind.NUMBER: N,
    FieldKind.INTEGER: I,
    FieldKind.BOOLEAN: B,
    FieldKind.OBJECT: O,
    FieldKind.DATETIME: T,
    FieldKind.DATE: D,
}
# Optional fields per kind, counted by hand in docs/ingest-api.md. date_of_birth is listed among the
# customers' S fields with a YYYY-MM-DD format; the model gives it its own kind (D).
EXPECTED_OPTIONAL_COUNTS: dict[str, dict[str, int]] = {
    "customers": {S: 38, D: 1, N: 5, T: 5, O: 1},
    "account": {S: 6},
    "deposit": {S: 5},
    "withdraw": {S: 3},
    "gaming-activity": {N: 13, I: 8, B: 7, T: 3, S: 33},
    "wallet-balance": {S: 2, N: 4},
    "refer-friend": {S: 4, B: 1, T: 1, N: 1},
    "system-events": {},
    "extattributes": {},
}


@pytest.mark.parametrize("endpoint", ENDPOINT_KEYS)
def test_optional_field_counts_match_the_document(endpoint: str) -> None:
    optional = Counter(LETTER[spec.kind] for spec in MODELS[endpoint].fields.values() if not spec.required)
    assert dict(optional) == EXPECTED_OPTIONAL_COUNTS[endpoint]


def test_field_kinds_of_note() -> None:
    customers = MODELS["customers"].fields
    assert customers["date_of_birth"].kind is FieldKind.DATE
    assert customers["subscription"].choices == frozenset({"Subscribed", "Unsubscribed"})
    assert customers["creation_timestamp"].kind is FieldKind.DATETIME
    assert customers["custom_data"].kind is FieldKind.OBJECT
    assert MODELS["deposit"].fields["amount"] == FieldSpec("amount", FieldKind.NUMBER, required=True)
    assert MODELS["system-events"].fields["event_data"].kind is FieldKind.OBJECT
    assert MODELS["extattributes"].fields["ext_data"].kind is FieldKind.OBJECT
    assert "user_id" not in MODELS["system-events"].fields
    assert "event_category" not in MODELS["customers"].fields
    assert "event_category" not in MODELS["extattributes"].fields
    # Spot checks of the documented order.
    assert list(MODELS["withdraw"].fields)[-4:] == [
        "amount",
        "payment_method",
        "transaction_id",
        "failure_reason",
    ]
    assert list(MODELS["gaming-activity"].fields)[7] == "wager_amount"
    assert list(MODELS["gaming-activity"].fields)[-1] == "transaction_type"


# ---------------------------------------------------------------------------------------------
# Valid records


@pytest.mark.parametrize("endpoint", ENDPOINT_KEYS)
def test_valid_example(endpoint: str) -> None:
    assert validate_record(endpoint, VALID[endpoint]) == []


@pytest.mark.parametrize("endpoint", ENDPOINT_KEYS)
def test_record_with_every_field_set_is_valid(endpoint: str) -> None:
    assert validate_record(endpoint, full_record(endpoint)) == []


@pytest.mark.parametrize("endpoint", ENDPOINT_KEYS)
def test_optional_fields_may_be_none_or_absent(endpoint: str) -> None:
    record = full_record(endpoint)
    for name, spec in MODELS[endpoint].fields.items():
        if not spec.required:
            record[name] = None
    assert validate_record(endpoint, record) == []
    minimal = {name: value for name, value in record.items() if value is not None}
    assert set(minimal) == set(MODELS[endpoint].required)
    assert validate_record(endpoint, minimal) == []


def test_empty_optional_string_is_accepted() -> None:
    assert validate_record("deposit", {**VALID["deposit"], "payment_method": "", "failure_reason": " "}) == []


@pytest.mark.parametrize("endpoint", ENDPOINT_KEYS)
def test_unknown_fields_are_not_errors(endpoint: str) -> None:
    record = {**VALID[endpoint], "not_in_the_model": [1, {"x": None}], "another": float("nan")}
    assert validate_record(endpoint, record) == []


def test_validation_does_not_modify_the_record() -> None:
    record = {**VALID["customers"], "custom_data": '{"a": 1}', "deposit_limits": 5.0}
    before = copy.deepcopy(record)
    validate_record("customers", record)
    assert record == before


# ---------------------------------------------------------------------------------------------
# Each rule


WRONG_TYPES: dict[FieldKind, list[Any]] = {
    FieldKind.STRING: [123, 1.5, True, {"a": "b"}, ["x"]],
    FieldKind.NUMBER: ["12", True, False, [1], {"n": 1}],
    FieldKind.INTEGER: ["3", True, 2.5, [3]],
    FieldKind.BOOLEAN: [1, 0, "true", 1.0],
    FieldKind.OBJECT: [42, True, ["a"], 1.5],
    FieldKind.DATETIME: [1705314600, 1705314600.5, True, {"t": 1}, datetime.datetime(2024, 1, 15)],
    FieldKind.DATE: [19900517, True, ["1990-05-17"], datetime.date(1990, 5, 17)],
}


@pytest.mark.parametrize("case", ALL_FIELDS, ids=_field_id)
def test_wrong_type_is_a_type_error(case: tuple[str, FieldSpec]) -> None:
    endpoint, spec = case
    for wrong in WRONG_TYPES[spec.kind]:
        record = {**full_record(endpoint), spec.name: wrong}
        errors = validate_record(endpoint, record)
        assert rules(errors) == [(spec.name, "type")], wrong
        assert errors[0].message.startswith(f"{spec.name} must be ")


@pytest.mark.parametrize("case", REQUIRED_FIELDS, ids=_field_id)
def test_missing_or_none_required_field(case: tuple[str, FieldSpec]) -> None:
    endpoint, spec = case
    absent = {k: v for k, v in VALID[endpoint].items() if k != spec.name}
    for record in (absent, {**VALID[endpoint], spec.name: None}):
        errors = validate_record(endpoint, record)
        assert rules(errors) == [(spec.name, "required")]
        assert errors[0].message == f"{spec.name} is required"


@pytest.mark.parametrize(
    "case", [c for c in REQUIRED_FIELDS if c[1].kind is not FieldKind.NUMBER], ids=_field_id
)
def test_required_string_must_not_be_blank(case: tuple[str, FieldSpec]) -> None:
    endpoint, spec = case
    for blank in ("", " ", "\t\n", "\u00a0\u2003"):
        errors = validate_record(endpoint, {**VALID[endpoint], spec.name: blank})
        assert rules(errors) == [(spec.name, "not_empty")], repr(blank)


@pytest.mark.parametrize("endpoint", [k for k in ENDPOINT_KEYS if ENDPOINTS[k].category is not None])
def test_event_category_must_be_the_endpoint_category(endpoint: str) -> None:
    category = ENDPOINTS[endpoint].category
    assert category is not None
    for wrong in ("Deposit" if category != "Deposit" else "Withdraw", category.lower(), f" {category}", "x"):
        errors = validate_record(endpoint, {**VALID[endpoint], "event_category": wrong})
        assert rules(errors) == [("event_category", "category")], wrong
        assert repr(category) in errors[0].message


def test_system_events_category_is_free_but_not_empty() -> None:
    for category in ("SystemEvent", "Deposit", "anything at all"):
        assert validate_record("system-events", {**VALID["system-events"], "event_category": category}) == []
    errors = validate_record("system-events", {**VALID["system-events"], "event_category": "  "})
    assert rules(errors) == [("event_category", "not_empty")]


@pytest.mark.parametrize("endpoint", ["deposit", "withdraw"])
def test_amount_must_be_positive(endpoint: str) -> None:
    for amount in (0, 0.0, -0.0, -5, -0.01):
        errors = validate_record(endpoint, {**VALID[endpoint], "amount": amount})
        assert rules(errors) == [("amount", "positive")], amount
    errors = validate_record(endpoint, {**VALID[endpoint], "amount": -5})
    assert errors[0].message == "amount must be greater than 0 (got -5)"
    for amount in (0.01, 1, 5e-324, 1e300):
        assert validate_record(endpoint, {**VALID[endpoint], "amount": amount}) == [], amount


def test_other_numbers_may_be_zero_or_negative() -> None:
    record = {**VALID["wallet-balance"], "current_cash_balance": -10, "blocked_amount": 0}
    assert validate_record("wallet-balance", record) == []


def test_list_name_charset() -> None:
    for good in ("vip", "VIP_list-2024", "a", "_-_", "0"):
        assert validate_record("extattributes", {**VALID["extattributes"], "list_name": good}) == [], good
    for bad in ("vip list", "vip.list", "vip/list", "liste_é", "名单", "vip\n", "vip!"):
        errors = validate_record("extattributes", {**VALID["extattributes"], "list_name": bad})
        assert rules(errors) == [("list_name", "charset")], bad


def test_subscription_choice() -> None:
    for good in ("Subscribed", "Unsubscribed"):
        assert validate_record("customers", {**VALID["customers"], "subscription": good}) == []
    for bad in ("subscribed", "UNSUBSCRIBED", "Yes", ""):
        errors = validate_record("customers", {**VALID["customers"], "subscription": bad})
        assert rules(errors) == [("subscription", "choice")], bad
        assert "'Subscribed', 'Unsubscribed'" in errors[0].message


@pytest.mark.parametrize("record", [[], [VALID["deposit"]], "{}", 42, None, b"{}", ("a", 1)])
def test_record_must_be_an_object(record: object) -> None:
    errors = validate_record("deposit", record)
    assert rules(errors) == [("", "record_type")]
    assert type(record).__name__ in errors[0].message


def test_unknown_endpoint_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="bets"):
        validate_record("bets", {})


# ---------------------------------------------------------------------------------------------
# Several errors at once


def test_all_errors_are_reported_in_documented_order() -> None:
    record = {
        # Keys deliberately in another order than the model's.
        "transaction_id": 7,
        "amount": -5,
        "event_time": "2024-02-30T10:00:00Z",
        "event_category": "Withdraw",
        "user_id": "   ",
        "account_id": "a",
        "event_name": "Deposit",
        "event_id": "e",
        "extra": "ignored",
    }
    errors = validate_record("deposit", record)
    assert rules(errors) == [
        ("workspace_id", "required"),
        ("user_id", "not_empty"),
        ("event_category", "category"),
        ("event_time", "datetime"),
        ("amount", "positive"),
        ("transaction_id", "type"),
    ]


def test_errors_in_many_optional_fields_of_a_small_record() -> None:
    # A record much smaller than the model: validation walks the record, not the model.
    record = {**VALID["gaming-activity"], "game_id": 1, "auto_play": "yes", "rtp": float("inf"), "odds": "2"}
    errors = validate_record("gaming-activity", record)
    assert rules(errors) == [("rtp", "finite"), ("odds", "type"), ("auto_play", "type"), ("game_id", "type")]


def test_errors_in_a_large_record() -> None:
    # A record larger than the model's optional part: validation walks the model.
    record = full_record("deposit")
    record.update({f"extra_{i}": i for i in range(20)})
    record.update({"payment_provider_name": False, "failure_reason": 3})
    errors = validate_record("deposit", record)
    assert rules(errors) == [("payment_provider_name", "type"), ("failure_reason", "type")]


@pytest.mark.parametrize("endpoint", ENDPOINT_KEYS)
def test_every_field_wrong_at_once(endpoint: str) -> None:
    model = MODELS[endpoint]
    record = {spec.name: WRONG_TYPES[spec.kind][0] for spec in model.fields.values()}
    assert rules(validate_record(endpoint, record)) == [(name, "type") for name in model.fields]
    assert rules(validate_record(endpoint, {})) == [(name, "required") for name in model.required]


# ---------------------------------------------------------------------------------------------
# Date-times and dates

VALID_DATETIMES = [
    "2024-01-15T10:30:00Z",
    "2024-01-15T10:30:00.1Z",
    "2024-01-15T10:30:00.123Z",  # milliseconds
    "2024-01-15T10:30:00.123456Z",  # microseconds
    "2024-01-15T10:30:00.123456789Z",  # nanoseconds
    "2024-02-29T00:00:00Z",  # leap day
    "2000-02-29T12:00:00Z",  # divisible by 400
    "2023-12-31T23:59:59.999Z",
    "2023-04-30T00:00:00Z",
    "2023-01-31T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
]
INVALID_DATETIMES = [
    "2024-01-15T10:30:00",  # missing Z
    "2024-01-15T10:30:00+00:00",  # offset instead of Z
    "2024-01-15T10:30:00.123+00:00",
    "2024-01-15T10:30:00z",
    "2024-01-15t10:30:00Z",
    "2024-01-15 10:30:00Z",
    "2024-01-15T10:30Z",  # no seconds
    "2024-01-15T10:30:00.Z",  # empty fraction
    "2024-01-15T10:30:00.1234567890Z",  # ten fraction digits
    "2024-01-15T10:30:00,123Z",
    "2024-02-30T10:30:00Z",
    "2023-02-29T10:30:00Z",  # not a leap year
    "1900-02-29T10:30:00Z",  # divisible by 100, not 400
    "2024-04-31T10:30:00Z",
    "2024-13-01T10:30:00Z",
    "2024-00-10T10:30:00Z",
    "2024-01-00T10:30:00Z",
    "2024-01-32T10:30:00Z",
    "2024-01-15T24:00:00Z",
    "2024-01-15T10:60:00Z",
    "2024-01-15T10:30:60Z",  # no leap seconds
    "0000-01-01T00:00:00Z",
    "24-01-15T10:30:00Z",
    "2024-1-15T10:30:00Z",
    "20240115T103000Z",
    "2024-01-15",
    "2024-01-15T10:30:00Z\n",
    " 2024-01-15T10:30:00Z",
    "2024-01-15T10:30:00ZZ",
    "\uff12\uff10\uff12\uff14-01-15T10:30:00Z",  # full-width digits
    "2024-01-15T10:30:00.\u0661\u0662Z",  # Arabic-Indic digits
    "not a date",
]


@pytest.mark.parametrize("value", VALID_DATETIMES)
def test_valid_datetimes(value: str) -> None:
    assert validate_record("deposit", {**VALID["deposit"], "event_time": value}) == []
    record = {**VALID["gaming-activity"], "game_release_date": value}
    assert validate_record("gaming-activity", record) == []


@pytest.mark.parametrize("value", INVALID_DATETIMES)
def test_invalid_datetimes(value: str) -> None:
    errors = validate_record("deposit", {**VALID["deposit"], "event_time": value})
    assert rules(errors) == [("event_time", "datetime")]
    assert repr(value) in errors[0].message
    errors = validate_record("customers", {**VALID["customers"], "closed_time": value})
    assert rules(errors) == [("closed_time", "datetime")]


def test_empty_optional_datetime_is_a_datetime_error() -> None:
    errors = validate_record("refer-friend", {**VALID["refer-friend"], "referee_registration_date": ""})
    assert rules(errors) == [("referee_registration_date", "datetime")]


@pytest.mark.parametrize("value", ["1990-05-17", "2024-02-29", "2000-02-29", "0001-01-01", "9999-12-31"])
def test_valid_dates(value: str) -> None:
    assert validate_record("customers", {**VALID["customers"], "date_of_birth": value}) == []


@pytest.mark.parametrize(
    "value",
    [
        "2023-02-29",
        "1900-02-29",
        "1990-04-31",
        "1990-13-01",
        "1990-5-17",
        "90-05-17",
        "17/05/1990",
        "19900517",
        "1990-05-17T00:00:00Z",
        "1990-05-17 ",
        "",
        "0000-01-01",
    ],
)
def test_invalid_dates(value: str) -> None:
    errors = validate_record("customers", {**VALID["customers"], "date_of_birth": value})
    assert rules(errors) == [("date_of_birth", "date")]


@settings(derandomize=True, max_examples=300)
@given(
    moment=st.datetimes(min_value=datetime.datetime(1, 1, 1), max_value=datetime.datetime(9999, 12, 31)),
    digits=st.integers(min_value=0, max_value=9),
)
def test_every_real_moment_is_a_valid_datetime(moment: datetime.datetime, digits: int) -> None:
    m = moment
    text = f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
    if digits:
        text += "." + f"{moment.microsecond:06d}000"[:digits]
    assert validate_record("deposit", {**VALID["deposit"], "event_time": text + "Z"}) == []


def _reference_is_valid(text: str) -> bool:
    try:
        datetime.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return False
    return True


@settings(derandomize=True, max_examples=500)
@given(
    st.from_regex(
        r"[0-9]{4}-[0-3][0-9]-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9](\.[0-9]{1,9})?Z", fullmatch=True
    )
)
def test_datetime_calendar_agrees_with_the_standard_library(text: str) -> None:
    errors = validate_record("deposit", {**VALID["deposit"], "event_time": text})
    expected = [] if _reference_is_valid(text) else [("event_time", "datetime")]
    assert rules(errors) == expected


# ---------------------------------------------------------------------------------------------
# Numbers


def test_bool_is_not_a_number() -> None:
    for endpoint, name in (("deposit", "amount"), ("gaming-activity", "wager_amount")):
        for value in (True, False):
            errors = validate_record(endpoint, {**VALID[endpoint], name: value})
            assert rules(errors) == [(name, "type")]
    errors = validate_record("gaming-activity", {**VALID["gaming-activity"], "num_spins_played": True})
    assert rules(errors) == [("num_spins_played", "type")]


def test_integer_fields() -> None:
    for good in (5, 5.0, -3, 0, -0.0, 2**53, 1e20):
        record = {**VALID["gaming-activity"], "num_spins_played": good}
        assert validate_record("gaming-activity", record) == [], good
    for bad in (5.5, -0.1, 1e-9):
        errors = validate_record("gaming-activity", {**VALID["gaming-activity"], "num_spins_played": bad})
        assert rules(errors) == [("num_spins_played", "type")], bad
        assert "must be an integer" in errors[0].message


@pytest.mark.parametrize(
    ("endpoint", "name"),
    [
        ("deposit", "amount"),
        ("withdraw", "amount"),
        ("gaming-activity", "rtp"),
        ("gaming-activity", "hand_volume"),
    ],
)
def test_non_finite_numbers(endpoint: str, name: str) -> None:
    for value in (float("nan"), float("inf"), float("-inf"), 10**400, -(10**400)):
        errors = validate_record(endpoint, {**VALID[endpoint], name: value})
        assert rules(errors) == [(name, "finite")], value


def test_nan_amount_is_finite_error_not_positive() -> None:
    errors = validate_record("deposit", {**VALID["deposit"], "amount": float("nan")})
    assert errors == [FieldError("amount", "finite", "amount must be a finite number (got nan)")]


def test_large_but_finite_numbers_are_accepted() -> None:
    for value in (1.7976931348623157e308, -1.7976931348623157e308, 10**300, 2**1023):
        record = {**VALID["wallet-balance"], "current_total_balance": value}
        assert validate_record("wallet-balance", record) == [], value


# ---------------------------------------------------------------------------------------------
# Object-or-JSON-string fields


@pytest.mark.parametrize(
    ("endpoint", "name"),
    [("customers", "custom_data"), ("system-events", "event_data"), ("extattributes", "ext_data")],
)
def test_object_fields(endpoint: str, name: str) -> None:
    for good in ({}, {"a": 1}, {"nested": {"x": [1, 2]}}, "{}", '{"a": 1}', ' {"a": [1, {"b": null}]} '):
        assert validate_record(endpoint, {**VALID[endpoint], name: good}) == [], good
    for bad in (
        "[1]",
        "not json",
        '"a string"',
        "1",
        "null",
        "true",
        '{"a": NaN}',
        '{"a": 1',
        "{'a': 1}",
        "[" * 100_000,
    ):
        errors = validate_record(endpoint, {**VALID[endpoint], name: bad})
        assert rules(errors) == [(name, "json_object")], bad[:20]
    for wrong in ([1], 1, True):
        errors = validate_record(endpoint, {**VALID[endpoint], name: wrong})
        assert rules(errors) == [(name, "type")], wrong


# ---------------------------------------------------------------------------------------------
# Messages and formatting


def test_messages_show_at_most_about_200_characters_of_the_value() -> None:
    huge = "x y" * 10_000
    cases: list[tuple[str, str, Any]] = [
        ("extattributes", "list_name", huge),
        ("extattributes", "ext_data", huge),
        ("deposit", "event_time", huge),
        ("deposit", "user_id", [huge] * 50),
        ("customers", "subscription", huge),
        ("deposit", "payment_method", {str(i): huge for i in range(50)}),
    ]
    for endpoint, name, value in cases:
        errors = validate_record(endpoint, {**VALID[endpoint], name: value})
        assert len(errors) == 1
        assert len(errors[0].message) < 400, name
        assert errors[0].message.startswith(name)


def test_format_errors() -> None:
    errors = [
        FieldError("amount", "positive", "amount must be greater than 0 (got -5)"),
        FieldError("event_time", "required", "event_time is required"),
    ]
    assert format_errors(errors) == (
        "amount: positive: amount must be greater than 0 (got -5); "
        "event_time: required: event_time is required"
    )
    assert format_errors([]) == ""
    assert (
        format_errors(validate_record("deposit", []))
        == "record_type: record must be a JSON object (got list)"
    )


def test_messages_are_single_lines() -> None:
    record = {**VALID["deposit"], "event_time": "2024-01-15\nT10:30:00Z", "payment_method": ["a\nb"]}
    for error in validate_record("deposit", record):
        assert "\n" not in error.message


# ---------------------------------------------------------------------------------------------
# Robustness: any JSON value in any field yields at most an error for that field, never a crash.

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@settings(derandomize=True, max_examples=400)
@given(case=st.sampled_from(ALL_FIELDS), value=JSON_VALUES)
def test_any_value_in_any_field(case: tuple[str, FieldSpec], value: Any) -> None:
    endpoint, spec = case
    errors = validate_record(endpoint, {**full_record(endpoint), spec.name: value})
    assert len(errors) <= 1
    for error in errors:
        assert error.field == spec.name
        assert error.rule in ALL_RULES
    if value is None:
        assert rules(errors) == ([(spec.name, "required")] if spec.required else [])
