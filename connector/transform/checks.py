"""The validation part of a compiled transform: only the checks the schema cannot rule out.

`validate_record` checks every model field of every record. Here each field's check is kept
unless the field's `Value` proves it passes: a fixed value is checked once, at compile time; an
enum's symbols are all checked at compile time; a timestamp always formats as a valid date-time;
a non-null field is always present. Every check that stays is the one `validate_record` runs
(`connector.ingest.validation.field_rules`), so rule names and messages are the same, and the
errors come out in the same (documented field) order.
"""

from __future__ import annotations

from typing import Final

from connector.ingest.models import FieldKind
from connector.ingest.validation import FieldError, FieldRule, field_rules, required_error
from connector.transform.fields import FieldCode, Value
from connector.transform.source import Source, literal

__all__ = ["emit_checks"]

# The values that pass a field's kind check and its kind's rules, whatever the value is. Rules
# beyond the kind (category, choices, positive, charset) are never proved here, except for
# finitely many values, which are simply checked.
_PASSES: Final[dict[FieldKind, frozenset[Value]]] = {
    FieldKind.STRING: frozenset({Value.NONBLANK_STR, Value.ISO_DATETIME, Value.ISO_DATE}),
    FieldKind.NUMBER: frozenset({Value.SMALL_INT, Value.INT, Value.FLOAT, Value.NUMBER}),
    FieldKind.INTEGER: frozenset({Value.SMALL_INT, Value.INT}),
    FieldKind.BOOLEAN: frozenset({Value.BOOL}),
    FieldKind.OBJECT: frozenset({Value.DICT}),  # the JSON-object rule applies to strings only
    FieldKind.DATETIME: frozenset({Value.ISO_DATETIME}),
    FieldKind.DATE: frozenset({Value.ISO_DATE}),
}


def _proved(rule: FieldRule, field: FieldCode) -> bool:
    """Whether the check of `rule` passes for every present value of `field`."""
    name = rule.spec.name
    if field.symbols is not None:
        return all(rule.check(name, symbol) is None for symbol in field.symbols)
    if rule.value_rules:
        return False
    if field.value is Value.STR:
        # Only "not empty" can fail a plain string; optional fields do not have that rule.
        return rule.spec.kind is FieldKind.STRING and not rule.spec.required
    return field.value in _PASSES[rule.spec.kind]


def _fixed_error(rule: FieldRule, field: FieldCode | None) -> FieldError | None:
    """The error of a field whose value never changes: one that is never mapped, or fixed."""
    value = None if field is None else field.fixed
    if value is None:
        return required_error(rule.spec.name) if rule.spec.required else None
    return rule.check(rule.spec.name, value)


def emit_checks(endpoint: str, fields: list[FieldCode], src: Source, indent: int) -> bool:
    """Emit code that appends to `errors` what validate_record would find; False when it is
    proved that nothing can be found (and nothing was emitted)."""
    by_name = {field.name: field for field in fields}
    emitted = False
    for rule in field_rules(endpoint):
        name = rule.spec.name
        field = by_name.get(name)
        if field is None or not field.var:
            error = _fixed_error(rule, field)
            if error is not None:
                src.add(indent, f"errors.append({src.bind('error', error)})")
                emitted = True
            continue
        var, proved = field.var, _proved(rule, field)
        if proved and not (field.maybe_absent and rule.spec.required):
            continue
        emitted = True
        check = src.bind("check", rule.check)
        found = f"(error := {check}({literal(name)}, {var})) is not None"
        if field.value is Value.STR and rule.spec.kind is FieldKind.STRING and not rule.value_rules:
            found = f"(not {var} or {var}.isspace()) and {found}"  # the only way a str fails here
        if not field.maybe_absent:
            src.add(indent, f"if {found}: errors.append(error)")
            continue
        if rule.spec.required:
            src.add(indent, f"if {var} is None: errors.append({src.bind('error', required_error(name))})")
            if not proved:
                src.add(indent, f"elif {found}: errors.append(error)")
        else:
            src.add(indent, f"if {var} is not None and {found}: errors.append(error)")
    return emitted
