"""Readiness names what is wrong: `topic` (a mapped topic does not exist), `kafka` (no broker has
answered for a few seconds), `api` (a destination has failed transiently for longer than
retry.unready_after_s). Each clears once the cause is gone; details are one line."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from concurrent.futures import Future

import httpx
import pytest
from pydantic import SecretStr

from connector.config.settings import BatchingSettings, DestinationSettings, RetrySettings
from connector.errors import KafkaPortError
from connector.ingest.client import IngestClient
from connector.ingest.outage import ApiOutage
from connector.kafka.memory.broker import InMemoryBroker
from connector.kafka.memory.clients import InMemoryAdmin
from connector.kafka.ports import TopicPartition
from connector.pipeline.cluster import ClusterWatch
from connector.runtime.clock import FakeClock
from connector.runtime.health import Health, Reason
from tests.support.http import logs_in_memory

pytestmark = pytest.mark.unit


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    with logs_in_memory() as stream:
        yield stream


def ready_apart_from_starting(health: Health) -> Health:
    health.clear(Reason.STARTING)
    return health


# ------------------------------------------------------------------------------------------ topic
def test_a_missing_topic_is_named_until_it_exists() -> None:
    broker, clock = InMemoryBroker(), FakeClock()
    broker.create_topic("bets", 1)
    health = ready_apart_from_starting(Health(clock))
    watch = ClusterWatch(InMemoryAdmin(broker), ["bets", "deposits"], health, "b1:9092", clock=clock)

    watch.check()
    assert health.reasons() == {Reason.TOPIC: "mapped topic does not exist: deposits"}

    broker.create_topic("deposits", 1)
    watch.check()
    assert health.ready


# ------------------------------------------------------------------------------------------ kafka
class SilentCluster:
    """An AdminPort whose brokers answer only when told to."""

    def __init__(self) -> None:
        self.answering = False

    def create_topics(self, names: object, partitions: int, timeout_s: float) -> None:
        raise AssertionError("not used")

    def query_end_offsets(self, partitions: object, timeout_s: float) -> Future[dict[TopicPartition, int]]:
        raise AssertionError("not used")

    def list_topics(self, timeout_s: float) -> dict[str, int]:
        if not self.answering:
            raise KafkaPortError("cannot reach Kafka at b1:9092 within 3 s: Connection refused")
        return {"bets": 1}


def test_brokers_silent_for_more_than_a_few_seconds_are_named_and_cleared_on_the_next_answer() -> None:
    clock, cluster = FakeClock(), SilentCluster()
    health = ready_apart_from_starting(Health(clock))
    watch = ClusterWatch(
        cluster, ["bets"], health, "SASL_SSL://user:pw@b1:9092,b2:9092", clock=clock, silent_after_s=6.0
    )

    watch.check()
    clock.advance(6.0)
    watch.check()
    assert health.ready  # a blip of a few seconds is not worth a page

    clock.advance(1.0)
    watch.check()
    detail = health.reasons()[Reason.KAFKA]
    assert "b1:9092,b2:9092" in detail and "kafka.bootstrap_servers" in detail
    assert "user" not in detail and "pw" not in detail  # hosts only

    cluster.answering = True
    watch.check()
    assert health.ready


# ------------------------------------------------------------------------------------------ api
def test_the_api_reason_needs_failures_for_longer_than_the_threshold_and_names_each_host() -> None:
    clock = FakeClock()
    health = ready_apart_from_starting(Health(clock))
    outage = ApiOutage(health, 60.0, clock)

    outage.failed("api.one:443", "ConnectError")
    clock.advance(60.0)
    outage.failed("api.one:443", "ReadTimeout")
    outage.failed("api.two", "503")
    assert health.ready

    clock.advance(1.0)
    outage.failed("api.one:443", "503")
    assert health.reasons() == {Reason.API: "uploads failing: api.one:443 for 61 s (last: 503)"}

    clock.advance(60.0)
    outage.failed("api.two", "503")
    assert health.reasons()[Reason.API] == (
        "uploads failing: api.one:443 for 121 s (last: 503); api.two for 61 s (last: 503)"
    )
    outage.answered("api.one:443")
    assert health.reasons()[Reason.API] == "uploads failing: api.two for 61 s (last: 503)"
    outage.answered("api.two")
    assert health.ready


@pytest.mark.parametrize("status", [200, 400, 429])
def test_any_answer_that_is_not_a_transient_failure_ends_the_outage(status: int) -> None:
    clock = FakeClock()
    health = ready_apart_from_starting(Health(clock))
    calls: Iterator[httpx.Response | httpx.ConnectError] = iter(
        [httpx.ConnectError("refused"), *[httpx.Response(503)] * 5, httpx.Response(status)]
    )

    def respond(request: httpx.Request) -> httpx.Response:
        answer = next(calls, httpx.Response(200, json={}))
        if isinstance(answer, Exception):
            raise answer
        return answer

    seen: list[bool] = []

    def on_sleep(_s: float) -> None:
        clock.advance(5.0)
        seen.append(health.has(Reason.API))

    clock.on_sleep = on_sleep
    client = IngestClient(
        DestinationSettings(
            base_url="https://gateway.test:8443/apigw/ingest",
            account_id="a",
            workspace_id="w",
            auth_token=SecretStr("tok-readiness-1"),
        ),
        RetrySettings(initial_backoff_ms=1, max_backoff_ms=2),
        BatchingSettings(),
        transport=httpx.MockTransport(respond),
        clock=clock.now,
        sleep=clock.sleep,
        rng=random.Random(1),
        outage=ApiOutage(health, 20.0, clock),
    )
    with logs_in_memory() as stream:
        client.upload("deposit", [{"x": 1}])
    assert seen[:6] == [False] * 4 + [True] * 2  # set once failing for more than 20 s (5 s a retry)
    assert health.ready  # and cleared by the answer
    retries = [json.loads(line) for line in stream.getvalue().splitlines()]
    retries = [line for line in retries if line["event"] == "ingest request failed, retrying"]
    assert retries[0]["reason"] == "ConnectError" and retries[0]["host"] == "gateway.test:8443"


def test_details_are_one_line() -> None:
    health = Health(FakeClock())
    health.set(Reason.API, "first line\nsecond   line")
    assert health.reasons()[Reason.API] == "first line second line"
