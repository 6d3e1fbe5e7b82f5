"""`dlq list / show / stats / replay`: inspect and redrive the dead-letter topic.

This module runs one command: it reads the topic (`connector.dlq.read`), shows what it found
(`connector.dlq.render`) or redrives it (`connector.dlq.replay`), and decides the exit code.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING

from connector.config.settings import Settings
from connector.dlq.read import (
    DeadLetter,
    Filters,
    PartitionSource,
    ReadResult,
    parse_position,
    read_partitions,
    select,
)
from connector.dlq.render import (
    compute_stats,
    dry_run_json,
    dry_run_lines,
    entry_json,
    list_lines,
    show_json,
    show_lines,
    stats_lines,
)
from connector.dlq.replay import ReplayItem, ReplayReport, plan_replay, replay, skip_reason
from connector.errors import ConfigError, ExitCode, KafkaPortError
from connector.kafka.ports import ProducerPort, Record, TopicPartition

if TYPE_CHECKING:
    from connector.avro.registry import SchemaRegistryClient

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RATE = 100.0

_MAX_LISTED_FAILURES = 10


@dataclass(frozen=True)
class DlqRequest:
    """One `dlq` command as the command line asked for it."""

    action: str  # list | show | stats | replay
    filters: Filters = Filters()  # noqa: RUF009 - Filters is frozen, so sharing one default is safe
    as_json: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    position: str | None = None  # show
    to: str | None = None  # replay
    dry_run: bool = False
    rate: float = DEFAULT_RATE
    yes: bool = False


@dataclass
class _Io:
    out: IO[str]
    err: IO[str]

    def print(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self.out)

    def json(self, doc: object) -> None:
        print(json.dumps(doc, indent=2, ensure_ascii=False), file=self.out)

    def error(self, message: str) -> None:
        print(message, file=self.err)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def run_dlq(
    settings: Settings,
    request: DlqRequest,
    *,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    stdin: IO[str] | None = None,
    now: datetime | None = None,
    source_factory: Callable[[], PartitionSource] | None = None,
    producer_factory: Callable[[], ProducerPort] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run one `dlq` command; returns the exit code. ConfigError for a configuration problem."""
    io = _Io(out or sys.stdout, err or sys.stderr)
    stdin = stdin or sys.stdin
    if request.action == "replay" and not (request.yes or request.dry_run) and not _isatty(stdin):
        io.error(
            "error: stdin is not a terminal, so dlq replay cannot ask for confirmation: pass --yes "
            "(or --dry-run)"
        )
        return ExitCode.USAGE
    assert settings.kafka is not None and settings.dead_letter is not None
    dlq_topic = settings.dead_letter.topic
    source = _open(settings, source_factory)
    try:
        try:
            topics = source.topics(request.timeout_s)
        except KafkaPortError as exc:
            io.error(
                f"error: cannot reach Kafka at {settings.kafka.bootstrap_servers} within "
                f"{request.timeout_s:g} s: {source.last_error or exc}"
            )
            return ExitCode.FAILURE
        partitions = topics.get(dlq_topic, 0)
        if request.action == "show":
            return _show(settings, request, source, dlq_topic, partitions, io)
        if not partitions:
            io.error(
                f"note: the dead-letter topic {dlq_topic} does not exist (yet): nothing was dead-lettered"
            )
            result = ReadResult([])
        else:
            positions = {TopicPartition(dlq_topic, p): None for p in range(partitions)}
            try:
                result = read_partitions(source, positions, idle_timeout_s=request.timeout_s, clock=clock)
            except KafkaPortError as exc:
                io.error(f"error: reading {dlq_topic} failed: {exc}")
                return ExitCode.FAILURE
    finally:
        source.close()
    if result.incomplete:
        names = ", ".join(str(tp.partition) for tp in result.incomplete)
        io.error(
            f"warning: partition(s) {names} of {dlq_topic} sent nothing for {request.timeout_s:g} s "
            "before their end was reached: the result is incomplete"
        )
    selected = select(result.records, request.filters)
    moment = now or datetime.now(UTC)
    if request.action == "list":
        code = _list(selected, dlq_topic, result, moment, request.as_json, io)
    elif request.action == "stats":
        code = _stats(selected, dlq_topic, result, request.as_json, io)
    elif request.action == "replay":
        code = _replay(
            settings, request, selected, dlq_topic, topics, io, stdin, producer_factory, clock, sleep
        )
    else:
        raise ValueError(f"unknown dlq action {request.action!r}")
    return ExitCode.FAILURE if result.incomplete else code


