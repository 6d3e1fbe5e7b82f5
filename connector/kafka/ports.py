"""The small port the pipeline talks to instead of confluent-kafka.

`connector.kafka.consumer`, `.producer` and `.admin` implement it on a real broker,
`connector.kafka.memory` in memory with an injectable clock, so the commit, rebalance and
backpressure logic is tested deterministically; tests/contract checks that both behave alike.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import Future
from threading import Event
from typing import NamedTuple, Protocol, TypeAlias

from connector.errors import DeliveryError

Header = tuple[str, bytes | None]


class TopicPartition(NamedTuple):
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]"


_RawHeaderList: TypeAlias = Iterable[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None] | None
RawHeaders: TypeAlias = Callable[[], _RawHeaderList]


def _convert_headers(raw: _RawHeaderList) -> tuple[Header, ...]:
    pairs = raw.items() if isinstance(raw, Mapping) else raw or ()
    return tuple((name, value.encode() if isinstance(value, str) else value) for name, value in pairs)


class Record:
    """One consumed Kafka record; its position travels with it all the way to the commit.

    A plain slots class, not a dataclass: one is built per consumed message, on the hot path.
    `tp` is the partition's one shared `TopicPartition` when the consumer passes it. `headers` may
    be given as a callable returning the client's raw headers: they are converted on first read,
    which for most records (those never dead-lettered) is never.
    """

    __slots__ = ("_headers", "key", "offset", "partition", "timestamp_ms", "topic", "tp", "value")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: tuple[Header, ...] | RawHeaders = (),
        timestamp_ms: int | None = None,
        tp: TopicPartition | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self._headers = headers
        self.timestamp_ms = timestamp_ms
        self.tp = tp if tp is not None else TopicPartition(topic, partition)

    @property
    def headers(self) -> tuple[Header, ...]:
        headers = self._headers
        if not isinstance(headers, tuple):
            headers = self._headers = _convert_headers(headers())
        return headers

    def _fields(self) -> tuple[object, ...]:
        return (
            self.topic,
            self.partition,
            self.offset,
            self.key,
            self.value,
            self.headers,
            self.timestamp_ms,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"Record(topic={self.topic!r}, partition={self.partition}, offset={self.offset}, "
            f"key={self.key!r}, value={self.value!r}, headers={self.headers!r}, "
            f"timestamp_ms={self.timestamp_ms})"
        )


class RebalanceListener(Protocol):
    """Called from inside `ConsumerPort.consume`, on the consuming thread."""

    def on_assign(self, partitions: Sequence[TopicPartition]) -> None: ...

    def on_revoke(self, partitions: Sequence[TopicPartition]) -> None: ...

    def on_lost(self, partitions: Sequence[TopicPartition]) -> None: ...


class ConsumerPort(Protocol):
    def subscribe(self, topics: Sequence[str], listener: RebalanceListener) -> None: ...

    def consume(self, max_records: int, timeout_s: float, wake: Event | None = None) -> list[Record]:
        """Up to `max_records` records; waits at most `timeout_s`, and returns early (perhaps with
        nothing) once `wake` is set. Rebalance callbacks run in here."""
        ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Synchronously commit: each value is the next offset to read. Raises CommitError."""
        ...

    def pause(self, partitions: Iterable[TopicPartition]) -> None: ...

    def resume(self, partitions: Iterable[TopicPartition]) -> None: ...

    def assignment(self) -> set[TopicPartition]: ...

    def committed(
        self, partitions: Iterable[TopicPartition], timeout_s: float
    ) -> dict[TopicPartition, int | None]: ...

    def high_watermarks(self) -> dict[TopicPartition, int]:
        """End offsets as last seen in fetched data (not ListOffsets: some brokers answer it wrongly)."""
        ...

    def close(self, timeout_s: float = 0.0) -> None:
        """Leave the group. No commit happens here; the caller commits first. A join still in
        progress gets up to `timeout_s` to finish first: a leave cannot overtake it."""
        ...


DeliveryCallback = Callable[[DeliveryError | None], None]


class ProducerPort(Protocol):
    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[Header],
        on_delivery: DeliveryCallback,
        partition: int | None = None,
    ) -> None:
        """Queue a record. `on_delivery` runs later, from `poll` or `flush`, on the calling thread."""
        ...

    def poll(self, timeout_s: float) -> int:
        """Serve delivery callbacks; returns how many ran."""
        ...

    def flush(self, timeout_s: float) -> int:
        """Wait for outstanding deliveries; returns how many are still outstanding."""
        ...

    def close(self) -> None: ...


class AdminPort(Protocol):
    def create_topics(self, names: Sequence[str], partitions: int, timeout_s: float) -> None:
        """Create the topics that do not exist yet (existing ones are left as they are)."""
        ...

    def list_topics(self, timeout_s: float) -> dict[str, int]:
        """Topic name → partition count."""
        ...

    def query_end_offsets(
        self, partitions: Collection[TopicPartition], timeout_s: float
    ) -> Future[dict[TopicPartition, int]]:
        """Ask the partitions' leaders for their end offsets (ListOffsets) and return at once; the
        answer arrives in the future within about `timeout_s`. Partitions that got no answer are
        left out; the future fails when none did. For partitions that fetch nothing (paused):
        some brokers answer too low (Tansu: the last batch's first offset + 1), so callers take
        it together with the end offset last fetched, never instead of it."""
        ...
