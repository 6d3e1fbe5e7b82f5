"""Loading the configuration: YAML file → ${VAR} interpolation → the settings models → Settings.

Parsed once at the entry point. Every problem is reported as one line naming the key path, and
each command validates only the sections it uses (`send` must not fail on a broken `kafka:`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from connector.config.settings import (
    DEFAULT_DESTINATION,
    BackpressureSettings,
    BatchingSettings,
    DeadLetterSettings,
    DestinationSettings,
    KafkaSettings,
    MappingSettings,
    ProcessingSettings,
    RetrySettings,
    SchemaRegistrySettings,
    ServerSettings,
    Settings,
)
from connector.errors import ConfigError

__all__ = [
    "COMMAND_SECTIONS",
    "ConfigError",
    "interpolate",
    "load_settings",
    "parse_settings",
    "read_yaml",
]


# Which sections each command reads. A section not listed is not even looked at.
SECTION_MODELS: dict[str, type[BaseModel]] = {
    "kafka": KafkaSettings,
    "schema_registry": SchemaRegistrySettings,
    "optikpi": DestinationSettings,
    "batching": BatchingSettings,
    "retry": RetrySettings,
    "dead_letter": DeadLetterSettings,
    "server": ServerSettings,
    "backpressure": BackpressureSettings,
    "processing": ProcessingSettings,
}
TOP_LEVEL_KEYS = {*SECTION_MODELS, "destinations", "mappings", "shutdown_timeout_s", "log_level"}


# What each command needs. "required" sections must be present; "optional" are validated when present.
_PIPELINE_SECTIONS = (
    frozenset({"kafka", "optikpi", "dead_letter", "mappings"}),
    frozenset(
        {
            "schema_registry",
            "destinations",
            "batching",
            "retry",
            "server",
            "backpressure",
            "processing",
            "shutdown_timeout_s",
            "log_level",
        }
    ),
)
COMMAND_SECTIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "send": (frozenset({"optikpi"}), frozenset({"batching", "retry"})),
    "run": _PIPELINE_SECTIONS,
    "check": _PIPELINE_SECTIONS,
    "dlq": (frozenset({"kafka", "dead_letter"}), frozenset({"schema_registry"})),
    # Samples need no destination: the mappings' destinations are not checked for it.
    "produce-sample": (frozenset({"kafka", "mappings"}), frozenset({"schema_registry"})),
}

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def _path(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def interpolate(value: Any, loc: tuple[str | int, ...], env: Mapping[str, str], problems: list[str]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string of a YAML tree."""
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(f"{_path(loc)}: environment variable {name} is not set (and has no default)")
            return ""

        replaced = _VAR.sub(repl, value)
        # A value that was only a variable keeps YAML scalar typing (port: ${PORT} -> int).
        if replaced != value and _VAR.fullmatch(value.strip()):
            try:
                loaded = yaml.safe_load(replaced) if replaced.strip() else replaced
            except yaml.YAMLError:
                return replaced
            if isinstance(loaded, int | float | bool) and not isinstance(value, bool):
                return loaded
        return replaced
    if isinstance(value, dict):
        return {k: interpolate(v, (*loc, str(k)), env, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, (*loc, i), env, problems) for i, v in enumerate(value)]
    return value


def _pydantic_problems(exc: ValidationError, prefix: tuple[str | int, ...]) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if loc and loc[-1] == "[key]":
            loc = loc[:-1]
            msg = f"unknown key, {msg[0].lower()}{msg[1:]}"
        elif err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "is required"
        elif err["type"] == "string_too_short" and err.get("ctx", {}).get("min_length") == 1:
            msg = "must not be empty"
        problems.append(f"{_path((*prefix, *loc)) or '(top level)'}: {msg}")
    return problems


def _validate_section(model: type[Any], raw: Any, prefix: tuple[str | int, ...], problems: list[str]) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(f"{_path(prefix)}: must be a mapping, got {type(raw).__name__}")
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, prefix))
        return None


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([f"{path}:{where}: {problem}"]) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of sections"])
    return doc


def load_settings(path: str | Path, command: str, env: Mapping[str, str] | None = None) -> Settings:
    """Read, interpolate and validate the sections `command` uses. Raises ConfigError."""
    path = Path(path)
    doc = read_yaml(path)
    return parse_settings(doc, command, source=str(path), env=os.environ if env is None else env)


