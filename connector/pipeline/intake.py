"""Intake: consumed records to request bodies or poison, one transform per (topic, writer schema).

In the consumer process each value is framed and its writer schema found (`frame`: the registry
client and its outage handling stay here); the first record of a (topic, schema key) makes the
`TransformSpec` its transform is built from. Transforms run inline (`InlineIntake`) or in worker
processes (`PooledIntake`); either way each result is handed to `apply` in offset order within
its partition, so batching, dead-lettering and commits see what they saw before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

from connector.errors import DecodeError, RecordError, UnknownSchemaError
from connector.kafka.ports import Record, TopicPartition
from connector.mapping.compiled import TopicMapping
from connector.transform.factory import TransformFactory
from connector.transform.framing import ValueFraming
from connector.transform.spec import Poison, Transform, TransformSpec
from connector.transform.workers import TransformPool

__all__ = ["CHUNK_RECORDS", "InlineIntake", "Intake", "PooledIntake", "Route", "frame", "poison_of"]

CHUNK_RECORDS = 256  # records per chunk sent to a worker: enough to amortise a round trip

Result = bytes | Poison


class Route:
    """One topic: its mapping, how its values are framed, and what each schema key turned out to be."""

    __slots__ = ("_specs", "framing", "mapping", "transforms")

    def __init__(self, mapping: TopicMapping, framing: ValueFraming) -> None:
        self.mapping = mapping
        self.framing = framing
        self._specs: dict[int, TransformSpec | Poison] = {}
        self.transforms: dict[int, Transform] = {}  # built inline, by schema key

    def spec(self, schema_key: int) -> TransformSpec | Poison:
        """Raises RegistryUnavailable: not poison, just not yet."""
        known = self._specs.get(schema_key)
        if known is None:
            try:
                known = self.framing.spec(schema_key, self.mapping)
            except UnknownSchemaError as exc:  # not kept: the registry client decides when to ask again
                return poison_of(exc)
            except DecodeError as exc:  # an unusable schema stays unusable
                known = poison_of(exc)
            self._specs[schema_key] = known
        return known


def poison_of(exc: RecordError) -> Poison:
    return Poison(exc.stage, type(exc).__name__, str(exc))


def frame(route: Route, record: Record) -> tuple[int, TransformSpec, bytes] | Poison:
    """(schema key, spec, Avro payload) of a record, or why it is poison. Raises RegistryUnavailable."""
    try:
        schema_key, payload = route.framing.frame(record.value)
    except DecodeError as exc:
        return poison_of(exc)
    spec = route.spec(schema_key)
    if isinstance(spec, Poison):
        return spec
    return schema_key, spec, payload


Apply = Callable[[Record, Route, Result], None]


class Intake(Protocol):
    def submit(
        self, record: Record, route: Route, schema_key: int, spec: TransformSpec, payload: bytes
    ) -> None:
        """Transform the record (now or later); its result goes to `apply` in partition order."""
        ...

    def reject(self, record: Record, route: Route, poison: Poison) -> None:
        """A record that is poison before any transform: to `apply` in partition order too."""
        ...

    def flush(self) -> None:
        """Send what waits to fill a chunk (end of a poll)."""
        ...

    def collect(self) -> int:
        """Apply the results that are back, in partition order; returns how many were applied."""
        ...

    @property
    def busy(self) -> bool:
        """Results are still out."""
        ...

    def drop_partitions(self, gone: Iterable[TopicPartition]) -> None:
        """Forget these partitions' records: results that come back for them are not applied."""
        ...

    def close(self, timeout_s: float) -> None: ...


class InlineIntake:
    """Transforms in the consumer process, at submit time."""

    def __init__(self, apply: Apply, make: TransformFactory) -> None:
        self._apply = apply
        self._make = make

    def submit(
        self, record: Record, route: Route, schema_key: int, spec: TransformSpec, payload: bytes
    ) -> None:
        transform = route.transforms.get(schema_key)
        if transform is None:
            transform = route.transforms[schema_key] = self._make(spec)
        self._apply(record, route, transform(payload))

    def reject(self, record: Record, route: Route, poison: Poison) -> None:
        self._apply(record, route, poison)

    def flush(self) -> None:
        pass

    def collect(self) -> int:
        return 0

    @property
    def busy(self) -> bool:
        return False

    def drop_partitions(self, gone: Iterable[TopicPartition]) -> None:
        pass

    def close(self, timeout_s: float) -> None:
        pass


class _Slot:
    """A record whose result is applied once it and every earlier record of its partition have one."""

    __slots__ = ("record", "result", "route")

    def __init__(self, record: Record, route: Route, result: Result | None = None) -> None:
        self.record = record
        self.route = route
        self.result = result


class PooledIntake:
    """Transforms in worker processes: chunks per (topic, schema key), results applied in order."""

    def __init__(self, pool: TransformPool, apply: Apply, chunk_records: int | None = None) -> None:
        self._pool = pool
        self._apply = apply
        self._chunk_records = chunk_records or CHUNK_RECORDS
        self._lines: dict[TopicPartition, deque[_Slot]] = {}  # per partition, in offset order
        self._open: dict[tuple[str, int], tuple[TransformSpec, list[_Slot], list[bytes]]] = {}
        self._sent: dict[int, tuple[list[_Slot], list[int]]] = {}  # chunk id → slots, results left

    def submit(
        self, record: Record, route: Route, schema_key: int, spec: TransformSpec, payload: bytes
    ) -> None:
        slot = _Slot(record, route)
        line = self._lines.get(record.tp)
        if line is None:
            line = self._lines[record.tp] = deque()
        line.append(slot)
        key = (record.topic, schema_key)
        chunk = self._open.get(key)
        if chunk is None:
            chunk = self._open[key] = (spec, [], [])
        chunk[1].append(slot)
        chunk[2].append(payload)
        if len(chunk[2]) >= self._chunk_records:
            self._send(key)

    def reject(self, record: Record, route: Route, poison: Poison) -> None:
        line = self._lines.get(record.tp)
        if line:
            line.append(_Slot(record, route, poison))
        else:
            self._apply(record, route, poison)

    def flush(self) -> None:
        for key in list(self._open):
            self._send(key)

    def _send(self, key: tuple[str, int]) -> None:
        spec, slots, payloads = self._open.pop(key)
        self._sent[self._pool.submit(key, spec, payloads)] = (slots, [len(slots)])

    def collect(self) -> int:
        touched: set[TopicPartition] = set()
        for chunk_id, start, results in self._pool.completed():
            slots, left = self._sent[chunk_id]
            for slot, result in zip(slots[start : start + len(results)], results, strict=True):
                slot.result = result
                touched.add(slot.record.tp)
            left[0] -= len(results)
            if left[0] == 0:
                del self._sent[chunk_id]
        applied = 0
        for tp in touched:
            line = self._lines.get(tp)
            while line and line[0].result is not None:
                slot = line.popleft()
                assert slot.result is not None
                self._apply(slot.record, slot.route, slot.result)
                applied += 1
        return applied

    @property
    def busy(self) -> bool:
        return self._pool.in_flight > 0

    def drop_partitions(self, gone: Iterable[TopicPartition]) -> None:
        for tp in gone:
            self._lines.pop(tp, None)

    def close(self, timeout_s: float) -> None:
        self._pool.close(timeout_s)
