"""The Helm chart, offline: lint (strict), render with the defaults and with every option on, validate
the core objects against the Kubernetes 1.30 schemas, the CRDs field by field, and run the
connector's own `check --offline` on the configuration the chart renders."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import (
    ALL_ENABLED_VALUES,
    CHART,
    CORE_KINDS,
    KUBE_VERSION,
    Rendered,
    all_enabled_values,
    check_offline,
    render,
)

pytestmark = pytest.mark.deploy

DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def _destinations(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"optikpi": config["optikpi"], **(config.get("destinations") or {})}


# --- lint and render --------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", [None, ALL_ENABLED_VALUES], ids=["default", "all-enabled"])
def test_helm_lint_strict_is_clean(values_file: Path | None) -> None:
    values = yaml.safe_load(values_file.read_text()) if values_file else None
    report = helm_python.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    # Severity 1 is informational ("icon is recommended"); strict mode fails on warnings (2) and errors (3).
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, json.dumps(report, indent=2)


def test_default_render_has_the_core_objects_only(default_render: Rendered) -> None:
    assert default_render.kinds() == [
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]


def test_all_enabled_render_has_every_object(full_render: Rendered) -> None:
    assert full_render.kinds() == [
        "ConfigMap",  # the configuration
        "ConfigMap",  # the Grafana dashboard
        "Deployment",
        "PodDisruptionBudget",
        "PrometheusRule",
        "ScaledObject",
        "Secret",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ]


def test_core_objects_pass_kubernetes_schemas_strictly(rendered: Rendered) -> None:
    failures = []
    for obj in rendered.objects:
        if obj["kind"] not in CORE_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path) or "(top)"
            failures.append(f"{obj['kind']}/{obj['metadata']['name']} at {where}: {exc.message}")
    assert not failures, "\n".join(failures)


def test_every_rendered_kind_is_either_core_or_checked_here(rendered: Rendered) -> None:
    assert set(rendered.kinds()) <= CORE_KINDS | {"ServiceMonitor", "PrometheusRule", "ScaledObject"}


def test_notes_render(rendered: Rendered) -> None:
    notes = next(text for path, text in rendered.files.items() if path.endswith("NOTES.txt"))
    assert "optikpi-connector check --offline" in notes
    assert "terminationGracePeriodSeconds" in notes


# --- the configuration ------------------------------------------------------------------------


def test_rendered_configuration_passes_check_offline(rendered: Rendered, tmp_path: Path) -> None:
    # Everything the ConfigMap holds lands next to config.yaml, as in the pod (schema files too).
    for name, text in rendered.config_map["data"].items():
        (tmp_path / name).write_text(text)
    result = check_offline(tmp_path / "config.yaml", rendered.container_env())
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_configmap_holds_no_token(rendered: Rendered) -> None:
    for name, dest in _destinations(rendered.config).items():
        assert "auth_token" not in dest, name
    tokens = [v for v in (rendered.merged["auth"].get("tokens") or {}).values()]
    tokens += [rendered.merged["auth"]["token"]] if rendered.merged["auth"]["token"] else []
    text = json.dumps(rendered.config_map)
    assert tokens == [] or not any(t in text for t in tokens)


def test_config_is_mounted_where_the_container_reads_it(rendered: Rendered) -> None:
    args = rendered.container["args"]
    config_path = Path(args[args.index("--config") + 1])
    mount = next(m for m in rendered.container["volumeMounts"] if m["name"] == "config")
    assert config_path == Path(mount["mountPath"]) / "config.yaml"
    assert config_path == Path("/etc/optikpi-connector/config.yaml")
    volume = next(v for v in rendered.pod["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == rendered.config_map["metadata"]["name"]


# --- tokens -----------------------------------------------------------------------------------


def test_token_secret_is_mounted_as_a_directory_and_every_destination_reads_its_own_file(
    rendered: Rendered,
) -> None:
    volume = next(v for v in rendered.pod["volumes"] if "secret" in v)
    mount = next(m for m in rendered.container["volumeMounts"] if m["name"] == volume["name"])
    # subPath mounts are never updated by the kubelet: a rotated token would not reach the pod.
    assert all("subPath" not in m and "subPathExpr" not in m for m in rendered.container["volumeMounts"])
    assert mount["readOnly"] is True
    files = set()
    for name, dest in _destinations(rendered.config).items():
        token_file = Path(dest["auth_token_file"])
        assert token_file.parent == Path(mount["mountPath"]), (name, token_file)
        files.add(token_file.name)
    assert len(files) == len(_destinations(rendered.config)), "two destinations share a token file"
    secret_name = volume["secret"]["secretName"]
    created = [s for s in rendered.maybe("Secret") if s["metadata"]["name"] == secret_name]
    if created:  # the chart made it: it must hold exactly the files the configuration reads
        assert set(created[0]["data"]) == files
    else:
        assert not volume["secret"].get("items"), "items would hide keys the configuration reads"


def test_all_enabled_secret_holds_each_destinations_token(full_render: Rendered) -> None:
    import base64

    secret = full_render.one("Secret")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {"optikpi": "brand1-token", "brand2-ingest-token": "brand2-token"}
    config = full_render.config
    assert config["destinations"]["brand2"]["auth_token_file"].endswith("/brand2-ingest-token")


def test_existing_secret_is_used_and_no_secret_is_created() -> None:
    values = all_enabled_values()
    values["auth"] = {"existingSecret": "optikpi-tokens"}
    out = render(values)
    assert out.maybe("Secret") == []
    volume = next(v for v in out.pod["volumes"] if "secret" in v)
    assert volume["secret"]["secretName"] == "optikpi-tokens"
    assert out.config["destinations"]["brand2"]["auth_token_file"] == "/var/run/secrets/optikpi/brand2"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v["auth"].update(existingSecret="x"), "not both"),
        (lambda v: v["auth"]["tokens"].pop("brand2"), "no token for destination"),
        (lambda v: v["config"]["optikpi"].update(auth_token="t"), "auth_token"),
        (lambda v: v["config"]["destinations"]["brand2"].update(auth_token_file="/x"), "auth_token_file"),
        (lambda v: v["config"]["server"].update(port=0), "port"),
        (lambda v: v.update(terminationGracePeriodSeconds=45), "terminationGracePeriodSeconds"),
        (lambda v: v["keda"].update(minReplicaCount=7), "minReplicaCount"),
        (lambda v: v.update(replicaCont=2), "replicaCont"),
    ],
    ids=[
        "secret-and-token",
        "destination-without-token",
        "token-in-config",
        "token-file-in-config",
        "no-server",
        "grace-below-shutdown",
        "keda-min-above-max",
        "misspelt-value",
    ],
)
def test_bad_values_are_refused_with_a_message(change: Any, message: str) -> None:
    values = all_enabled_values()
    change(values)
    with pytest.raises(helm_python.HelmError, match=message):
        render(values)


# --- pod: stop, probes, security --------------------------------------------------------------


def test_grace_period_outlasts_shutdown_timeout(rendered: Rendered) -> None:
    shutdown = rendered.config.get("shutdown_timeout_s", 25)
    grace = rendered.pod["terminationGracePeriodSeconds"]
    assert isinstance(grace, int)
    assert grace > shutdown
    assert grace >= math.ceil(shutdown) + rendered.merged["terminationGracePaddingSeconds"]


def test_probes_use_healthz_and_readyz_on_the_configured_port(rendered: Rendered) -> None:
    container = rendered.container
    port = rendered.config.get("server", {}).get("port", 8080)
    (http,) = container["ports"]
    assert (http["name"], http["containerPort"]) == ("http", port)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    service = rendered.one("Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert (
        service["spec"]["selector"].items()
        <= rendered.deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def test_pod_is_locked_down(rendered: Rendered) -> None:
    pod, container = rendered.pod, rendered.container
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "add" not in sc["capabilities"]
    assert sc["runAsUser"] != 0 and pod["securityContext"]["runAsUser"] != 0
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    volume = next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert "emptyDir" in volume


def test_config_change_rolls_the_pods(default_render: Rendered) -> None:
    annotations = default_render.deployment["spec"]["template"]["metadata"]["annotations"]
    configmap_text = default_render.files["optikpi-connector/templates/configmap.yaml"]
    assert annotations["checksum/config"] == hashlib.sha256(configmap_text.encode()).hexdigest()
    changed = render({"config": {"batching": {"max_wait_ms": 250}}})
    assert (
        changed.deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        != (annotations["checksum/config"])
    )


def test_token_rotation_does_not_roll_the_pods() -> None:
    values = all_enabled_values()
    before = render(values).deployment["spec"]["template"]
    values["auth"]["token"] = "rotated-token"
    assert render(values).deployment["spec"]["template"] == before


def test_disruption_budget_lets_unhealthy_pods_go(rendered: Rendered) -> None:
    pdb = rendered.one("PodDisruptionBudget")
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert pdb["spec"]["selector"]["matchLabels"] == rendered.deployment["spec"]["selector"]["matchLabels"]


def test_scheduling_values_reach_the_pod(full_render: Rendered) -> None:
    pod, values = full_render.pod, all_enabled_values()
    assert pod["nodeSelector"] == values["nodeSelector"]
    assert pod["tolerations"] == values["tolerations"]
    assert pod["affinity"] == values["affinity"]
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == full_render.deployment["spec"]["selector"]["matchLabels"]
    assert full_render.container["envFrom"] == values["envFrom"]
    assert full_render.container["env"] == values["extraEnv"]


# --- custom resources, checked by their own fields --------------------------------------------


def test_keda_scaled_object(full_render: Rendered) -> None:
    scaled = full_render.one("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": full_render.deployment["metadata"]["name"],
    }
    assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert "replicas" not in full_render.deployment["spec"], "KEDA owns the replica count"
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    # KEDA reads trigger metadata as a map of strings.
    assert all(isinstance(v, str) for v in metadata.values()), metadata
    config = full_render.config
    assert metadata["consumerGroup"] == config["kafka"]["group_id"]
    assert metadata["bootstrapServers"] == config["kafka"]["bootstrap_servers"]
    assert metadata["offsetResetPolicy"] == config["kafka"]["auto_offset_reset"]
    assert int(metadata["lagThreshold"]) > 0
    assert metadata["allowIdleConsumers"] == "false"
    assert trigger["authenticationRef"] == {"name": "kafka-trigger-auth"}
    assert set(spec) <= {
        "scaleTargetRef",
        "minReplicaCount",
        "maxReplicaCount",
        "pollingInterval",
        "cooldownPeriod",
        "idleReplicaCount",
        "fallback",
        "advanced",
        "triggers",
    }


def test_service_monitor_scrapes_the_metrics_service(full_render: Rendered) -> None:
    monitor = full_render.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service = full_render.one("Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert DURATION.match(endpoint["interval"]) and DURATION.match(endpoint["scrapeTimeout"])


def _metric_names(text: str) -> set[str]:
    return set(re.findall(r"\boptikpi_[a-z0-9_]+", text)) - {"optikpi_connector"}


def test_prometheus_rules(full_render: Rendered, exposed_metric_names: set[str]) -> None:
    rule = full_render.one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    (group,) = rule["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert set(alerts) >= {
        "OptikpiConsumerLagGrowing",
        "OptikpiUploadErrors",
        "OptikpiCircuitBreakerOpen",
        "OptikpiCredentialsRefused",
        "OptikpiDeadLetterRate",
        "OptikpiNotReady",
        "OptikpiOffsetCommitsFailing",  # extraRules
    }
    service = full_render.one("Service")["metadata"]["name"]
    for name, r in alerts.items():
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, name
        assert DURATION.match(r["for"]), name
        assert r["labels"]["severity"] in {"warning", "critical"}, name
        expr = r["expr"]
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), name
        assert "{{" not in expr, f"{name}: unrendered template in expr"
        unknown = _metric_names(expr) - exposed_metric_names
        assert not unknown, f"{name} uses metrics the connector does not expose: {unknown}"
        if name != "OptikpiOffsetCommitsFailing":
            assert f'job="{service}"' in expr, f"{name} is not limited to this release"
    breaker = alerts["OptikpiCircuitBreakerOpen"]["expr"]
    assert 'reason="breaker"' in breaker
    assert 'reason="credentials"' in alerts["OptikpiCredentialsRefused"]["expr"]


def test_grafana_dashboard(full_render: Rendered, exposed_metric_names: set[str]) -> None:
    config_map = full_render.one("ConfigMap", "-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = config_map["data"].values()
    dashboard = json.loads(text)
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in dashboard["panels"]}
    used = _metric_names(" ".join(exprs.values()))
    assert not used - exposed_metric_names, f"unknown metrics: {used - exposed_metric_names}"
    latency = next(e for t, e in exprs.items() if "Delivery latency" in t)
    assert "optikpi_delivery_seconds_bucket" in latency
    assert "histogram_quantile(0.95" in latency and "histogram_quantile(0.99" in latency
    assert "by (le, endpoint)" in latency
    assert used >= {
        "optikpi_ingest_requests_total",
        "optikpi_consumer_lag",
        "optikpi_dead_lettered_total",
        "optikpi_in_flight_records",
    }
    assert any("by (topic, partition)" in e for e in exprs.values())
    assert any("by (stage)" in e for e in exprs.values())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_defaults_render_without_any_custom_resource() -> None:
    values = copy.deepcopy(all_enabled_values())
    for key in ("serviceMonitor", "prometheusRule", "dashboard", "keda"):
        values[key]["enabled"] = False
    out = render(values)
    assert set(out.kinds()) <= CORE_KINDS
    assert out.deployment["spec"]["replicas"] == values["replicaCount"]
