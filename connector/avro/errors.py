"""The two error families that leave the avro package, and the pipeline must never confuse.

`DecodeError` is about the record (dead-letter it, stage DECODE); `RegistryUnavailable` is about
the infrastructure (retry, pause, never dead-letter). `RegistryError` is a refused registry write
or lookup, for the commands that register schemas.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DecodeError",
    "RegistryAuthError",
    "RegistryError",
    "RegistryUnavailable",
    "UnknownSchemaError",
    "shorten",
]

_MAX_REASON: Final = 300


class DecodeError(Exception):
    """The record cannot be decoded: a permanent problem of the record (dead-letter, stage DECODE)."""


class UnknownSchemaError(DecodeError):
    """The registry does not know the schema id the record was written with."""

    def __init__(self, schema_id: int) -> None:
        self.schema_id = schema_id
        super().__init__(f"schema id {schema_id} is not known to the schema registry")


class RegistryUnavailable(Exception):
    """The registry cannot answer now (network, timeout, 5xx, 429, ...): retry, never dead-letter."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class RegistryAuthError(RegistryUnavailable):
    """401/403: a credentials problem, not a data problem. Retried like an outage, but worth a loud log."""


class RegistryError(Exception):
    """The registry refused a write or lookup for good (e.g. 409 incompatible, 422 invalid schema)."""

    def __init__(self, message: str, status: int | None = None, error_code: int | None = None) -> None:
        self.status = status
        self.error_code = error_code
        super().__init__(message)


def shorten(text: object, limit: int = _MAX_REASON) -> str:
    """`text` cut to `limit` characters: reasons end up in logs and dead-letter headers."""
    s = str(text)
    return s if len(s) <= limit else s[: limit - 3] + "..."
