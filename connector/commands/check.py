"""`check`: each mapping checked statically against its schema (file or registry); online, also the
broker, every mapped topic, the dead-letter topic (metadata and configs only: no probe record), the
registry for every confluent-avro mapping, and each destination's credentials with a signed
request. One line per check, ok or what is wrong; exit 0 when all is well, else 2."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from connector.avro.registry import SchemaRegistryClient
from connector.avro.schemas import load_schema
from connector.config.settings import DestinationSettings, MappingSettings, Settings
from connector.endpoints import ENDPOINTS
from connector.errors import RegistryUnavailable, TokenFileError
from connector.pipeline.wiring import build_registry, schema_dirs
from connector.runtime.tables import render_table

if TYPE_CHECKING:
    from connector.kafka.admin import KafkaAdmin, TopicDescription

KAFKA_TIMEOUT_S = 10.0
API_TIMEOUT_S = 10.0
# A dead-letter topic that survives one broker loss: three replicas, two of them in sync per write.
MIN_DLQ_REPLICATION = 3
MIN_DLQ_IN_SYNC = 2


def run_check(settings: Settings, offline: bool, as_json: bool, timeout_s: float = 10.0) -> int:
    from connector.mapping.check import CheckIssue, CheckResult, check_mapping

    registry = None if offline else build_registry(settings)
    results: list[CheckResult] = []
    for m in settings.mappings:
        schema, source = _schema_for_check(m, settings, registry, offline)
        if isinstance(schema, str):  # a problem fetching it
            results.append(CheckResult(m.topic, m.endpoint, source, (CheckIssue("error", "schema", schema),)))
            continue
        results.append(check_mapping(m, schema, source))
    reach: list[tuple[str, bool, str]] = [] if offline else _reachability(settings, registry, timeout_s)
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


def _reachability(
    settings: Settings, registry: SchemaRegistryClient | None, timeout_s: float
) -> list[tuple[str, bool, str]]:
    """One line per thing `run` needs from outside: the broker, each mapped topic, the dead-letter
    topic, the registry for each confluent-avro mapping, each destination's credentials."""
    out = _kafka_lines(settings, timeout_s)
    out += _registry_lines(settings, registry)
    for name, dest in settings.destinations.items():
        endpoints = [m.endpoint for m in settings.mappings if m.destination == name]
        out.append((f"api {name}", *probe_credentials(dest, endpoints[0] if endpoints else "customers")))
    return out


def _kafka_lines(settings: Settings, timeout_s: float) -> list[tuple[str, bool, str]]:
    from connector.kafka.admin import KafkaAdmin
    from connector.kafka.config import admin_config
    from connector.kafka.rdlogs import LibrdkafkaLogs

    k = settings.kafka
    assert k is not None
    try:
        # The line below says what went wrong; librdkafka's own lines stay at debug level.
        logs = LibrdkafkaLogs(reported_by_caller=True)
        admin = KafkaAdmin(admin_config(k.bootstrap_servers, k.properties, logs=logs))
        topics = admin.list_topics(timeout_s)
    except Exception as exc:
        reason = str(exc)[:200]
        # The admin's "cannot reach Kafka at ..." names the brokers already.
        named = reason if k.bootstrap_servers in reason else f"{k.bootstrap_servers}: {reason}"
        return [("kafka", False, named)]
    out = [("kafka", True, f"{k.bootstrap_servers}: {len(topics)} topics")]
    for m in settings.mappings:
        found = topics.get(m.topic)
        out.append(
            (f"topic {m.topic}", found is not None, f"{found} partitions" if found else "does not exist")
        )
    if settings.dead_letter is not None:
        out.append(_dead_letter_line(admin, settings.dead_letter.topic, timeout_s))
    return out


