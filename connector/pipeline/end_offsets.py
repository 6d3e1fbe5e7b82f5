"""PausedEndOffsets: the end offsets of paused partitions, asked of the broker every few seconds.

librdkafka learns a partition's end offset only from fetch responses, and a paused partition is
not fetched: its cached end offset freezes at the pause while producers go on writing. Partitions
pause exactly when something is wrong (API outage, backpressure, refused credentials, a tripped
breaker, the schema registry), which is when the lag alert must keep moving.

The question (ListOffsets, through the admin client) goes out without waiting and its answer is
picked up on a later turn: a broker that does not answer never holds the consumer loop. One
question at a time, at most one per interval, so a slow broker cannot pile them up. The answers
are informational: a failure is logged at debug and the last answers stand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future

from connector.kafka.ports import AdminPort, TopicPartition
from connector.runtime.logs import get_logger

log = get_logger(__name__)

END_OFFSETS_INTERVAL_S = 5.0


class PausedEndOffsets:
    def __init__(
        self,
        admin: AdminPort,
        paused: Callable[[], Iterable[TopicPartition]],
        interval_s: float = END_OFFSETS_INTERVAL_S,
    ) -> None:
        self._admin = admin
        self._paused = paused
        self._interval_s = interval_s
        self._asking: Future[dict[TopicPartition, int]] | None = None
        self._next_at: float | None = None
        self._ends: dict[TopicPartition, int] = {}

    def ends(self, now: float) -> dict[TopicPartition, int]:
        """The last answers for the partitions paused now; asks again once the previous question is
        answered and the interval has passed."""
        self._take_answer()
        paused = set(self._paused())
        if paused and self._asking is None and (self._next_at is None or now >= self._next_at):
            self._next_at = now + self._interval_s
            try:
                self._asking = self._admin.query_end_offsets(sorted(paused), self._interval_s)
            except Exception as exc:  # lag is informational: it must never stop the loop
                log.debug("cannot ask for the end offsets of paused partitions", error=str(exc))
            self._take_answer()
        # A resumed partition is fetched again: its cached end offset is the fresher one.
        self._ends = {tp: end for tp, end in self._ends.items() if tp in paused}
        return dict(self._ends)

    def _take_answer(self) -> None:
        asking = self._asking
        if asking is None or not asking.done():
            return
        self._asking = None
        try:
            self._ends.update(asking.result())
        except Exception as exc:  # lag is informational: it must never stop the loop
            log.debug("no end offsets for paused partitions", error=str(exc))
