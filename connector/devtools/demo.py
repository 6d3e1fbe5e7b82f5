"""`demo`: the whole product on one machine with nothing installed but the package.

Embedded Kafka-protocol broker (Tansu, from the `demo` extra), an in-process Schema Registry
stand-in, the sandbox ingest API, sample Avro events with a few poison records, and the real
connector pipeline, run until every event is accepted or dead-lettered. Exits 0 when the counts
add up. With `keep_running` the stack then stays up like `dev-stack` (connector/devtools/devstack.py).
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


def run_demo(
    count: int, poison_rate: float, timeout_s: float, workdir: Path, *, keep_running: bool = False
) -> int:
    from connector.devtools.devstack import (
        CONFIG_FILE,
        LocalStack,
        print_next_steps,
        serve_until_stopped,
        write_config,
    )
    from connector.devtools.produce import produce_samples
    from connector.kafka.admin import KafkaAdmin
    from connector.kafka.config import admin_config
    from connector.kafka.producer import KafkaProducer
    from connector.pipeline.wiring import build_connector, build_registry, kafka_producer_config

    started = time.monotonic()
    print(
        "demo: starting the embedded Kafka broker, a schema registry and the sandbox ingest API ...",
        flush=True,
    )
    with LocalStack(workdir) as stack:
        doc = stack.config(group_id="optikpi-demo")
        (workdir / "demo-config.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        settings = parse_settings(doc, "run", source=str(workdir / "demo-config.yaml"), env={})
        print(
            f"demo: broker {stack.broker.bootstrap_servers}, registry {stack.registry.url}, "
            f"API {stack.api.base_url}"
        )

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
        _print_summary(settings, pipeline, stack.api.entries(), produced, time.monotonic() - started)
        settled = pipeline.stats["accepted"] + pipeline.stats["dead_lettered"]
        if settled < total:
            print(
                f"demo: FAILED: only {settled} of {total} events were settled within {timeout_s:.0f}s",
                flush=True,
            )
            return ExitCode.FAILURE
        if keep_running:
            config = workdir / CONFIG_FILE
            _, server_port = write_config(stack, config)
            print_next_steps(stack, config, server_port)
            return code or serve_until_stopped(stack)
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
        f"{pipeline.stats['dead_lettered']} dead-lettered, {pipeline.commits} offset commits, "
        f"{elapsed:.1f}s"
    )


def _count_table(title: str, counts: Iterable[tuple[str, int]]) -> list[str]:
    counted = list(counts)
    rows = [[name, str(n)] for name, n in counted]
    rows.append(["total", str(sum(n for _, n in counted))])
    return ["  " + line for line in render_table([title, "RECORDS"], rows, right=[1])]