def _open(settings: Settings, factory: Callable[[], PartitionSource] | None) -> PartitionSource:
    if factory is not None:
        return factory()
    from connector.kafka.config import reader_config
    from connector.kafka.rdlogs import LibrdkafkaLogs
    from connector.kafka.reader import PartitionReader

    k = settings.kafka
    assert k is not None
    try:
        return PartitionReader(
            reader_config(
                k.bootstrap_servers,
                k.properties,
                client_id="optikpi-connector-dlq",
                logs=LibrdkafkaLogs(reported_by_caller=True),  # this command says it in one line
            )
        )
    except KafkaPortError as exc:  # librdkafka refused a property: the user's configuration
        raise ConfigError([f"{settings.source}: kafka.properties: {exc}"]) from None


def _list(
    selected: Sequence[Record], dlq_topic: str, result: ReadResult, now: datetime, as_json: bool, io: _Io
) -> int:
    entries = [DeadLetter.from_record(r) for r in selected]
    if as_json:
        io.json(
            {
                "topic": dlq_topic,
                "complete": not result.incomplete,
                "count": len(entries),
                "records": [entry_json(e, now) for e in entries],
            }
        )
    elif entries:
        io.print(*list_lines(entries, now))
    else:
        io.print("no matching dead-letter records")
    return ExitCode.OK


def _stats(selected: Sequence[Record], dlq_topic: str, result: ReadResult, as_json: bool, io: _Io) -> int:
    stats = compute_stats(DeadLetter.from_record(r) for r in selected)
    if as_json:
        io.json(
            {
                "topic": dlq_topic,
                "complete": not result.incomplete,
                "total": stats.total,
                "by_stage": stats.by_stage,
                "by_reason": stats.by_reason,
                "by_endpoint": stats.by_endpoint,
                "by_topic": stats.by_topic,
            }
        )
    else:
        io.print(*stats_lines(stats, dlq_topic))
    return ExitCode.OK


def _show(
    settings: Settings,
    request: DlqRequest,
    source: PartitionSource,
    dlq_topic: str,
    partitions: int,
    io: _Io,
) -> int:
    assert request.position is not None
    try:
        partition, offset = parse_position(request.position)
    except ValueError as exc:
        io.error(f"error: {exc}")
        return ExitCode.USAGE
    if partition is None:
        if partitions > 1:
            io.error(f"error: {dlq_topic} has {partitions} partitions: give PARTITION:OFFSET")
            return ExitCode.USAGE
        partition = 0
    if partition >= partitions:
        what = "does not exist" if not partitions else f"has no partition {partition}"
        io.error(f"not found: {dlq_topic} {what}")
        return ExitCode.FAILURE
    tp = TopicPartition(dlq_topic, partition)
    try:
        result = read_partitions(
            source, {tp: offset}, idle_timeout_s=request.timeout_s, stop=lambda r: r.offset >= offset
        )
    except KafkaPortError as exc:
        io.error(f"error: reading {dlq_topic} failed: {exc}")
        return ExitCode.FAILURE
    record = next((r for r in result.records if r.offset == offset), None)
    if record is None:
        if result.incomplete:
            io.error(f"error: partition {partition} of {dlq_topic} sent nothing for {request.timeout_s:g} s")
        else:
            io.error(f"not found: {dlq_topic} has no record at {partition}:{offset}")
        return ExitCode.FAILURE
    registry = _registry_if_needed(settings, record.value)
    try:
        doc = show_json(record, dlq_topic, registry)
    finally:
        if registry is not None:
            registry.close()
    if request.as_json:
        io.json(doc)
    else:
        io.print(*show_lines(doc))
    return ExitCode.OK


