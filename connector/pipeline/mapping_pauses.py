"""Topics paused because their mapping cannot apply to one of their own writer schemas.

That is a configuration error, not poison: dead-lettering would empty the topic into the
dead-letter topic until someone noticed. So the topic's partitions pause, the record that showed
it and every later record of the topic stay pending (never dead-lettered, never committed past),
and /readyz says `mapping` until the pod restarts with a fixed mapping, when they flow again. The
other topics keep flowing.

The held records are only counted: this process never processes them, and their offsets stay
pending in the offset tracker, which is what keeps the commit position before them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from connector.errors import UnusableMappingError
from connector.kafka.ports import Record, TopicPartition
from connector.pipeline.pauses import PauseBook
from connector.runtime.health import Health, Reason
from connector.runtime.logs import get_logger
from connector.runtime.metrics import Metrics

log = get_logger(__name__)


class MappingPauses:
    def __init__(self, pauses: PauseBook, health: Health, metrics: Metrics) -> None:
        self._pauses = pauses
        self._health = health
        self._metrics = metrics
        self._causes: dict[str, UnusableMappingError] = {}  # topic → the first schema that showed it
        self._held: Counter[TopicPartition] = Counter()

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(self._causes)

    def hold(self, record: Record) -> bool:
        """Keep `record` pending, unprocessed, when its topic is paused."""
        if record.topic not in self._causes:
            return False
        self._held[record.tp] += 1
        return True

    def pause(self, record: Record, cause: UnusableMappingError) -> None:
        """`record` is the first of its topic whose writer schema the mapping cannot apply to."""
        self._causes.setdefault(record.topic, cause)
        self.hold(record)
        log.error(
            "the mapping cannot apply to a writer schema of its topic's subject; topic paused "
            "(fix the mapping and restart)",
            topic=cause.topic,
            schema_id=cause.schema_id,
            field=cause.field,
            problem=cause.message,
        )
        self._pauses.pause_topic(record.topic, Reason.MAPPING)
        self._health.set(Reason.MAPPING, self._detail())
        self._metrics.paused_topics.labels(Reason.MAPPING.value).set(len(self._causes))

    def pause_assigned(self, partitions: Iterable[TopicPartition]) -> None:
        """Newly assigned partitions of a paused topic join the pause (deferred: inside the
        assign callback they are not assigned yet)."""
        mine = [tp for tp in partitions if tp.topic in self._causes]
        if mine:
            self._pauses.pause(mine, Reason.MAPPING, defer=True)

    def held(self, tp: TopicPartition | None = None) -> int:
        """Records held, on one partition or on all."""
        return self._held.total() if tp is None else self._held[tp]

    def drop(self, tp: TopicPartition) -> None:
        self._held.pop(tp, None)

    def _detail(self) -> str:
        causes = "; ".join(str(c) for c in self._causes.values())
        return f"{causes}; paused until the mapping is fixed and the pod restarted"
