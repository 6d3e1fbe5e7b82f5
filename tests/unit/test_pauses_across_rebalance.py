"""A pause outlives the membership it was made in: librdkafka keeps a partition's pause through a
revoke or a lost membership and a later re-assignment (seen on the embedded broker), while the
pause book starts a re-assigned partition with no reasons. A partition paused for backpressure
when the group lost it must fetch again once it comes back and nothing holds it."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from connector.kafka.memory.broker import InMemoryBroker
from connector.kafka.ports import TopicPartition
from connector.pipeline.loop import Pipeline
from connector.pipeline.offsets import OffsetTracker
from connector.pipeline.pauses import PauseBook
from connector.runtime.clock import FakeClock
from connector.runtime.health import Reason
from connector.runtime.metrics import Metrics
from tests.support.brokers import RecordingListener
from tests.support.pipeline_kit import Kit, deposit, make_kit

pytestmark = pytest.mark.unit

GROUP = "g"
TP0 = TopicPartition("deposits", 0)
TP1 = TopicPartition("deposits", 1)
BOTH = {TP0, TP1}


def _produce(kit: Kit, numbers: Iterable[int], partition: int) -> None:
    for i in numbers:
        kit.broker.produce("deposits", deposit(i), partition=partition)


def _received(kit: Kit) -> set[str]:
    return {record["event_id"] for _endpoint, record in kit.uploader.received}


def _ids(numbers: Iterable[int]) -> set[str]:
    return {f"d{i}" for i in numbers}


def _step_until(condition: Callable[[], bool], p: Pipeline, what: str, limit: int = 2000) -> None:
    for _ in range(limit):
        if condition():
            return
        p.step()
        p.step()
    raise AssertionError(f"never: {what}")


def test_partitions_paused_for_backpressure_when_lost_fetch_again_once_reassigned() -> None:
    kit = make_kit(partitions=2)
    _produce(kit, range(30), partition=0)
    _produce(kit, range(100, 130), partition=1)
    kit.executor.hold = True  # uploads do not finish: in-flight climbs to the bound
    p = kit.started(max_in_flight=6, max_records=3)
    _step_until(lambda: kit.paused() == BOTH, p, "paused for backpressure")
    assert p.in_flight_records >= 6

    kit.broker.evict(GROUP, "m1")  # the broker froze past the poll interval: membership lost
    _step_until(lambda: kit.broker.owners(GROUP) == dict.fromkeys(BOTH, "m1"), p, "re-assigned")
    kit.executor.hold = False
    kit.executor.release()  # the old uploads answer; their partitions were lost meanwhile

    _step_until(lambda: _received(kit) == _ids(range(30)) | _ids(range(100, 130)), p, "everything uploaded")
    assert kit.paused() == set()
    assert p.metrics.paused_partitions._value.get() == 0


def test_the_pause_book_resumes_what_comes_back_paused_and_counts_what_it_forgets() -> None:
    broker = InMemoryBroker(FakeClock())
    broker.create_topic("deposits", 2)
    consumer = broker.consumer(GROUP, member_id="m1")
    consumer.subscribe(["deposits"], RecordingListener())
    consumer.consume(1, 0.0)
    tracker, metrics = OffsetTracker(), Metrics()
    for tp in BOTH:
        tracker.assign(tp)
    book = PauseBook(consumer, tracker, metrics)
    book.pause_all(Reason.BACKPRESSURE)
    book.pause([TP0], Reason.REGISTRY)

    book.forget([TP1])  # lost: TP1 holds no reason any more
    assert metrics.registry.get_sample_value("optikpi_paused_partitions") == 1
    book.assigned([TP1])  # ... and comes back, still paused in the client
    book.pause([TP0], Reason.CREDENTIALS, defer=True)
    assert consumer.paused() == BOTH
    book.apply_deferred()
    assert consumer.paused() == {TP0}  # TP0 keeps its reasons
