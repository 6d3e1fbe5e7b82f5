from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connector.config.loader import load_settings, parse_settings
from connector.errors import ConfigError

pytestmark = pytest.mark.unit

GOOD: dict[str, Any] = {
    "kafka": {"bootstrap_servers": "localhost:9092"},
    "schema_registry": {"url": "http://localhost:8081"},
    "optikpi": {
        "base_url": "https://gw.example.com/apigw/ingest/",
        "account_id": "acc",
        "workspace_id": "ws",
        "auth_token": "${TOKEN}",
    },
    "dead_letter": {"topic": "dlq"},
    "mappings": [{"topic": "casino.deposits", "endpoint": "deposit", "fields": {"user_id": "player_id"}}],
}


def problems(doc: dict[str, Any], command: str = "run", env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(
            doc, command, source="c.yaml", env=env if env is not None else {"TOKEN": "s3cret-token"}
        )
    return info.value.problems


def test_good_config_parses_into_frozen_settings() -> None:
    s = parse_settings(GOOD, "run", source="c.yaml", env={"TOKEN": "s3cret-token"})
    assert s.optikpi is not None
    assert s.optikpi.base_url == "https://gw.example.com/apigw/ingest"
    assert s.optikpi.auth_token is not None and s.optikpi.auth_token.get_secret_value() == "s3cret-token"
    assert s.batching.max_records == 500 and s.retry.max_elapsed_s == 0
    assert s.mappings[0].destination == "optikpi" and s.mappings[0].copy_matching is True
    assert s.optikpi.rate_limit("customers") == 50 and s.optikpi.rate_limit("deposit") == 250
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type is an implementation detail
        s.optikpi.account_id = "other"


def test_secret_never_in_repr_or_str() -> None:
    s = parse_settings(GOOD, "run", source="c.yaml", env={"TOKEN": "s3cret-token"})
    assert "s3cret-token" not in repr(s) and "s3cret-token" not in str(s)


def test_default_variable_and_typed_interpolation() -> None:
    doc = {
        **GOOD,
        "server": {"port": "${PORT:-9100}"},
        "optikpi": {**GOOD["optikpi"], "timeout_s": "${T:-5}"},
    }
    s = parse_settings(doc, "run", source="c.yaml", env={"TOKEN": "x" * 8})
    assert s.server.port == 9100 and s.optikpi is not None and s.optikpi.timeout_s == 5


def test_missing_variable_names_variable_and_key_once() -> None:
    out = problems(GOOD, env={})
    assert out == ["c.yaml: optikpi.auth_token: environment variable TOKEN is not set (and has no default)"]


def test_every_problem_is_one_line_with_its_key_path() -> None:
    doc = {
        **GOOD,
        "batching": {"max_records": 501, "max_wait_ms": -1},
        "retry": {"initial_backoff_ms": 100, "max_backoff_ms": 10},
        "surprise": 1,
        "mappings": [
            {"topic": "a", "endpoint": "depositt"},
            {"topic": "b", "endpoint": "deposit", "format": "avro"},
            {"topic": "c", "endpoint": "deposit", "destination": "eu", "bogus": 1},
        ],
    }
    out = problems(doc)
    assert all("\n" not in p and p.startswith("c.yaml: ") for p in out)
    joined = "\n".join(out)
    for expected in (
        "surprise: unknown top-level key",
        "batching.max_records: Input should be less than or equal to 500",
        "batching.max_wait_ms:",
        "retry: max_backoff_ms must be >= initial_backoff_ms",
        "mappings[0].endpoint:",
        "mappings[1]: format 'avro' needs `schema`",
        "mappings[2].bogus: unknown key",
    ):
        assert expected in joined, (expected, joined)


def test_unknown_destination_and_duplicate_topic() -> None:
    doc = {
        **GOOD,
        "mappings": [
            {"topic": "a", "endpoint": "deposit", "destination": "eu"},
            {"topic": "a", "endpoint": "account"},
        ],
    }
    joined = "\n".join(problems(doc))
    assert "mappings[0].destination: unknown destination 'eu' (known: optikpi)" in joined
    assert "mappings[1].topic: 'a' is mapped twice" in joined or "is mapped twice" in joined


def test_token_and_token_file_are_exclusive() -> None:
    doc = {**GOOD, "optikpi": {**GOOD["optikpi"], "auth_token_file": "/tmp/t"}}
    assert any("set exactly one of auth_token and auth_token_file" in p for p in problems(doc))
    no_token = {k: v for k, v in GOOD["optikpi"].items() if k != "auth_token"}
    assert any("exactly one" in p for p in problems({**GOOD, "optikpi": no_token}))


def test_send_validates_only_its_sections() -> None:
    doc = {"optikpi": GOOD["optikpi"], "kafka": {"bootstrap_servers": ""}, "mappings": "nonsense"}
    s = parse_settings(doc, "send", source="c.yaml", env={"TOKEN": "abcd1234"})
    assert s.kafka is None and s.mappings == ()
    assert problems({"kafka": GOOD["kafka"]}, "send") == ["c.yaml: optikpi: is required for `send`"]


def test_confluent_avro_needs_registry() -> None:
    doc = {k: v for k, v in GOOD.items() if k != "schema_registry"}
    assert any("confluent-avro needs the `schema_registry` section" in p for p in problems(doc))


def test_extra_destinations() -> None:
    eu = {**GOOD["optikpi"], "account_id": "eu-acc"}
    doc = {
        **GOOD,
        "destinations": {"eu": eu},
        "mappings": [{"topic": "a", "endpoint": "deposit", "destination": "eu"}],
    }
    s = parse_settings(doc, "run", source="c.yaml", env={"TOKEN": "abcd1234"})
    assert s.destination("eu").account_id == "eu-acc"


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "nope.yaml", "send")
    assert "file not found" in info.value.problems[0]
    bad = tmp_path / "bad.yaml"
    bad.write_text("optikpi: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_settings(bad, "send")
    assert info.value.problems[0].startswith(f"{bad}: line ")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "list.yaml", "send")
    assert "top level must be a mapping" in info.value.problems[0]


def test_produce_sample_needs_no_destination() -> None:
    doc = {"kafka": GOOD["kafka"], "schema_registry": GOOD["schema_registry"], "mappings": GOOD["mappings"]}
    s = parse_settings(doc, "produce-sample", source="c.yaml", env={})
    assert s.optikpi is None and s.mappings[0].topic == "casino.deposits"


def test_processing_workers_is_auto_by_default_and_takes_a_count() -> None:
    env = {"TOKEN": "s3cret-token"}
    assert parse_settings(GOOD, "run", source="c.yaml", env=env).processing.workers == "auto"
    doc = {**GOOD, "processing": {"workers": 3}}
    assert parse_settings(doc, "run", source="c.yaml", env=env).processing.workers == 3
    for bad in (0, "many", 65):
        [line] = problems({**GOOD, "processing": {"workers": bad}})
        assert line.startswith("c.yaml: processing.workers")
