"""Redriving dead-letter records to the topics they came from (or another one).

Replay re-publishes a record as it was before it failed: original key, value and headers, byte for
byte, minus the headers the dead-letter writer added, plus `optikpi.replayed_from`.

A copy written without its value (`optikpi.value.omitted`: the original was too large for the
dead-letter topic) is never replayed: it would publish a null, which a compacted topic takes as a
tombstone that deletes the key. It is named instead, with where its original still is.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from connector.dlq.read import DeadLetter
from connector.errors import DeliveryError
from connector.kafka.ports import Header, ProducerPort, Record
from connector.pipeline.deadletter import ADDED_HEADERS, H_TOPIC, value_omitted

REPLAYED_FROM = "optikpi.replayed_from"

_CONNECT_ERRORS_PREFIX = "__connect.errors."
_STRIPPED_ON_REPLAY = ADDED_HEADERS | {REPLAYED_FROM}


def replay_headers(record: Record, dlq_topic: str) -> list[Header]:
    """The original headers, byte for byte and in order, then where this copy came from."""
    kept = [
        (name, value)
        for name, value in record.headers
        if name not in _STRIPPED_ON_REPLAY and not name.startswith(_CONNECT_ERRORS_PREFIX)
    ]
    kept.append((REPLAYED_FROM, f"{dlq_topic}:{record.partition}:{record.offset}".encode()))
    return kept


@dataclass(frozen=True)
class ReplayItem:
    record: Record
    topic: str
    partition: int | None  # None: the producer's partitioner (by key)
    headers: tuple[Header, ...]


def original_location(entry: DeadLetter) -> str:
    """Where a dead letter's original record is, e.g. `bets partition 2 offset 1234`."""
    return f"{entry.topic or '?'} partition {_or_unknown(entry.partition)} offset {_or_unknown(entry.offset)}"


def _or_unknown(number: int | None) -> str:
    return "?" if number is None else str(number)


def skip_reason(record: Record) -> str:
    """Why `plan_replay` left a record out."""
    size = value_omitted(record.headers)
    if size is not None:
        return (
            f"its value ({size} bytes) was too large for the dead-letter topic and was not kept; "
            "replaying it would publish a null (a tombstone on a compacted topic). The original is "
            f"at {original_location(DeadLetter.from_record(record))} while that topic's retention keeps it"
        )
    return f"no {H_TOPIC} header; use --to TOPIC"


def plan_replay(
    records: Iterable[Record], dlq_topic: str, to: str | None, partition_counts: Mapping[str, int]
) -> tuple[list[ReplayItem], list[Record]]:
    """(what to send, records that cannot be replayed: they do not say where they came from, or
    their value was omitted; `skip_reason` says which).

    Back to its original topic a record keeps its original partition, so it lands beside the other
    records of its key whatever partitioner first wrote them.
    """
    items: list[ReplayItem] = []
    skipped: list[Record] = []
    for record in records:
        entry = DeadLetter.from_record(record)
        target = to or entry.topic
        if not target or value_omitted(record.headers) is not None:
            skipped.append(record)
            continue
        partition = entry.partition if target == entry.topic else None
        if partition is not None and not 0 <= partition < partition_counts.get(target, 0):
            partition = None
        items.append(ReplayItem(record, target, partition, tuple(replay_headers(record, dlq_topic))))
    return items, skipped


@dataclass
class ReplayReport:
    sent: int = 0
    delivered: int = 0
    failures: list[tuple[ReplayItem, str]] = field(default_factory=list)
    by_topic: Counter[str] = field(default_factory=Counter)


def replay(
    items: Sequence[ReplayItem],
    producer: ProducerPort,
    rate: float,
    *,
    delivery_timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayReport:
    """Send at most `rate` records per second and wait for every delivery report."""
    report = ReplayReport()
    due = clock()
    for item in items:
        wait = due - clock()
        if wait > 0:
            sleep(wait)
        # Paced from the previous send, not from the start: falling behind never turns into a burst.
        due = max(due, clock()) + 1 / rate
        producer.poll(0)

        def delivered(error: DeliveryError | None, item: ReplayItem = item) -> None:
            if error is None:
                report.delivered += 1
                report.by_topic[item.topic] += 1
            else:
                report.failures.append((item, str(error)))

        r = item.record
        producer.produce(item.topic, r.key, r.value, item.headers, delivered, partition=item.partition)
        report.sent += 1
    deadline = clock() + delivery_timeout_s
    while producer.flush(max(0.0, min(1.0, deadline - clock()))) and clock() < deadline:
        pass
    return report
