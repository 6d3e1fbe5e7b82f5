"""The fault-injection suite: each scenario runs short (`make test`) and full (marker `slow`,
`make chaos`); the full runs' verdicts regenerate docs/reliability.md once every scenario has one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.chaos import Verdict
from tests.support.reliability_report import FULL_SCENARIOS, write_report

SIZES = [pytest.param("short", id="short"), pytest.param("full", id="full", marks=pytest.mark.slow)]


@pytest.fixture(params=SIZES)
def size(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture(scope="session")
def verdicts() -> Iterator[dict[str, Verdict]]:
    """Each full-size scenario leaves its verdict here under its scenario name."""
    found: dict[str, Verdict] = {}
    yield found
    # A partial run (-k, or a failure) must not replace the report with part of it.
    if set(FULL_SCENARIOS) <= set(found):
        write_report(found)
