"""docker-compose.yml, offline: Docker Compose's own validation, then the wiring between the services
and the connector's configuration (addresses, credentials, topics, ports, health checks)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy.conftest import ROOT, check_offline, clean_env, run, tool

pytestmark = pytest.mark.deploy

COMPOSE = ROOT / "docker-compose.yml"
CONFIG_IN_IMAGE = "/etc/optikpi-connector/config.yaml"
ONE_SHOT = {"create-topics", "produce-sample"}


def _compose(*args: str) -> Any:
    # No SANDBOX_* variables from the caller: the file's own defaults are what is checked.
    return run([tool("docker-compose"), "-f", str(COMPOSE), *args], clean_env())


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    result = _compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]  # type: ignore[no-any-return]


def _mounted_config(service: dict[str, Any]) -> Path:
    (volume,) = [v for v in service.get("volumes", []) if v["target"] == CONFIG_IN_IMAGE]
    assert volume.get("read_only") is True
    return Path(volume["source"])


def _config(service: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load(_mounted_config(service).read_text())  # type: ignore[no-any-return]


def _option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_compose_config_is_valid() -> None:
    result = _compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_expected_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {
        "kafka",
        "schema-registry",
        "sandbox",
        "create-topics",
        "produce-sample",
        "connector",
    }
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["schema-registry"]["image"].startswith("confluentinc/cp-schema-registry:")


def test_third_party_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if "build" in service:
            continue
        image = service["image"]
        assert re.search(r":\d+\.\d+\.\d+$", image), f"{name}: {image} is not pinned to a release"


def test_kafka_runs_kraft_single_node(services: dict[str, dict[str, Any]]) -> None:
    env = services["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "1@kafka:" in env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"  # idempotent producer, acks=all on one node


def test_long_running_services_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name
            continue
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no healthcheck"


def test_dependencies_wait_for_health_or_completion(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dep, how in service.get("depends_on", {}).items():
            if dep in ONE_SHOT:
                assert how["condition"] == "service_completed_successfully", (name, dep)
            else:
                assert how["condition"] == "service_healthy", (name, dep)
                assert services[dep].get("healthcheck"), (name, dep)
    assert set(services["connector"]["depends_on"]) >= {
        "kafka",
        "schema-registry",
        "sandbox",
        "create-topics",
    }
    assert set(services["produce-sample"]["depends_on"]) >= {"create-topics", "schema-registry"}


def test_connector_is_built_from_the_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    for name in ("connector", "sandbox", "produce-sample"):
        build = services[name]["build"]
        assert Path(build["context"]) == ROOT and build["dockerfile"] == "Dockerfile", name
    connector = services["connector"]
    assert connector.get("command") is None, "the image's default command: run --config " + CONFIG_IN_IMAGE
    assert _mounted_config(connector).is_relative_to(ROOT / "examples")
    assert connector["read_only"] is True and "/tmp" in connector["tmpfs"]


@pytest.mark.parametrize("name", ["connector", "produce-sample"])
def test_mounted_config_passes_check_offline_with_the_services_environment(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    result = check_offline(_mounted_config(service), service["environment"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_connector_reaches_the_other_services(services: dict[str, dict[str, Any]]) -> None:
    env = services["connector"]["environment"]
    kafka_host, _, kafka_port = env["KAFKA_BOOTSTRAP_SERVERS"].partition(":")
    assert (
        f"PLAINTEXT://{kafka_host}:{kafka_port}"
        in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )
    assert kafka_host in services
    registry = urlsplit(env["SCHEMA_REGISTRY_URL"])
    assert registry.hostname in services
    assert services[registry.hostname]["environment"]["SCHEMA_REGISTRY_LISTENERS"].endswith(
        f":{registry.port}"
    )
    api = urlsplit(env["OPTIKPI_BASE_URL"])
    assert api.hostname == "sandbox" and api.path == "/apigw/ingest"
    sandbox = services["sandbox"]["command"]
    assert sandbox[0] == "sandbox"
    assert _option(sandbox, "--host") == "0.0.0.0"
    assert int(_option(sandbox, "--port")) == api.port


def test_connector_uses_the_sandbox_credentials(services: dict[str, dict[str, Any]]) -> None:
    env = services["connector"]["environment"]
    sandbox = services["sandbox"]["command"]
    assert env["OPTIKPI_AUTH_TOKEN"] == _option(sandbox, "--token") == "sandbox-token"
    assert env["OPTIKPI_ACCOUNT_ID"] == _option(sandbox, "--account-id")
    assert env["OPTIKPI_WORKSPACE_ID"] == _option(sandbox, "--workspace-id")
    assert services["produce-sample"]["environment"] == env


def test_commands_parse_with_the_connectors_cli(services: dict[str, dict[str, Any]]) -> None:
    from connector.arguments import build_parser

    parser = build_parser()
    sandbox = parser.parse_args(services["sandbox"]["command"])
    assert sandbox.command == "sandbox"
    produce = parser.parse_args(services["produce-sample"]["command"])
    assert produce.command == "produce-sample" and str(produce.config) == CONFIG_IN_IMAGE
    assert produce.count > 0


def test_topics_job_creates_every_mapped_topic_and_the_dead_letter_topic(
    services: dict[str, dict[str, Any]],
) -> None:
    script = " ".join(services["create-topics"]["command"])
    match = re.search(r"for topic in (.*?); do", script, re.S)
    assert match, script
    created = set(shlex.split(match.group(1).replace("\\\n", " ")))
    config = _config(services["connector"])
    wanted = {m["topic"] for m in config["mappings"]} | {config["dead_letter"]["topic"]}
    assert created == wanted
    assert "--if-not-exists" in script and "kafka:9092" in script


def test_connector_port_health_and_grace(services: dict[str, dict[str, Any]]) -> None:
    connector = services["connector"]
    config = _config(connector)
    port = config["server"]["port"]
    assert {p["target"] for p in connector["ports"]} == {port}
    check = " ".join(connector["healthcheck"]["test"])
    assert f":{port}/readyz" in check or f":{port}/healthz" in check
    grace = connector["stop_grace_period"]
    seconds = int(re.fullmatch(r"(\d+)s", grace).group(1))  # type: ignore[union-attr]
    assert seconds > config["shutdown_timeout_s"]
    sandbox_check = " ".join(services["sandbox"]["healthcheck"]["test"])
    assert f":{_option(services['sandbox']['command'], '--port')}/_sandbox/health" in sandbox_check