def parse_settings(doc: Mapping[str, Any], command: str, source: str, env: Mapping[str, str]) -> Settings:
    required, optional = COMMAND_SECTIONS[command]
    used = required | optional
    problems: list[str] = []
    unknown = sorted(str(k) for k in doc if k not in TOP_LEVEL_KEYS)
    problems.extend(f"{k}: unknown top-level key" for k in unknown)
    for key in sorted(required):
        if doc.get(key) is None:
            problems.append(f"{key}: is required for `{command}`")
    raw = {k: interpolate(v, (k,), env, problems) for k, v in doc.items() if k in used}

    values: dict[str, Any] = {}
    for name, model in SECTION_MODELS.items():
        if name in used and raw.get(name) is not None:
            parsed = _validate_section(model, raw[name], (name,), problems)
            if parsed is not None:
                values[name] = parsed

    destinations: dict[str, DestinationSettings] = {}
    if "optikpi" in values:
        destinations[DEFAULT_DESTINATION] = values.pop("optikpi")
    extra = raw.get("destinations")
    if extra is not None:
        if not isinstance(extra, dict):
            problems.append("destinations: must be a mapping of name → destination")
        else:
            for name, dest in extra.items():
                if name == DEFAULT_DESTINATION:
                    problems.append(f"destinations.{name}: the name is reserved for the `optikpi` section")
                    continue
                parsed = _validate_section(DestinationSettings, dest, ("destinations", str(name)), problems)
                if parsed is not None:
                    destinations[str(name)] = parsed

    mappings: list[MappingSettings] = []
    if "mappings" in used and raw.get("mappings") is not None:
        raw_mappings = raw["mappings"]
        if not isinstance(raw_mappings, list) or not raw_mappings:
            problems.append("mappings: must be a non-empty list")
        else:
            for i, item in enumerate(raw_mappings):
                parsed = _validate_section(MappingSettings, item, ("mappings", i), problems)
                if parsed is not None:
                    mappings.append(parsed)
            # Destinations that failed validation are reported already; still count them as declared.
            declared = set(destinations)
            if raw.get("optikpi") is not None:
                declared.add(DEFAULT_DESTINATION)
            if isinstance(extra, dict):
                declared.update(str(k) for k in extra)
            problems.extend(
                _check_mappings(
                    mappings, declared if "optikpi" in used else None, raw_mappings, "schema_registry" in raw
                )
            )

    shutdown = raw.get("shutdown_timeout_s", 25.0)
    if "shutdown_timeout_s" in used and (
        isinstance(shutdown, bool) or not isinstance(shutdown, int | float) or not 0 < shutdown <= 3600
    ):
        problems.append("shutdown_timeout_s: must be a number of seconds between 0 and 3600")
        shutdown = 25.0
    log_level = raw.get("log_level", "info")
    if "log_level" in used and log_level not in ("debug", "info", "warning", "error"):
        problems.append("log_level: must be one of debug, info, warning, error")
        log_level = "info"

    if problems:
        # A key whose ${VAR} is missing also fails validation as empty; report the cause only.
        unset = {p.split(":", 1)[0] for p in problems if "environment variable" in p}
        problems = [p for p in problems if "environment variable" in p or p.split(":", 1)[0] not in unset]
        raise ConfigError(f"{source}: {p}" for p in problems)
    return Settings(
        source=source,
        destinations=destinations,
        mappings=tuple(mappings),
        shutdown_timeout_s=float(shutdown),
        log_level=str(log_level),
        **values,
    )


def _check_mappings(
    mappings: list[MappingSettings],
    destinations: set[str] | None,
    raw: list[Any],
    have_registry: bool,
) -> list[str]:
    problems = []
    seen: dict[str, int] = {}
    for i, m in enumerate(mappings):
        # The index in the YAML list, so the message points at the entry the user wrote.
        index = next((j for j, r in enumerate(raw) if isinstance(r, dict) and r.get("topic") == m.topic), i)
        if m.topic in seen:
            problems.append(
                f"mappings[{index}].topic: {m.topic!r} is mapped twice (also mappings[{seen[m.topic]}])"
            )
        seen.setdefault(m.topic, index)
        if destinations is not None and m.destination not in destinations:
            known = ", ".join(sorted(destinations)) or "none"
            problems.append(
                f"mappings[{index}].destination: unknown destination {m.destination!r} (known: {known})"
            )
        if m.format == "confluent-avro" and not have_registry:
            problems.append(f"mappings[{index}].format: confluent-avro needs the `schema_registry` section")
    return problems
