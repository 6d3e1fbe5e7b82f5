"""`demo`: the whole product on one machine with nothing installed but the package.

Embedded Kafka-protocol broker (Tansu, from the `demo` extra), an in-process Schema Registry
stand-in, the sandbox ingest API, sample Avro events with a few poison records, and the real
connector pipeline, run until every event is accepted or dead-lettered. Exits 0 when the counts
add up.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from connector.config.loader import parse_settings
from connector.config.settings import Settings
from connector.errors import ExitCode
from connector.pipeline.loop import Pipeline
from connector.runtime.tables import render_table


def demo_config(
    bootstrap: str, registry_url: str, api_url: str, token: str, account: str, workspace: str
) -> dict[str, Any]:
    example = Path(__file__).resolve().parent / "demo_mappings.yaml"
    mappings = yaml.safe_load(example.read_text(encoding="utf-8"))["mappings"]
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_id": "optikpi-demo",
            "properties": {
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 1000,
                "max.poll.interval.ms": 60000,
            },
        },
        "schema_registry": {"url": registry_url},
        "optikpi": {
            "base_url": api_url,
            "account_id": account,
            "workspace_id": workspace,
            "auth_token": token,
        },
        "batching": {"max_records": 500, "max_wait_ms": 200},
        "dead_letter": {"topic": "optikpi-connector.dlq"},
        "server": {"port": 0},
        "shutdown_timeout_s": 10,
        "mappings": mappings,
    }


def run_demo(count: int, poison_rate: float, timeout_s: float, workdir: Path) -> int:
    from connector.devtools.embedded_broker import EmbeddedBroker
    from connector.devtools.produce import produce_samples
    from connector.devtools.registry_stub import RegistryStub
    from connector.devtools.sandbox.server import (
        DEMO_ACCOUNT_ID,
        DEMO_TOKEN,
        DEMO_WORKSPACE_ID,
        SandboxOptions,
        SandboxServer,
    )
    from connector.kafka.admin import KafkaAdmin
    from connector.kafka.config import admin_config
    from connector.kafka.producer import KafkaProducer
    from connector.pipeline.wiring import build_connector

    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(
        "demo: starting the embedded Kafka broker, a schema registry and the sandbox ingest API ...",
        flush=True,
    )
    with (
        EmbeddedBroker(log_file=workdir / "broker.log") as broker,
        RegistryStub() as registry_stub,
        SandboxServer(SandboxOptions(port=0, rate_limit_scale=1.0, store=workdir / "accepted.jsonl")) as api,
    ):
        doc = demo_config(
            broker.bootstrap_servers,
            registry_stub.url,
            api.base_url,
            DEMO_TOKEN,
            DEMO_ACCOUNT_ID,
            DEMO_WORKSPACE_ID,
        )
        (workdir / "demo-config.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        settings = parse_settings(doc, "run", source=str(workdir / "demo-config.yaml"), env={})
        print(f"demo: broker {broker.bootstrap_servers}, registry {registry_stub.url}, API {api.base_url}")

        from connector.pipeline.wiring import build_registry, kafka_producer_config

        assert settings.kafka is not None and settings.dead_letter is not None
        admin = KafkaAdmin(admin_config(settings.kafka.bootstrap_servers, {}))
        admin.create_topics([settings.dead_letter.topic], 1, 30.0)
        producer = KafkaProducer(kafka_producer_config(settings))
        registry = build_registry(settings)
        assert registry is not None
        produced = produce_samples(
            settings, producer, admin, registry, count, poison_rate, random.Random(20261122)
        )
        producer.close()
        del admin  # librdkafka handles log reconnect noise until destroyed
        total = sum(good + poison for good, poison in produced.values())
        poison = sum(p for _, p in produced.values())
        print(
            f"demo: produced {total} Avro events to {len(produced)} topics ({poison} poison); "
            "running the connector ...",
            flush=True,
        )

        connector = build_connector(settings, registry=registry)
        pipeline = connector.pipeline
        deadline = time.monotonic() + timeout_s

        def finished(p: Pipeline) -> bool:
            done = p.stats["accepted"] + p.stats["dead_lettered"]
            return (done >= total and p.in_flight_records == 0) or time.monotonic() > deadline

        try:
            code = pipeline.run(until=finished)
        finally:
            connector.close()
            registry.close()
        _print_summary(settings, pipeline, api.entries(), produced, time.monotonic() - started)
        settled = pipeline.stats["accepted"] + pipeline.stats["dead_lettered"]
        if settled < total:
            print(
                f"demo: FAILED: only {settled} of {total} events were settled within {timeout_s:.0f}s",
                flush=True,
            )
            return ExitCode.FAILURE
        return code


def _print_summary(
    settings: Settings,
    pipeline: Pipeline,
    accepted: list[tuple[str, dict[str, Any]]],
    produced: dict[str, tuple[int, int]],
    elapsed: float,
) -> None:
    by_endpoint = Counter(endpoint for endpoint, _ in accepted)
    print("\naccepted by the ingest API (sandbox)")
    print(*_count_table("ENDPOINT", sorted(by_endpoint.items())), sep="\n")
    print("\ndead-lettered, by stage")
    print(*_count_table("STAGE", pipeline.dead_lettered_by_stage.items()), sep="\n")
    total = sum(g + p for g, p in produced.values())
    print(
        f"\n{total} events produced, {pipeline.stats['accepted']} accepted, "
        f"{pipeline.stats['dead_lettered']} dead-lettered, {pipeline.stats['commits']} offset commits, "
        f"{elapsed:.1f}s"
    )


def _count_table(title: str, counts: Iterable[tuple[str, int]]) -> list[str]:
    counted = list(counts)
    rows = [[name, str(n)] for name, n in counted]
    rows.append(["total", str(sum(n for _, n in counted))])
    return ["  " + line for line in render_table([title, "RECORDS"], rows, right=[1])]
