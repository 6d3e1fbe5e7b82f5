"""The sandbox's answers as the real API shapes them: `{"error", "message", "details"}` for a refusal and
`{"message", "recordIds", "count"}` for accepted records (docs/ingest-api.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from connector.devtools.sandbox.state import Invalid

__all__ = ["Reply", "accepted", "error", "invalid_records", "json_reply", "throttled", "unauthorized"]

_REASONS: Final[dict[int, str]] = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

# details.issue for each models.FieldError rule; the docs' example uses "missing required field".
_ISSUES: Final[dict[str, str]] = {
    "required": "missing required field",
    "type": "wrong type",
    "finite": "not a finite number",
    "json_object": "not a JSON object",
    "datetime": "invalid date-time",
    "date": "invalid date",
    "not_empty": "empty value",
    "category": "wrong event category",
    "choice": "value not allowed",
    "positive": "not greater than 0",
    "charset": "invalid characters",
    "record_type": "record is not an object",
    "mismatch": "does not match the request header",
}


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_reply(status: int, value: object, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, _json_bytes(value), headers)


def error(
    status: int,
    message: str,
    field: str,
    issue: str,
    *,
    headers: tuple[tuple[str, str], ...] = (),
    **extra: object,
) -> Reply:
    details: dict[str, object] = {"field": field, "issue": issue, **extra}
    reason = _REASONS.get(status, "Error")
    return json_reply(status, {"error": reason, "message": message, "details": details}, headers)


def unauthorized(field: str, issue: str, message: str) -> Reply:
    # Never echo a header value back: the token is a secret, and the others may be mistyped secrets.
    return error(401, message, field, issue)


def throttled(retry_after_s: int, message: str) -> Reply:
    return error(
        429, message, "rate_limit", "too many requests", headers=(("Retry-After", str(retry_after_s)),)
    )


def invalid_records(invalid: Invalid) -> Reply:
    err = invalid.error
    return error(
        400,
        f"Validation failed: {err.message}",
        err.field or "record",
        _ISSUES.get(err.rule, err.rule.replace("_", " ")),
        index=invalid.index,
        errors=invalid.listed,
    )


def accepted(record_ids: list[str]) -> Reply:
    count = len(record_ids)
    return json_reply(200, {"message": f"Accepted {count} records", "recordIds": record_ids, "count": count})
