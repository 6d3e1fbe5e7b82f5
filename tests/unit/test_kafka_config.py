"""`connector.kafka.config`: one builder per client kind, whose guarded keys no user property can
override, and `redact_config`, which masks what the log redaction masks and key material too."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from connector.cli import main
from connector.errors import ExitCode
from connector.kafka.config import (
    CONSUMER_GUARDED,
    PRODUCER_GUARDED,
    READER_GROUP_ID,
    READER_GUARDED,
    admin_config,
    consumer_config,
    producer_config,
    reader_config,
    redact_config,
)
from connector.runtime.logs import is_secret_key, redact

pytestmark = pytest.mark.unit

Builder = Callable[[Mapping[str, object]], dict[str, object]]

BUILDERS: dict[str, tuple[Builder, Mapping[str, object]]] = {
    "consumer": (lambda props: consumer_config("k:9092", "group", "earliest", props), CONSUMER_GUARDED),
    "producer": (lambda props: producer_config("k:9092", props), PRODUCER_GUARDED),
    "reader": (lambda props: reader_config("k:9092", props), READER_GUARDED),
}


def _opposite(value: object) -> object:
    if isinstance(value, bool):
        return not value
    return "1" if value == "all" else f"not-{value}"


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_a_user_property_cannot_override_a_guarded_key(kind: str) -> None:
    build, guarded = BUILDERS[kind]
    assert guarded  # every client kind but admin has guarded keys
    hostile = {key: _opposite(value) for key, value in guarded.items()}

    config = build(hostile)

    assert {key: config[key] for key in guarded} == dict(guarded)


def test_the_guarded_keys_are_the_ones_the_guarantees_need() -> None:
    assert CONSUMER_GUARDED == {"enable.auto.commit": False, "enable.auto.offset.store": False}
    assert PRODUCER_GUARDED == {"enable.idempotence": True, "acks": "all"}
    assert READER_GUARDED == {**CONSUMER_GUARDED, "group.id": READER_GROUP_ID, "enable.partition.eof": True}


def test_admin_config_takes_the_user_properties_as_they_are() -> None:
    config = admin_config("k:9092", {"security.protocol": "SSL", "client.id": "mine"})

    config.pop("logger")  # every client's; tests/unit/test_rdlogs.py
    assert config == {"bootstrap.servers": "k:9092", "client.id": "mine", "security.protocol": "SSL"}


def test_a_reader_drops_the_users_group_settings() -> None:
    config = reader_config("k:9092", {"group.instance.id": "x", "security.protocol": "SSL"})

    assert "group.instance.id" not in config
    assert (config["group.id"], config["security.protocol"]) == (READER_GROUP_ID, "SSL")


def test_a_producer_drops_consumer_only_properties() -> None:
    config = producer_config(
        "k:9092", {"session.timeout.ms": 6000, "fetch.max.bytes": 1, "linger.ms": 5, "sasl.username": "u"}
    )

    assert "session.timeout.ms" not in config and "fetch.max.bytes" not in config
    assert (config["linger.ms"], config["sasl.username"]) == (5, "u")


def test_consumer_defaults_keep_the_prefetch_small_unless_the_user_says_otherwise() -> None:
    assert consumer_config("k:9092", "g", "earliest", {})["queued.max.messages.kbytes"] == 16384
    assert consumer_config("k:9092", "g", "earliest", {})["fetch.wait.max.ms"] == 100
    assert consumer_config("k:9092", "g", "earliest", {"fetch.wait.max.ms": 500})["fetch.wait.max.ms"] == 500
    mine = consumer_config("k:9092", "g", "earliest", {"queued.max.messages.kbytes": 1024})
    assert mine["queued.max.messages.kbytes"] == 1024


def test_consumer_config_never_commits_on_its_own_and_user_properties_win() -> None:
    config = consumer_config("k:9092", "group", "earliest", {"session.timeout.ms": 6000, "client.id": "mine"})

    assert config["enable.auto.commit"] is False
    assert config["enable.auto.offset.store"] is False
    assert config["partition.assignment.strategy"] == "cooperative-sticky"
    assert config["enable.partition.eof"] is False
    assert (config["bootstrap.servers"], config["group.id"], config["auto.offset.reset"]) == (
        "k:9092",
        "group",
        "earliest",
    )
    assert (config["session.timeout.ms"], config["client.id"]) == (6000, "mine")


def test_producer_config_is_idempotent_with_acks_all() -> None:
    config = producer_config("k:9092", {"linger.ms": 5})

    assert (config["enable.idempotence"], config["acks"], config["linger.ms"]) == (True, "all", 5)


def test_redacted_config_hides_every_secret() -> None:
    config = {
        "sasl.password": "p",
        "ssl.key.password": "p",
        "ssl.key.pem": "p",
        "sasl.oauthbearer.client.secret": "p",
        "basic.auth.user.info": "u:p",
        "some.token": "p",
        "sasl.username": "alice",
        "error_cb": print,
    }

    safe = redact_config(config)

    assert "p" not in safe.values()
    assert "u:p" not in safe.values()
    assert safe["sasl.username"] == "alice"
    assert safe["error_cb"] == "<builtin_function_or_method>"


# Before connector.kafka.config used connector.runtime.logs.is_secret_key, it had its own pattern.
_OLD_KAFKA_SECRET_KEY = re.compile(r"password|secret|token|key|user\.info", re.IGNORECASE)
# librdkafka and Schema Registry client settings that name (or look like they name) secrets.
_CONFIG_KEYS = [
    "bootstrap.servers",
    "client.id",
    "group.id",
    "security.protocol",
    "sasl.mechanism",
    "sasl.username",
    "sasl.password",
    "sasl.kerberos.keytab",
    "sasl.oauthbearer.client.id",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.token.endpoint.url",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.certificate.pem",
    "ssl.ca.location",
    "ssl.endpoint.identification.algorithm",
    "basic.auth.user.info",
    "bearer.auth.token",
    "enable.idempotence",
    "message.key.serializer",
]


@pytest.mark.parametrize("key", _CONFIG_KEYS)
def test_redact_config_masks_exactly_what_it_masked_before(key: str) -> None:
    masked = redact_config({key: "value"})[key] == "***"

    assert masked == bool(_OLD_KAFKA_SECRET_KEY.search(key))


_LOG_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|authorization|api[_-]?key|user\.info|credential)", re.I
)
_LOG_FIELDS = [
    *_CONFIG_KEYS,
    "auth_token",
    "Authorization",
    "api_key",
    "apiKey",
    "passwd",
    "credentials",
    "key",
]


@pytest.mark.parametrize("name", _LOG_FIELDS)
def test_is_secret_key_is_the_log_redactions_pattern(name: str) -> None:
    expected = bool(_LOG_SECRET_KEY.search(name))

    assert is_secret_key(name) is expected
    assert (redact(None, "info", {"event": "e", name: "value"})[name] == "***") is expected


def test_a_property_librdkafka_refuses_is_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "connector.yaml"
    config.write_text(
        """
kafka:
  bootstrap_servers: 127.0.0.1:1
  properties:
    no.such.property: 1
optikpi:
  base_url: https://gateway.example.com/apigw/ingest
  account_id: acc
  workspace_id: ws
  auth_token: token-1b2c3d4e
dead_letter:
  topic: optikpi-connector.dlq
mappings:
  - topic: casino.bets
    endpoint: gaming-activity
    schema: bet.avsc
    format: avro
    fields: {user_id: player.id, event_id: bet_id, event_name: event_type, event_time: placed_at}
""",
        encoding="utf-8",
    )

    code = main(["run", "--config", str(config)])

    err = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert "kafka.properties" in err and "no.such.property" in err and "Traceback" not in err
