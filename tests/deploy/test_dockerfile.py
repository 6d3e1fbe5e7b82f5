"""The Dockerfile, offline: hadolint, then what hadolint cannot know about this image."""

from __future__ import annotations

import json
import re
import shlex

import pytest
import yaml

from tests.deploy.conftest import CHART, ROOT, run, tool

pytestmark = pytest.mark.deploy

DOCKERFILE = ROOT / "Dockerfile"
OCI_LABELS = ("title", "description", "version", "revision", "created", "licenses", "base.name")


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _stages() -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for word, rest in _instructions():
        if word == "FROM":
            parts = rest.split()
            name = parts[-1] if len(parts) >= 3 and parts[-2].upper() == "AS" else str(len(stages))
            current = stages.setdefault(name, [])
        current.append((word, rest))
    return stages


def _final() -> list[tuple[str, str]]:
    return list(_stages().values())[-1]


def _env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in stage:
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def test_hadolint_is_clean() -> None:
    # Every finding fails, down to style. (hadolint's --require-label would demand the labels in
    # the builder stage too: test_labels_are_oci_annotations checks the runtime stage instead.)
    result = run([tool("hadolint"), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_wheel_build_and_pinned_slim_runtime() -> None:
    stages = _stages()
    assert len(stages) >= 2
    builder = next(
        s for s in stages.values() if any("pip wheel" in r or "-m build" in r for w, r in s if w == "RUN")
    )
    final = _final()
    assert builder is not final, "the wheel is built in a builder stage"
    image = final[0][1].split()[0]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image
    runtime_runs = " ".join(r for w, r in final if w == "RUN")
    for compiler in ("gcc", "build-essential", "g++", "clang", "make "):
        assert compiler not in runtime_runs, f"{compiler} in the runtime stage"
    assert "--no-install-recommends" in runtime_runs
    assert re.search(r"\btini=", runtime_runs), "tini is installed from Debian, pinned"
    assert "pip wheel" not in runtime_runs and "--no-index" in runtime_runs


def test_runtime_user_entrypoint_and_command() -> None:
    final = _final()
    (user,) = [r for w, r in final if w == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"USER must be a numeric non-root uid, got {user}"
    (entrypoint,) = [json.loads(r) for w, r in final if w == "ENTRYPOINT"]
    assert entrypoint[0].endswith("/tini") and entrypoint[-1] == "optikpi-connector", entrypoint
    (cmd,) = [json.loads(r) for w, r in final if w == "CMD"]
    assert cmd == ["run", "--config", "/etc/optikpi-connector/config.yaml"]
    env = _env(final)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert env["TMPDIR"] == "/tmp"


def test_exposed_port_is_the_servers_port() -> None:
    (expose,) = [r for w, r in _final() if w == "EXPOSE"]
    examples = yaml.safe_load((ROOT / "examples" / "connector.yaml").read_text())
    chart = yaml.safe_load((CHART / "values.yaml").read_text())
    assert int(expose.split("/")[0]) == examples["server"]["port"] == chart["config"]["server"]["port"]


def test_labels_are_oci_annotations() -> None:
    labels = " ".join(r for w, r in _final() if w == "LABEL")
    for label in OCI_LABELS:
        assert f"org.opencontainers.image.{label}=" in labels


def test_build_context_holds_what_the_dockerfile_copies() -> None:
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    ignore = [line for line in ignore if line and not line.startswith("#")]
    assert ignore[0] == "*", ".dockerignore starts by excluding everything"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for word, rest in _instructions():
        if word == "COPY" and "--from=" not in rest:
            *sources, _dest = rest.split()
            for source in sources:
                assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"
                assert (ROOT / source).exists(), source
