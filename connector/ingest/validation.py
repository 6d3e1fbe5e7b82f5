"""Validation of one record against its ingest model: the rules, their names and messages.

Rule names and messages are a contract: dead-letter reasons and the sandbox's 400 details carry
them. At import time every model is compiled into a flat validation plan so that
`validate_record`, which runs once per record in the pipeline and in the sandbox, does no
per-call setup.
"""

from __future__ import annotations

import enum
import json
import re
import reprlib
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from connector.ingest.models import MODELS, FieldKind, FieldSpec, Model

__all__ = ["FieldError", "FieldRule", "field_rules", "format_errors", "required_error", "validate_record"]


@dataclass(frozen=True, slots=True)
class FieldError:
    # The record field, or "" when the problem is the record as a whole.
    field: str
    rule: str
    message: str


class _Extra(enum.Enum):
    """Value rules beyond type and choices that apply to single fields of single models."""

    POSITIVE = "positive"
    CHARSET = "charset"


_EXTRA_RULES: Final[dict[str, dict[str, _Extra]]] = {
    "deposit": {"amount": _Extra.POSITIVE},
    "withdraw": {"amount": _Extra.POSITIVE},
    "extattributes": {"list_name": _Extra.CHARSET},
}


# --------------------------------------------------------------------------------------------
# Messages

_MAX_SHOWN: Final = 200
_REPR: Final = reprlib.Repr()
_REPR.maxstring = _MAX_SHOWN
_REPR.maxother = _MAX_SHOWN
_REPR.maxlevel = 3
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = 8


def _show(value: object) -> str:
    # reprlib bounds the work on huge values; the slice bounds the result.
    text = _REPR.repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _got(value: object) -> str:
    return f"(got {type(value).__name__} {_show(value)})"


_KIND_WORDS: Final[dict[FieldKind, str]] = {
    FieldKind.STRING: "a string",
    FieldKind.NUMBER: "a number",
    FieldKind.INTEGER: "an integer",
    FieldKind.BOOLEAN: "a boolean",
    FieldKind.OBJECT: "an object or a string holding a JSON object",
    FieldKind.DATETIME: "a date-time string",
    FieldKind.DATE: "a date string",
}


def _type_error(name: str, kind: FieldKind, value: object) -> FieldError:
    return FieldError(name, "type", f"{name} must be {_KIND_WORDS[kind]} {_got(value)}")


# --------------------------------------------------------------------------------------------
# Checks take (name, value) with value not None and return an error or None. A field is checked
# by its kind's type check, then its rules in order; the first failure is the field's error.

_Check = Callable[[str, object], FieldError | None]

# JavaScript numbers are doubles: a Python int beyond this cannot be sent as a finite number.
_FLOAT_MAX: Final = sys.float_info.max

# Ranges are checked by the pattern, so only day 29-31 needs the calendar; the fixed layout lets
# that check slice the string instead of paying for capture groups. Year 0000 does not exist.
_DATE_PART: Final = r"(?!0000)[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
_DATETIME_RE: Final = re.compile(
    _DATE_PART + r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?Z"
)
_DATE_RE: Final = re.compile(_DATE_PART)
_LIST_NAME_RE: Final = re.compile(r"[A-Za-z0-9_-]+")
_DAYS_IN_MONTH: Final = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _real_day(text: str) -> bool:
    """Whether the day of a `YYYY-MM-DD...` string that matched a pattern above exists."""
    day = text[8:10]
    if day <= "28":  # two-digit strings compare like the numbers
        return True
    month = int(text[5:7])
    last = _DAYS_IN_MONTH[month]
    if month == 2:
        year = int(text[:4])
        if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
            last = 29
    return int(day) <= last


def _type_string(name: str, value: object) -> FieldError | None:
    return None if isinstance(value, str) else _type_error(name, FieldKind.STRING, value)


def _type_number(name: str, value: object) -> FieldError | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return None
    return _type_error(name, FieldKind.NUMBER, value)


def _type_integer(name: str, value: object) -> FieldError | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return None
    return _type_error(name, FieldKind.INTEGER, value)


def _type_boolean(name: str, value: object) -> FieldError | None:
    return None if isinstance(value, bool) else _type_error(name, FieldKind.BOOLEAN, value)


def _type_object(name: str, value: object) -> FieldError | None:
    return None if isinstance(value, dict | str) else _type_error(name, FieldKind.OBJECT, value)


def _type_datetime(name: str, value: object) -> FieldError | None:
    return None if isinstance(value, str) else _type_error(name, FieldKind.DATETIME, value)


def _type_date(name: str, value: object) -> FieldError | None:
    return None if isinstance(value, str) else _type_error(name, FieldKind.DATE, value)


def _rule_not_empty(name: str, value: object) -> FieldError | None:
    # isspace() is False for "", hence the first test; neither allocates like strip() would.
    if isinstance(value, str) and (not value or value.isspace()):
        return FieldError(name, "not_empty", f"{name} must not be empty or blank")
    return None


