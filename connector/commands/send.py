"""`send ENDPOINT FILE.jsonl`: one-off upload of JSON records (backfills, credential checks).

Reads the file as a stream, so a backfill of millions of lines runs in bounded memory. On a terminal
a progress line counts the records as the API accepts them; a request that keeps failing for
`--max-elapsed` seconds ends the run with exit 3 and one line saying what was and was not sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import httpx
from prometheus_client import Counter

from connector.config.settings import DestinationSettings, Settings
from connector.errors import ExitCode, NonFiniteNumberError, RetryBudgetExceeded
from connector.ingest.client import IngestClient
from connector.ingest.jsjson import dumps_bytes
from connector.ingest.models import MODELS
from connector.ingest.validation import format_errors, validate_record
from connector.mapping.precedence import Source, derived_values, field_source
from connector.runtime.metrics import Metrics

CHUNK_RECORDS = 5000  # records handed to the client at a time; it cuts them into requests
PROGRESS_INTERVAL_S = 0.5


@dataclass
class SendReport:
    endpoint: str
    lines: int = 0
    accepted: int = 0
    rejected: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    requests: int = 0
    retries: int = 0
    # Set when a request outlasted --max-elapsed: the client's reason; then `unsent` counts the
    # records of the file (read or not) that were neither accepted, rejected nor invalid.
    gave_up: str | None = None
    unsent: int = 0

    @property
    def exit_code(self) -> int:
        if self.gave_up is not None:
            return ExitCode.GAVE_UP
        return 0 if not self.rejected and not self.invalid else 1


def _total(counter: Counter) -> int:
    """A labelled counter's sum over its children."""
    return int(
        sum(s.value for metric in counter.collect() for s in metric.samples if s.name.endswith("_total"))
    )


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


class Progress:
    """The live line on a terminal: records read and accepted, records/s, retries.

    The counts come from the client's own metrics, so the line moves per request and keeps counting
    retries while an upload is stuck, not only between the chunks handed to the client. It redraws
    from a thread; the line ends in a carriage return so a log line printed meanwhile overwrites it
    instead of being glued to its end.
    """

    def __init__(
        self,
        report: SendReport,
        metrics: Metrics,
        stream: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = PROGRESS_INTERVAL_S,
    ) -> None:
        self._report = report
        self._metrics = metrics
        self._stream = stream
        self._clock = clock
        self._interval_s = interval_s
        self._started = clock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def text(self) -> str:
        accepted = _total(self._metrics.records_accepted)
        elapsed = self._clock() - self._started
        rate = accepted / elapsed if elapsed > 0 else 0.0
        return (
            f"{self._report.endpoint}: {self._report.lines:,} read, {accepted:,} accepted, "
            f"{rate:,.0f} records/s, {_total(self._metrics.retries):,} retries, {elapsed:,.0f} s"
        )

    def draw(self) -> None:
        self._stream.write("\033[K" + self.text() + "\r")
        self._stream.flush()

    def _loop(self) -> None:
        while not self._done.wait(self._interval_s):
            self.draw()

    def __enter__(self) -> Progress:
        self._thread = threading.Thread(target=self._loop, name="send-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self._stream.write("\033[K")  # the summary replaces the progress line
        self._stream.flush()


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


def send_file(
    endpoint: str,
    path: Path,
    settings: Settings,
    client: IngestClient,
    out: TextIO,
    *,
    metrics: Metrics,
    progress: TextIO | None = None,
) -> SendReport:
    """Upload the file; `metrics` must be the client's. With `progress` a terminal, draw on it."""
    report = SendReport(endpoint)
    records = _read(path)
    try:
        if progress is not None and _isatty(progress):
            with Progress(report, metrics, progress, interval_s=PROGRESS_INTERVAL_S):
                _send_records(endpoint, records, settings, client, out, report)
        else:
            _send_records(endpoint, records, settings, client, out, report)
    except RetryBudgetExceeded as exc:
        report.gave_up = str(exc)
        report.lines += sum(1 for _ in records)
    # The client's counters, not its results: they include the chunk it was in the middle of.
    report.accepted = _total(metrics.records_accepted)
    report.requests = _total(metrics.requests)
    report.retries = _total(metrics.retries)
    if report.gave_up is not None:
        settled = report.accepted + _total(metrics.records_rejected) + len(report.invalid)
        report.unsent = report.lines - settled
    return report


def _send_records(
    endpoint: str,
    records: Iterator[tuple[int, str]],
    settings: Settings,
    client: IngestClient,
    out: TextIO,
    report: SendReport,
) -> None:
    destination = settings.optikpi
    assert destination is not None
    chunk: list[tuple[str, bytes]] = []

    def flush() -> None:
        if not chunk:
            return
        result = client.upload_encoded(endpoint, [body for _, body in chunk])
        for rejection in result.rejected:
            label = chunk[rejection.index][0]
            status = f"HTTP {rejection.status}" if rejection.status else "not sent"
            message = f"{label}: rejected ({status}): {rejection.message}"
            report.rejected.append(message)
            print(message, file=out)
        chunk.clear()

    for number, line in records:
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


def summary(report: SendReport, path: Path) -> str:
    return (
        f"{path.name} → {report.endpoint}: {report.lines} records, {report.accepted} accepted, "
        f"{len(report.rejected)} rejected, {len(report.invalid)} invalid, {report.requests} requests, "
        f"{report.retries} retries"
    )


def api_host(base_url: str) -> str:
    """host[:port] of the API, without any user info the URL may carry."""
    url = httpx.URL(base_url)
    return url.host if url.port is None else f"{url.host}:{url.port}"


def gave_up_line(report: SendReport, base_url: str) -> str:
    return (
        f"error: gave up on {api_host(base_url)}: {report.gave_up}; "
        f"{report.accepted} records accepted, {report.unsent} not sent (exit {int(ExitCode.GAVE_UP)})"
    )
