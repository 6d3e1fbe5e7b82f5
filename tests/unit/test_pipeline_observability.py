"""What the pipeline tells the operator: consumer lag, delivery latency and trace ids (in-memory
broker, fake clock, scripted uploader)."""

from __future__ import annotations

import re

import pytest

from connector.errors import CredentialsError
from connector.kafka.ports import TopicPartition
from connector.pipeline.loop import Pipeline
from tests.support.pipeline_kit import Kit, deposit, make_kit

pytestmark = pytest.mark.unit

TP0 = TopicPartition("deposits", 0)
TP1 = TopicPartition("deposits", 1)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01".encode()


def lag(p: Pipeline, tp: TopicPartition = TP0) -> float | None:
    return p.metrics.registry.get_sample_value(
        "optikpi_consumer_lag", {"topic": tp.topic, "partition": str(tp.partition)}
    )


def produce(kit: Kit, ids: range, partition: int = 0, **kwargs: object) -> None:
    for i in ids:
        kit.broker.produce("deposits", deposit(i), partition=partition, **kwargs)  # type: ignore[arg-type]


def run_for(p: Pipeline, kit: Kit, seconds: float) -> None:
    end = kit.clock.now() + seconds
    while kit.clock.now() < end:
        p.step()
        kit.clock.advance(0.05)


# ------------------------------------------------------------------------------------ lag
def test_lag_rises_while_uploads_hang_and_keeps_reporting_while_credentials_are_refused() -> None:
    kit = make_kit()
    kit.executor.hold = True  # the API does not answer yet
    kit.uploader.fail_with = [CredentialsError(401, "deposit", "bad token")]
    p = kit.started()

    produce(kit, range(3))
    run_for(p, kit, 1.5)
    assert lag(p) == 3  # nothing committed, nothing done: every record counts
    produce(kit, range(3, 9))
    run_for(p, kit, 1.5)
    assert lag(p) == 9  # it moved without a single commit

    kit.executor.release()  # ...and the answer is 401
    run_for(p, kit, 1.5)
    assert "credentials" in p.health.reasons() and kit.paused() == {TP0}
    assert kit.broker.committed("g", TP0) in (None, 0)
    assert lag(p) == 9

    kit.executor.hold = False
    run_for(p, kit, 10.0)  # the probe goes through, everything is delivered and committed
    assert kit.broker.committed("g", TP0) == 9
    assert lag(p) == 0


def test_a_paused_partitions_lag_follows_the_end_offset_the_broker_reports() -> None:
    """A paused partition is not fetched, so the end offset in fetched data freezes at the pause;
    the broker is asked for it instead, every 5 s."""
    kit = make_kit()
    kit.uploader.fail_with = [CredentialsError(401, "deposit", "bad token")] * 100  # refused throughout
    produce(kit, range(3))
    p = kit.started()
    run_for(p, kit, 1.5)
    assert "credentials" in p.health.reasons() and kit.paused() == {TP0}
    assert lag(p) == 3

    produce(kit, range(3, 10))  # producers go on writing to the paused partition
    run_for(p, kit, 6.0)

    assert kit.paused() == {TP0} and kit.consumers["m1"].high_watermarks() == {TP0: 3}
    assert lag(p) == 10


def test_a_revoked_partition_takes_its_lag_series_with_it() -> None:
    kit = make_kit(partitions=2)
    produce(kit, range(2), partition=0)
    produce(kit, range(100, 102), partition=1)
    m1 = kit.started()
    run_for(m1, kit, 1.5)
    assert lag(m1, TP0) == 0 and lag(m1, TP1) == 0  # partial batches went out after max_wait

    m2 = kit.started(member="m2")
    for _ in range(3):
        m1.step()
        m2.step()
    kept = {tp for tp, owner in kit.broker.owners("g").items() if owner == "m1"}
    assert len(kept) == 1
    [gone] = {TP0, TP1} - kept
    assert lag(m1, gone) is None
    assert lag(m1, next(iter(kept))) == 0


# ------------------------------------------------------------------------------------ delivery latency
def test_delivery_seconds_is_observed_once_per_accepted_batch_from_its_oldest_record() -> None:
    kit = make_kit()
    kit.clock.advance(100.0)  # the broker stamps records with the same fake wall clock
    for i, stamp in enumerate((96_000, 91_000, 99_000)):  # out of order, as CreateTime can be
        kit.broker.produce("deposits", deposit(i), partition=0, timestamp_ms=stamp)
    p = kit.started()

    p.step()  # a full batch of 3, accepted at once

    def sample(suffix: str) -> float | None:
        return p.metrics.registry.get_sample_value(
            f"optikpi_delivery_seconds{suffix}", {"endpoint": "deposit"}
        )

    assert sample("_count") == 1
    assert sample("_sum") == pytest.approx(100.0 - 91.0)


def test_a_batch_rejected_entirely_is_not_a_delivery() -> None:
    kit = make_kit()
    kit.uploader.reject_if = lambda record: True
    produce(kit, range(3))
    p = kit.started()
    p.step()
    assert p.stats["dead_lettered"] == 3
    count = p.metrics.registry.get_sample_value("optikpi_delivery_seconds_count", {"endpoint": "deposit"})
    assert count in (None, 0)


# ------------------------------------------------------------------------------------ trace ids
def test_an_upload_takes_the_trace_id_of_its_first_records_traceparent() -> None:
    kit = make_kit()
    kit.broker.produce("deposits", deposit(0), partition=0, headers=[("traceparent", TRACEPARENT)])
    produce(kit, range(1, 3))
    p = kit.started()
    p.step()
    assert kit.uploader.trace_ids == [TRACE]


def test_without_a_traceparent_each_upload_gets_a_new_random_trace_id() -> None:
    kit = make_kit()
    produce(kit, range(6), headers=[("traceparent", b"00-not-a-trace-01")])
    p = kit.started()
    p.step()
    p.step()
    assert len(kit.uploader.trace_ids) == 2
    first, second = kit.uploader.trace_ids
    assert first != second
    assert all(re.fullmatch("[0-9a-f]{32}", t or "") for t in (first, second))


def test_a_parked_batch_probes_with_the_trace_id_it_was_refused_with() -> None:
    kit = make_kit()
    kit.uploader.fail_with = [CredentialsError(401, "deposit", "bad token")]
    produce(kit, range(3))
    p = kit.started()
    run_for(p, kit, 12.0)
    assert kit.broker.committed("g", TP0) == 3
    assert len(kit.uploader.trace_ids) == 2 and len(set(kit.uploader.trace_ids)) == 1


def _dlq_header(kit: Kit, name: str) -> list[bytes | None]:
    return [value for record in kit.dlq() for key, value in record.headers if key == name]


def test_records_dead_lettered_at_upload_carry_the_uploads_trace_id() -> None:
    kit = make_kit()
    kit.uploader.reject_if = lambda record: record["event_id"] == "d1"
    produce(kit, range(3))
    p = kit.started()
    p.step()
    [trace] = kit.uploader.trace_ids
    assert _dlq_header(kit, "optikpi.trace_id") == [trace.encode()]  # type: ignore[union-attr]


def test_records_dead_lettered_before_upload_carry_their_own_traceparent_trace_id() -> None:
    kit = make_kit()
    kit.broker.produce("deposits", b"poison", partition=0, headers=[("traceparent", TRACEPARENT)])
    kit.broker.produce("deposits", b"poison", partition=0)
    p = kit.started()
    p.step()
    assert len(kit.dlq()) == 2
    assert _dlq_header(kit, "optikpi.trace_id") == [TRACE.encode()]  # the second has no trace