def _rule_finite(name: str, value: object) -> FieldError | None:
    # NaN fails both comparisons, so this one test covers NaN, the infinities and huge ints.
    if isinstance(value, int | float) and -_FLOAT_MAX <= value <= _FLOAT_MAX:
        return None
    return FieldError(name, "finite", f"{name} must be a finite number (got {_show(value)})")


def _rule_integral(name: str, value: object) -> FieldError | None:
    if isinstance(value, float) and not value.is_integer():
        return _type_error(name, FieldKind.INTEGER, value)
    return None


def _reject_constant(token: str) -> object:
    # Python's json accepts NaN/Infinity; JSON (and the server's JSON.parse) does not.
    raise ValueError(token)


def _rule_json_object(name: str, value: object) -> FieldError | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = json.loads(value, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict):
        return None
    return FieldError(
        name,
        "json_object",
        f"{name} must be an object or a string holding a JSON object (got {_show(value)})",
    )


def _rule_datetime(name: str, value: object) -> FieldError | None:
    if isinstance(value, str) and _DATETIME_RE.fullmatch(value) is not None and _real_day(value):
        return None
    return FieldError(
        name,
        "datetime",
        f"{name} must be an ISO-8601 UTC date-time like 2024-01-15T10:30:00Z or "
        f"2024-01-15T10:30:00.123Z (got {_show(value)})",
    )


def _rule_date(name: str, value: object) -> FieldError | None:
    if isinstance(value, str) and _DATE_RE.fullmatch(value) is not None and _real_day(value):
        return None
    return FieldError(name, "date", f"{name} must be a real date YYYY-MM-DD (got {_show(value)})")


def _rule_category(category: str) -> _Check:
    def rule(name: str, value: object) -> FieldError | None:
        if value == category:
            return None
        return FieldError(name, "category", f"{name} must be {category!r} (got {_show(value)})")

    return rule


def _rule_choice(choices: frozenset[str]) -> _Check:
    listed = ", ".join(repr(c) for c in sorted(choices))

    def rule(name: str, value: object) -> FieldError | None:
        if isinstance(value, str) and value in choices:
            return None
        return FieldError(name, "choice", f"{name} must be one of {listed} (got {_show(value)})")

    return rule


def _rule_positive(name: str, value: object) -> FieldError | None:
    if isinstance(value, int | float) and value > 0:
        return None
    return FieldError(name, "positive", f"{name} must be greater than 0 (got {_show(value)})")


def _rule_charset(name: str, value: object) -> FieldError | None:
    if isinstance(value, str) and _LIST_NAME_RE.fullmatch(value) is not None:
        return None
    return FieldError(
        name, "charset", f"{name} may contain only letters, digits, '_' and '-' (got {_show(value)})"
    )


_KIND_CHECKS: Final[dict[FieldKind, tuple[_Check, tuple[_Check, ...]]]] = {
    FieldKind.STRING: (_type_string, ()),
    FieldKind.NUMBER: (_type_number, (_rule_finite,)),
    FieldKind.INTEGER: (_type_integer, (_rule_finite, _rule_integral)),
    FieldKind.BOOLEAN: (_type_boolean, ()),
    FieldKind.OBJECT: (_type_object, (_rule_json_object,)),
    FieldKind.DATETIME: (_type_datetime, (_rule_datetime,)),
    FieldKind.DATE: (_type_date, (_rule_date,)),
}

_EXTRA_CHECKS: Final[dict[_Extra, _Check]] = {
    _Extra.POSITIVE: _rule_positive,
    _Extra.CHARSET: _rule_charset,
}


# --------------------------------------------------------------------------------------------
# Compiling a model. `_chain` is the complete, readable definition of a field's check. For the
# field shapes that dominate real records a fast path accepts valid values with a few inline
# tests and defers to the chain for anything else, so errors always come from one place.


def _chain(checks: Sequence[_Check]) -> _Check:
    if len(checks) == 1:
        return checks[0]
    steps = tuple(checks)

    def check(name: str, value: object) -> FieldError | None:
        for step in steps:
            error = step(name, value)
            if error is not None:
                return error
        return None

    return check


def _fast_equals(full: _Check, expected: str) -> _Check:
    def check(name: str, value: object) -> FieldError | None:
        if type(value) is str and value == expected:
            return None
        return full(name, value)

    return check


def _fast_number(full: _Check, positive: bool) -> _Check:
    low = 0.0 if positive else -_FLOAT_MAX

    def check(name: str, value: object) -> FieldError | None:
        kind = type(value)
        # Strict at the bottom as "positive" needs; elsewhere only exactly -max takes the full path.
        if (kind is int or kind is float) and low < value <= _FLOAT_MAX:  # type: ignore[operator]
            return None
        return full(name, value)

    return check