def _registry_if_needed(settings: Settings, value: bytes | None) -> SchemaRegistryClient | None:
    if settings.schema_registry is None or not value or value[0] != 0:
        return None
    from connector.pipeline.wiring import build_registry

    return build_registry(settings)


def _replay(
    settings: Settings,
    request: DlqRequest,
    selected: Sequence[Record],
    dlq_topic: str,
    topics: Mapping[str, int],
    io: _Io,
    stdin: IO[str],
    producer_factory: Callable[[], ProducerPort] | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> int:
    items, skipped = plan_replay(selected, dlq_topic, request.to, topics)
    for record in skipped:
        io.error(f"skipped {record.partition}:{record.offset}: {skip_reason(record)}")
    targets = Counter(item.topic for item in items)
    missing = sorted(t for t in targets if t not in topics)
    if missing:
        io.error(f"error: target topic(s) {', '.join(missing)} do not exist; nothing replayed")
        return ExitCode.FAILURE
    if request.dry_run:
        if request.as_json:
            io.json(
                {
                    "dry_run": True,
                    "topic": dlq_topic,
                    "selected": len(selected),
                    "skipped": len(skipped),
                    "records": dry_run_json(items),
                }
            )
        else:
            io.print(f"dry run: {len(items)} record(s) would be replayed; nothing was sent")
            if items:
                io.print(*dry_run_lines(items))
        return ExitCode.FAILURE if skipped else ExitCode.OK
    if not items:
        if request.as_json:
            io.json({"dry_run": False, "topic": dlq_topic, "selected": len(selected), "sent": 0})
        else:
            io.print("nothing to replay")
        return ExitCode.FAILURE if skipped else ExitCode.OK
    if not request.yes:
        summary = ", ".join(f"{topic} ({n})" for topic, n in sorted(targets.items()))
        io.err.write(f"replay {len(items)} record(s) to {summary}? [y/N] ")
        io.err.flush()
        if stdin.readline().strip().lower() not in ("y", "yes"):
            io.error("aborted: nothing replayed")
            return ExitCode.FAILURE
    report = _send(settings, request, items, producer_factory, clock, sleep)
    if request.as_json:
        io.json(
            {
                "dry_run": False,
                "topic": dlq_topic,
                "selected": len(selected),
                "skipped": len(skipped),
                "sent": report.sent,
                "delivered": report.delivered,
                "failed": len(report.failures),
                "by_topic": dict(sorted(report.by_topic.items())),
                "failures": [
                    {
                        "dlq_partition": i.record.partition,
                        "dlq_offset": i.record.offset,
                        "topic": i.topic,
                        "error": e,
                    }
                    for i, e in report.failures
                ],
            }
        )
    else:
        failed = len(report.failures)
        io.print(f"replayed {report.sent} record(s): {report.delivered} delivered, {failed} failed")
        for topic, n in sorted(report.by_topic.items()):
            io.print(f"  {topic}: {n}")
        for item, error in report.failures[:_MAX_LISTED_FAILURES]:
            io.error(f"failed {item.record.partition}:{item.record.offset} → {item.topic}: {error}")
        if failed > _MAX_LISTED_FAILURES:
            io.error(f"… and {failed - _MAX_LISTED_FAILURES} more failures")
    ok = report.delivered == report.sent and not skipped
    return ExitCode.OK if ok else ExitCode.FAILURE


def _send(
    settings: Settings,
    request: DlqRequest,
    items: Sequence[ReplayItem],
    producer_factory: Callable[[], ProducerPort] | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> ReplayReport:
    if producer_factory is not None:
        producer = producer_factory()
    else:
        from connector.kafka.producer import KafkaProducer
        from connector.pipeline.wiring import kafka_producer_config

        try:
            producer = KafkaProducer(kafka_producer_config(settings))
        except KafkaPortError as exc:
            raise ConfigError([f"{settings.source}: kafka.properties: {exc}"]) from None
    try:
        # A delivery report is due within librdkafka's message timeout; past a generous wait the
        # records still outstanding are counted as failed (closing reports them so).
        return replay(
            items,
            producer,
            request.rate,
            delivery_timeout_s=max(30.0, 3 * request.timeout_s),
            clock=clock,
            sleep=sleep,
        )
    finally:
        producer.close()