def _dead_letter_line(admin: KafkaAdmin, topic: str, timeout_s: float) -> tuple[str, bool, str]:
    """Whether the producer can write to the dead-letter topic, from its metadata and configs:
    no probe record (it would be a dead letter nobody sent)."""
    target = f"dead-letter topic {topic}"
    try:
        found = admin.describe_topic(topic, timeout_s)
    except Exception as exc:
        return target, False, str(exc)[:200]
    if found is None:
        return target, False, "does not exist"
    if found.leaderless:
        partitions = ", ".join(str(p) for p in found.leaderless)
        return target, False, f"partitions without a leader, which take no writes: {partitions}"
    min_isr = found.config_int("min.insync.replicas")
    if min_isr is not None and found.fewest_in_sync < min_isr:
        # The producer writes with acks=all: fewer in-sync replicas than this refuses every write.
        return (
            target,
            False,
            (
                f"{found.fewest_in_sync} in-sync replica(s), below min.insync.replicas {min_isr}: "
                "writes are refused"
            ),
        )
    warning = dead_letter_durability_warning(found)
    detail = f"{found.partitions} partitions, replication factor {found.replication_factor}"
    return target, True, detail + (f"; warning: {warning}" if warning else "")


def dead_letter_durability_warning(topic: TopicDescription) -> str | None:
    """Once offsets move past a poison record, its dead-letter copy is the only copy: the topic
    should survive a broker loss. None when it does (or the broker does not say)."""
    problems = []
    if topic.replication_factor < MIN_DLQ_REPLICATION:
        problems.append(f"replication factor {topic.replication_factor} (below {MIN_DLQ_REPLICATION})")
    min_isr = topic.config_int("min.insync.replicas")
    if min_isr is not None and min_isr < MIN_DLQ_IN_SYNC:
        problems.append(f"min.insync.replicas {min_isr} (below {MIN_DLQ_IN_SYNC})")
    if not problems:
        return None
    return (
        " and ".join(problems)
        + ": a dead-letter copy is the only copy of its record once offsets move past it"
    )


def _registry_lines(settings: Settings, registry: SchemaRegistryClient | None) -> list[tuple[str, bool, str]]:
    """The registry is asked for every confluent-avro mapping, a local `schema:` included: the
    records' writer schemas still come from it, by id."""
    out: list[tuple[str, bool, str]] = []
    for m in settings.mappings:
        if m.format != "confluent-avro":
            continue
        subject = f"{m.topic}-value"
        target = f"registry {subject}"
        if registry is None:
            out.append((target, False, "no schema_registry configured"))
            continue
        try:
            latest = registry.latest(subject)
        except RegistryUnavailable as exc:
            out.append((target, False, f"unreachable: {str(exc)[:200]}"))
            continue
        if latest is not None:
            out.append((target, True, f"latest id {latest[0]}"))
        elif m.schema_path:
            out.append((target, True, "answers; nothing registered under this subject yet"))
        else:
            out.append((target, False, "nothing registered under this subject"))
    return out


def probe_credentials(destination: DestinationSettings, endpoint: str) -> tuple[bool, str]:
    """A signed POST of an empty array: the API checks the route (404) and the credentials and
    signature (401/403) before it reads the body, so any other answer about the body (400, or
    a 2xx) means both are right, and no record is stored."""
    import httpx

    from connector.ingest.client import token_source
    from connector.ingest.signing import HmacAuth

    host = httpx.URL(destination.base_url).host
    try:
        auth = HmacAuth(destination.account_id, destination.workspace_id, token_source(destination))
        with httpx.Client(base_url=destination.base_url, auth=auth, timeout=API_TIMEOUT_S) as client:
            response = client.post(ENDPOINTS[endpoint].path, content=b"[]")
    except httpx.HTTPError as exc:
        return False, f"{host}: {type(exc).__name__}"
    except (TokenFileError, ValueError) as exc:
        return False, str(exc)
    status = response.status_code
    if status < 300 or status == 400:
        return True, f"{host}: credentials accepted (HTTP {status} to an empty signed request)"
    if status in (401, 403):
        return (
            False,
            f"{host}: credentials refused (HTTP {status}): check auth_token, account_id, workspace_id",
        )
    if status in (404, 405) or 300 <= status < 400:
        return False, f"{host}: no ingest API at this base_url (HTTP {status})"
    return False, f"{host}: HTTP {status}: credentials not verified"


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