def _fast_datetime(full: _Check) -> _Check:
    def check(name: str, value: object) -> FieldError | None:
        # Days up to 28 exist in every month: that common case needs no call. The slice is the
        # day because the string matched the pattern.
        if (
            type(value) is str
            and _DATETIME_RE.fullmatch(value) is not None
            and (value[8:10] <= "28" or _real_day(value))
        ):
            return None
        return full(name, value)

    return check


def _field_check(spec: FieldSpec, category: str | None, extra: _Extra | None) -> _Check:
    type_check, kind_rules = _KIND_CHECKS[spec.kind]
    checks: list[_Check] = [type_check]
    if spec.required:
        checks.append(_rule_not_empty)
    checks.extend(kind_rules)
    if category is not None:
        checks.append(_rule_category(category))
    if spec.choices is not None:
        checks.append(_rule_choice(spec.choices))
    if extra is not None:
        checks.append(_EXTRA_CHECKS[extra])
    full = _chain(checks)

    if category is not None:
        return _fast_equals(full, category)
    if spec.choices is not None or extra is _Extra.CHARSET:
        return full
    if spec.kind is FieldKind.NUMBER:
        return _fast_number(full, positive=extra is _Extra.POSITIVE)
    if spec.kind is FieldKind.DATETIME:
        return _fast_datetime(full)
    return full


@dataclass(frozen=True, slots=True)
class FieldRule:
    """How `validate_record` checks one model field, for code that proves checks unnecessary.

    `check(name, value)` (value not None) returns the field's first error or None; a missing
    required field is `required_error(name)`. `value_rules` says the field has rules beyond its
    kind's (a fixed category, choices, positive, charset).
    """

    spec: FieldSpec
    check: _Check
    value_rules: bool


@dataclass(frozen=True, slots=True)
class _Plan:
    # (name, is a plain required string, check): validate_record inlines the plain-string case.
    required: tuple[tuple[str, bool, _Check], ...]
    optional: Mapping[str, _Check]
    # Documented position of each field, to report errors in a stable order.
    position: Mapping[str, int]
    rules: tuple[FieldRule, ...]


def _compile(model: Model) -> _Plan:
    extras = _EXTRA_RULES.get(model.endpoint, {})
    required: list[tuple[str, bool, _Check]] = []
    optional: dict[str, _Check] = {}
    rules: list[FieldRule] = []
    for spec in model.fields.values():
        category = model.category if spec.name == "event_category" else None
        extra = extras.get(spec.name)
        check = _field_check(spec, category, extra)
        value_rules = category is not None or spec.choices is not None or extra is not None
        rules.append(FieldRule(spec, check, value_rules))
        if spec.required:
            plain = (
                spec.kind is FieldKind.STRING and category is None and spec.choices is None and extra is None
            )
            required.append((spec.name, plain, check))
        else:
            optional[spec.name] = check
    position = {name: index for index, name in enumerate(model.fields)}
    return _Plan(tuple(required), optional, position, tuple(rules))


_PLANS: Final[dict[str, _Plan]] = {key: _compile(model) for key, model in MODELS.items()}


def field_rules(endpoint: str) -> tuple[FieldRule, ...]:
    """The rules of every field of `endpoint`'s model, in documented order."""
    return _PLANS[endpoint].rules


def required_error(name: str) -> FieldError:
    return FieldError(name, "required", f"{name} is required")


def validate_record(endpoint: str, record: object) -> list[FieldError]:
    """Every problem of `record` against the model of `endpoint`; [] when it is valid.

    Fields the model does not know are not errors: the server accepts them.
    """
    plan = _PLANS.get(endpoint)
    if plan is None:
        raise ValueError(f"unknown endpoint {endpoint!r}; known: {', '.join(_PLANS)}")
    if not isinstance(record, dict):
        return [FieldError("", "record_type", f"record must be a JSON object (got {type(record).__name__})")]
    errors: list[FieldError] = []
    get = record.get
    error: FieldError | None
    for name, plain_string, check in plan.required:
        value = get(name)
        # Most fields of a record are required strings: accepting those here saves a call each.
        if plain_string and type(value) is str and value and not value.isspace():
            continue
        if value is None:
            errors.append(required_error(name))
        elif (error := check(name, value)) is not None:
            errors.append(error)
    optional = plan.optional
    # Walk whichever side is smaller: records usually carry a few of many optional fields.
    if len(record) < len(optional):
        for name, value in record.items():
            check_or_none = optional.get(name)
            if (
                check_or_none is not None
                and value is not None
                and (error := check_or_none(name, value)) is not None
            ):
                errors.append(error)
    else:
        for name, check in optional.items():
            value = get(name)
            if value is not None and (error := check(name, value)) is not None:
                errors.append(error)
    if len(errors) > 1:
        errors.sort(key=lambda e: plan.position[e.field])
    return errors


def format_errors(errors: Sequence[FieldError]) -> str:
    """One line for logs and dead-letter headers: "field: rule: message; ..."."""
    return "; ".join(
        f"{e.field}: {e.rule}: {e.message}" if e.field else f"{e.rule}: {e.message}" for e in errors
    )
