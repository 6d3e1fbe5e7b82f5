"""librdkafka's log lines reach structlog at their severity, each distinct line at most once per
30 s with a count of the ones held back, and every client config built here carries that logger."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from connector.kafka.config import admin_config, consumer_config, producer_config, reader_config
from connector.kafka.rdlogs import LibrdkafkaLogs, method_for
from connector.runtime.clock import FakeClock
from connector.runtime.logs import RateLimiter
from tests.support.http import logs_in_memory

pytestmark = pytest.mark.unit

REFUSED = (
    "[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: "
    "Connection refused (after {ms}ms in state CONNECT)"
)


def emit(logs: LibrdkafkaLogs, text: str, level: int = logging.ERROR, facility: str = "FAIL") -> None:
    # Exactly how confluent-kafka calls the `logger` config key.
    logs.log(level, "%s [%s] %s", facility, "rdkafka#consumer-1", text)


def test_rate_limiter_lets_a_key_through_once_per_window_and_counts_the_rest() -> None:
    clock = FakeClock()
    limiter = RateLimiter(30.0, clock)
    assert limiter.admit("a") == 0
    assert [limiter.admit("a") for _ in range(5)] == [None] * 5
    assert limiter.admit("b") == 0  # another key has its own window
    clock.advance(29.9)
    assert limiter.admit("a") is None
    clock.advance(0.1)
    assert limiter.admit("a") == 6  # the six held back since it was last let through
    assert limiter.admit("a") is None
    clock.advance(30.0)
    assert limiter.admit("a") == 1


def test_rate_limiter_forgets_old_keys_when_there_are_many() -> None:
    clock = FakeClock()
    limiter = RateLimiter(30.0, clock)
    for n in range(2000):
        limiter.admit(n)
    clock.advance(31.0)
    limiter.admit("new")
    assert len(limiter._seen) == 1


@pytest.mark.parametrize(
    ("syslog", "level", "method"),
    [
        # confluent-kafka turns librdkafka's syslog severity into these logging levels.
        (0, logging.CRITICAL, "critical"),
        (2, logging.CRITICAL, "critical"),
        (3, logging.ERROR, "error"),
        (4, logging.WARNING, "warning"),
        (5, logging.INFO, "info"),
        (6, logging.INFO, "info"),
        (7, logging.DEBUG, "debug"),
    ],
)
def test_levels_follow_librdkafka_severity(syslog: int, level: int, method: str) -> None:
    assert method_for(level) == method
    with logs_in_memory() as stream:
        emit(LibrdkafkaLogs(clock=FakeClock()), f"severity {syslog}", level=level)
    line = json.loads(stream.getvalue())
    assert line["level"] == method and line["event"] == f"severity {syslog}"


def lines(stream: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_reconnect_flood_becomes_one_line_per_30_s_with_the_count_held_back() -> None:
    clock = FakeClock()
    logs = LibrdkafkaLogs(clock=clock)
    with logs_in_memory() as stream:
        for _second in range(61):
            for twentieth in range(20):  # librdkafka's reconnect rate with nothing listening
                emit(logs, REFUSED.format(ms=twentieth % 3))
            clock.advance(1.0)
    out = lines(stream)
    assert len(out) == 3
    assert [line.get("suppressed", 0) for line in out] == [0, 599, 599]
    first = out[0]
    assert first["level"] == "error" and first["facility"] == "FAIL"
    assert first["kafka_client"] == "rdkafka#consumer-1"
    assert first["event"].startswith("127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed")


def test_distinct_messages_are_limited_separately() -> None:
    logs = LibrdkafkaLogs(clock=FakeClock())
    with logs_in_memory() as stream:
        for _ in range(3):
            emit(logs, "one broker down")
            emit(logs, "another broker down")
            emit(logs, "one broker down", level=logging.WARNING)
    assert [(line["event"], line["level"]) for line in lines(stream)] == [
        ("one broker down", "error"),
        ("another broker down", "error"),
        ("one broker down", "warning"),
    ]


def test_a_command_that_reports_failures_itself_keeps_them_at_debug() -> None:
    logs = LibrdkafkaLogs(reported_by_caller=True, clock=FakeClock())
    with logs_in_memory() as stream:
        emit(logs, REFUSED.format(ms=0))
        emit(logs, REFUSED.format(ms=1))
    assert [(line["level"], line["facility"]) for line in lines(stream)] == [("debug", "FAIL")]


Builder = Callable[[], dict[str, object]]
BUILDERS: dict[str, Builder] = {
    "consumer": lambda: consumer_config("b:9092", "g", "earliest", {}),
    "producer": lambda: producer_config("b:9092", {}),
    "admin": lambda: admin_config("b:9092", {}),
    "reader": lambda: reader_config("b:9092", {}),
}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_every_client_config_routes_librdkafka_logs_through_structlog(kind: str) -> None:
    assert isinstance(BUILDERS[kind]()["logger"], LibrdkafkaLogs)


def test_a_given_logger_is_the_one_used() -> None:
    mine = LibrdkafkaLogs(reported_by_caller=True)
    assert admin_config("b:9092", {}, logs=mine)["logger"] is mine
