"""`send ENDPOINT FILE.jsonl`: one-off upload of JSON records (backfills, credential checks).

Reads the file as a stream, so a backfill of millions of lines runs in bounded memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from connector.config.settings import DestinationSettings, Settings
from connector.errors import NonFiniteNumberError
from connector.ingest.client import IngestClient
from connector.ingest.jsjson import dumps_bytes
from connector.ingest.models import MODELS
from connector.ingest.validation import format_errors, validate_record
from connector.mapping.precedence import Source, derived_values, field_source

CHUNK_RECORDS = 5000  # records handed to the client at a time; it cuts them into requests


@dataclass
class SendReport:
    endpoint: str
    lines: int = 0
    accepted: int = 0
    rejected: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    requests: int = 0

    @property
    def exit_code(self) -> int:
        return 0 if not self.rejected and not self.invalid else 1


def complete_record(
    endpoint: str, record: dict[str, Any], destination: DestinationSettings
) -> dict[str, Any]:
    """Fill what the connector would fill: the destination ids and the endpoint's fixed category.

    The record's own fields are the explicit ones: they win, as mapped `fields` do in a mapping.
    """
    out = dict(record)
    derived = derived_values(MODELS[endpoint], destination)
    for name, value in derived.items():
        source = field_source(name, fields=record, constants={}, derived=derived, copy_matching=False)
        if source is Source.DERIVED:
            out[name] = value
    return out


def _label(line: int, record: Mapping[str, Any]) -> str:
    for key in ("event_id", "user_id"):  # customers and extattributes have no event_id
        ident = record.get(key)
        if isinstance(ident, str | int) and not isinstance(ident, bool) and ident != "":
            return f"{key} {ident} (line {line})"
    return f"line {line}"


def _read(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def send_file(endpoint: str, path: Path, settings: Settings, client: IngestClient, out: TextIO) -> SendReport:
    destination = settings.optikpi
    assert destination is not None
    report = SendReport(endpoint)
    chunk: list[tuple[str, bytes]] = []

    def flush() -> None:
        if not chunk:
            return
        result = client.upload_encoded(endpoint, [body for _, body in chunk])
        report.accepted += result.accepted
        report.requests += result.requests
        for rejection in result.rejected:
            label = chunk[rejection.index][0]
            status = f"HTTP {rejection.status}" if rejection.status else "not sent"
            message = f"{label}: rejected ({status}): {rejection.message}"
            report.rejected.append(message)
            print(message, file=out)
        chunk.clear()

    for number, line in _read(path):
        report.lines += 1
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            report.invalid.append(f"line {number}: invalid JSON ({exc.msg} at column {exc.colno})")
            print(report.invalid[-1], file=out)
            continue
        if not isinstance(record, dict):
            report.invalid.append(f"line {number}: expected a JSON object, got {type(record).__name__}")
            print(report.invalid[-1], file=out)
            continue
        record = complete_record(endpoint, record, destination)
        label = _label(number, record)
        errors = validate_record(endpoint, record)
        if errors:
            report.invalid.append(f"{label}: invalid: {format_errors(errors)}")
            print(report.invalid[-1], file=out)
            continue
        try:
            body = dumps_bytes(record)
        except (NonFiniteNumberError, TypeError) as exc:
            report.invalid.append(f"{label}: invalid: {exc}")
            print(report.invalid[-1], file=out)
            continue
        chunk.append((label, body))
        if len(chunk) >= CHUNK_RECORDS:
            flush()
    flush()
    return report


def summary(report: SendReport, path: Path) -> str:
    return (
        f"{path.name} → {report.endpoint}: {report.lines} records, {report.accepted} accepted, "
        f"{len(report.rejected)} rejected, {len(report.invalid)} invalid, {report.requests} requests"
    )
