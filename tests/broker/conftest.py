"""End-to-end doubles for the broker tests: a registry stub and sandbox ingest APIs. (The embedded
broker and the unique names are fixtures of tests/conftest.py, shared with tests/contract.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connector.devtools.registry_stub import RegistryStub
from connector.devtools.sandbox.server import SandboxOptions, SandboxServer

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
