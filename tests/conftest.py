"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.http import preserved_structlog


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    # `cli.main` points structlog at the stderr of the moment, which pytest closes after the
    # test; restoring the configuration keeps one test's capture from breaking the next.
    with preserved_structlog():
        yield
