"""`optikpi-connector endpoints`, docs/endpoints.md generated from the same tables, and the rule that
every command-line option explains itself and shows its default."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.arguments import build_parser
from connector.cli import main
from connector.commands.endpoints import REGENERATE, endpoints_markdown
from connector.endpoints import ENDPOINT_KEYS
from connector.errors import ExitCode
from connector.ingest.models import MODELS

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "endpoints.md"


def test_docs_endpoints_md_is_generated_from_the_current_models() -> None:
    assert DOC.read_text(encoding="utf-8") == endpoints_markdown(), (
        f"docs/endpoints.md is out of date with connector/ingest/models.py; regenerate it: {REGENERATE}"
    )


def test_the_markdown_has_one_row_per_field_of_every_model() -> None:
    text = endpoints_markdown()
    for model in MODELS.values():
        section = text.split(f"\n## {model.endpoint}\n", 1)[1].split("\n## ", 1)[0]
        rows = [line for line in section.splitlines() if line.startswith("| `")]
        assert [row.split("`")[1] for row in rows] == list(model.fields)
        for row, spec in zip(rows, model.fields.values(), strict=True):
            cells = [cell.strip() for cell in row.strip("|").split(" | ")]
            assert cells[1].startswith(spec.kind.value)
            assert cells[2] == ("yes" if spec.required else "")


@pytest.mark.parametrize("name", ENDPOINT_KEYS)
def test_endpoints_name_prints_that_model(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["endpoints", name]) == ExitCode.OK
    lines = capsys.readouterr().out.splitlines()
    model = MODELS[name]

    assert lines[0].startswith(f"{name}: POST /")
    if model.category is not None:
        assert f"event_category is always {model.category!r}" in lines[0]
    assert lines[1].split() == ["FIELD", "TYPE", "REQUIRED", "FILLED", "BY", "THE", "CONNECTOR"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert list(rows) == list(model.fields)
    for spec in model.fields.values():
        assert rows[spec.name][0].rstrip(":") == spec.kind.value
        assert ("yes" in rows[spec.name]) == spec.required
    assert rows["account_id"][-1] == "optikpi.account_id"
    if model.category is not None:
        assert rows["event_category"][-2:] == [model.category.split()[-1], "(fixed)"]


def test_endpoints_without_a_name_prints_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["endpoints"]) == ExitCode.OK
    headers = [line.split(":")[0] for line in capsys.readouterr().out.splitlines() if ": POST /" in line]
    assert headers == list(ENDPOINT_KEYS)


def test_endpoints_markdown_prints_the_doc(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["endpoints", "--markdown"]) == ExitCode.OK
    assert capsys.readouterr().out == endpoints_markdown()


def test_an_unknown_endpoint_exits_2_with_one_line_listing_the_valid_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["endpoints", "bets"]) == ExitCode.USAGE
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and captured.out == ""
    assert "'bets'" in lines[0] and lines[0].endswith(", ".join(ENDPOINT_KEYS))


# ---------------------------------------------------------------------------------------------
# Every option has help text showing its default


def _parsers(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def _default_texts(default: object) -> set[str]:
    texts = {str(default)}
    if isinstance(default, float) and default.is_integer():
        texts.add(str(int(default)))
    return texts


def help_problems(parser: argparse.ArgumentParser) -> list[str]:
    problems = []
    for path, command in _parsers(parser, parser.prog):
        formatter = command._get_formatter()
        for action in command._actions:
            if isinstance(
                action, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction
            ):
                continue
            name = "/".join(action.option_strings) or action.dest
            if not action.help or action.help == argparse.SUPPRESS:
                problems.append(f"{path} {name}: no help text")
                continue
            if action.default is None or action.default is False:  # required options, flags
                continue
            shown = formatter._expand_help(action)
            if not any(
                re.search(rf"\bdefault:? {re.escape(t)}\b", shown) for t in _default_texts(action.default)
            ):
                problems.append(f"{path} {name}: help does not show its default {action.default}: {shown!r}")
    return problems


def test_every_option_has_help_that_shows_its_default() -> None:
    problems = help_problems(build_parser())
    assert problems == [], "\n".join(problems)


def test_the_help_check_finds_an_option_without_help_or_default() -> None:
    parser = build_parser()
    parser.add_argument("--bare", default=3)
    parser.add_argument("--untold", default=5, help="(default: whatever)")
    assert help_problems(parser) == [
        "optikpi-connector --bare: no help text",
        "optikpi-connector --untold: help does not show its default 5: '(default: whatever)'",
    ]
