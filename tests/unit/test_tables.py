"""The one plain-text table renderer, and the terminal output that uses it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from connector.devtools.demo import _print_summary
from connector.runtime.tables import render_table

pytestmark = pytest.mark.unit


def test_tables_align_columns_and_right_align_numbers() -> None:
    lines = render_table(["NAME", "COUNT"], [["a", "1"], ["longer-name", "120"]], right=[1])

    assert lines == ["NAME         COUNT", "a                1", "longer-name    120"]


def test_trailing_blanks_are_stripped() -> None:
    assert render_table(["KEY", "VALUE"], [["k", ""]]) == ["KEY  VALUE", "k"]


def test_the_demo_summary_prints_aligned_tables_with_totals(capsys: pytest.CaptureFixture[str]) -> None:
    pipeline: Any = SimpleNamespace(
        dead_lettered_by_stage={"DECODE": 3, "UPLOAD": 0},
        stats={"accepted": 12000, "dead_lettered": 3},
        commits=7,
    )
    accepted: list[tuple[str, dict[str, Any]]] = [("deposit", {}), ("deposit", {})]
    accepted += [("gaming-activity", {})] * 11998

    _print_summary(cast(Any, None), pipeline, accepted, {"bets": (12000, 3)}, 1.25)

    out = capsys.readouterr().out.splitlines()
    start = out.index("accepted by the ingest API (sandbox)")
    assert out[start + 1 : start + 5] == [
        "  ENDPOINT         RECORDS",
        "  deposit                2",
        "  gaming-activity    11998",
        "  total              12000",
    ]
    start = out.index("dead-lettered, by stage")
    assert out[start + 1 : start + 5] == [
        "  STAGE   RECORDS",
        "  DECODE        3",
        "  UPLOAD        0",
        "  total         3",
    ]
    assert out[-1] == "12003 events produced, 12000 accepted, 3 dead-lettered, 7 offset commits, 1.2s"
