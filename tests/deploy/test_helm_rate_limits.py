"""The chart shares the API's per-account rate limits between the replicas it renders."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from connector.config.loader import parse_settings
from connector.endpoints import ENDPOINTS
from tests.deploy.conftest import CHART, render

pytestmark = pytest.mark.deploy

API_LIMITS = {key: e.rate_limit for key, e in ENDPOINTS.items()}


def values(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"auth": {"token": "t"}}
    base.update(changes)
    return base


def limits(config: dict[str, Any], destination: str = "optikpi") -> dict[str, float] | None:
    dest = config["optikpi"] if destination == "optikpi" else config["destinations"][destination]
    return dest.get("rate_limits")  # type: ignore[no-any-return]


def test_the_charts_api_limits_are_the_connectors() -> None:
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert chart_values["rateLimits"]["apiLimits"] == API_LIMITS


def test_one_replica_keeps_the_configured_limits() -> None:
    assert limits(render(values()).config) is None


def test_replicas_share_every_endpoints_limit() -> None:
    out = render(values(replicaCount=3))
    assert limits(out.config) == {key: round(limit / 3, 3) for key, limit in API_LIMITS.items()}


def test_configured_limits_and_every_destination_are_divided_too() -> None:
    config = copy.deepcopy(yaml.safe_load((CHART / "values.yaml").read_text())["config"])
    config["optikpi"]["rate_limits"] = {"deposit": 90}
    config["destinations"] = {
        "brand2": {
            "base_url": "https://gateway.example.com/apigw/ingest",
            "account_id": "a2",
            "workspace_id": "w2",
            "rate_limits": {"customers": 12},
        }
    }
    out = render(values(replicaCount=4, config=config, auth={"token": "t", "tokens": {"brand2": "t2"}}))
    main, other = limits(out.config), limits(out.config, "brand2")
    assert main is not None and other is not None
    assert main["deposit"] == 22.5 and main["customers"] == 12.5
    assert other["customers"] == 3 and other["withdraw"] == 62.5
    # The connector reads the result as valid configuration.
    parse_settings(out.config, "run", source="config.yaml", env={})


def test_with_keda_the_minimum_replica_count_divides() -> None:
    out = render(values(keda={"enabled": True, "minReplicaCount": 2, "maxReplicaCount": 6}))
    main = limits(out.config)
    assert main is not None and main["deposit"] == 125 and main["customers"] == 25


def test_splitting_can_be_turned_off() -> None:
    out = render(values(replicaCount=3, rateLimits={"splitAcrossReplicas": False}))
    assert limits(out.config) is None
