"""`check`: each mapping checked statically against its schema (file or registry), then whether Kafka
and every destination API answer at all; exit 0 when all is well, else 2."""

from __future__ import annotations

import json
from typing import Any

from connector.avro.registry import SchemaRegistryClient
from connector.avro.schemas import load_schema
from connector.config.settings import MappingSettings, Settings
from connector.errors import RegistryUnavailable
from connector.pipeline.wiring import build_registry, schema_dirs
from connector.runtime.tables import render_table


def run_check(settings: Settings, offline: bool, as_json: bool) -> int:
    from connector.mapping.check import CheckIssue, CheckResult, check_mapping

    registry = None if offline else build_registry(settings)
    results: list[CheckResult] = []
    for m in settings.mappings:
        schema, source = _schema_for_check(m, settings, registry, offline)
        if isinstance(schema, str):  # a problem fetching it
            results.append(CheckResult(m.topic, m.endpoint, source, (CheckIssue("error", "schema", schema),)))
            continue
        results.append(check_mapping(m, schema, source))
    reach: list[tuple[str, bool, str]] = [] if offline else _reachability(settings, registry)
    if registry is not None:
        registry.close()
    ok = all(r.ok for r in results) and all(good for _, good, _ in reach)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": ok,
                    "mappings": [
                        {
                            "topic": r.topic,
                            "endpoint": r.endpoint,
                            "schema": r.schema_source,
                            "ok": r.ok,
                            "issues": [
                                {"level": i.level, "field": i.field, "message": i.message} for i in r.issues
                            ],
                        }
                        for r in results
                    ],
                    "connectivity": [{"target": t, "ok": good, "detail": d} for t, good, d in reach],
                },
                indent=2,
            )
        )
    else:
        _print_check(results, reach)
    return 0 if ok else 2


def _schema_for_check(
    m: MappingSettings, settings: Settings, registry: SchemaRegistryClient | None, offline: bool
) -> tuple[dict[str, Any] | str | None, str]:
    if m.schema_path:
        try:
            return load_schema(m.schema_path, schema_dirs(settings)), m.schema_path
        except ValueError as exc:
            return str(exc), m.schema_path
    if offline or registry is None:
        return None, "(none offline)"
    subject = m.value_subject
    try:
        latest = registry.latest(subject)
    except RegistryUnavailable as exc:
        return f"schema registry unreachable: {exc}", f"registry {subject}"
    if latest is None:
        return f"no schema registered under subject {subject}", f"registry {subject}"
    return latest[1], f"registry {subject} (id {latest[0]})"


def _reachability(settings: Settings, registry: SchemaRegistryClient | None) -> list[tuple[str, bool, str]]:
    import httpx

    out: list[tuple[str, bool, str]] = []
    try:
        from connector.kafka.admin import KafkaAdmin
        from connector.kafka.config import admin_config

        k = settings.kafka
        assert k is not None
        topics = KafkaAdmin(admin_config(k.bootstrap_servers, k.properties)).list_topics(10.0)
        missing = [m.topic for m in settings.mappings if m.topic not in topics]
        detail = f"{len(topics)} topics" + (f"; missing: {', '.join(missing)}" if missing else "")
        out.append(("kafka", not missing, detail))
    except Exception as exc:
        out.append(("kafka", False, str(exc)[:200]))
    for name, dest in settings.destinations.items():
        # An unsigned GET: reaching the gateway at all is what this proves, not the credentials
        # (`send` with one record checks those).
        try:
            response = httpx.get(dest.base_url, timeout=10.0)
            out.append((f"api {name}", response.status_code < 500, f"HTTP {response.status_code}"))
        except httpx.HTTPError as exc:
            out.append((f"api {name}", False, type(exc).__name__))
    return out


def _print_check(results: list[Any], reach: list[tuple[str, bool, str]]) -> None:
    rows = []
    for r in results:
        errors = sum(1 for i in r.issues if i.level == "error")
        warnings = len(r.issues) - errors
        rows.append(
            (
                r.topic,
                r.endpoint,
                r.schema_source,
                "ok" if not r.issues else f"{errors} error(s), {warnings} warning(s)",
            )
        )
    for line in render_table(("TOPIC", "ENDPOINT", "SCHEMA", "RESULT"), rows):
        print(line)
    for r in results:
        for issue in r.issues:
            print(f"  {r.topic}: {issue.level}: {issue.field}: {issue.message}")
    for target, good, detail in reach:
        print(f"{target}: {'ok' if good else 'FAILED'} ({detail})")
