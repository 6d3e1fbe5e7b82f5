"""The shipped example configuration stays valid and in step with the demo."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from connector.cli import main

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "connector.yaml"


def test_example_mappings_are_the_demo_mappings() -> None:
    example = yaml.safe_load(EXAMPLE.read_text())["mappings"]
    demo = yaml.safe_load((ROOT / "connector" / "devtools" / "demo_mappings.yaml").read_text())["mappings"]
    assert example == demo


def test_offline_check_of_the_example_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(EXAMPLE), "--offline"]) == 0
    out = capsys.readouterr().out
    assert out.count(" ok") == 6 and "casino.bets" in out


def test_check_names_the_broken_field_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["mappings"][0]["fields"]["user_id"] = "player.idd"  # a typo in a source path
    del doc["mappings"][1]["fields"]["amount"]  # deposit amount is required and not copied by name...
    doc["mappings"][1]["copy_matching"] = False  # ...once copy_matching is off
    config = tmp_path / "broken.yaml"
    config.write_text(yaml.safe_dump(doc))
    (tmp_path / "schemas").symlink_to(ROOT / "schemas")
    assert main(["check", "--config", str(config), "--offline"]) == 2
    out = capsys.readouterr().out
    assert "casino.bets: error: user_id:" in out and "player.idd" in out
    assert "casino.deposits: error: amount:" in out


def test_check_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["check", "--config", str(EXAMPLE), "--offline", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and len(report["mappings"]) == 6


def test_missing_schema_file_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["mappings"][0]["schema"] = "schemas/nope.avsc"
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(doc))
    assert main(["check", "--config", str(config), "--offline"]) == 2
    assert "nope.avsc" in capsys.readouterr().out
