"""The README's metric table names exactly what `/metrics` exposes during a real run: the wired
connector (in-memory Kafka, the real ingest client against the sandbox on loopback) with its
health server, scraped over HTTP while the pipeline runs."""

from __future__ import annotations

import random
import re
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from connector.avro.decoding import encode_raw
from connector.avro.schemas import load_schema, parse
from connector.config.loader import parse_settings
from connector.devtools.samples import make_messages
from connector.devtools.sandbox.server import (
    DEMO_ACCOUNT_ID,
    DEMO_TOKEN,
    DEMO_WORKSPACE_ID,
    SandboxOptions,
    SandboxServer,
)
from connector.kafka.memory.broker import InMemoryBroker
from connector.pipeline.loop import Pipeline
from connector.pipeline.wiring import build_connector
from connector.runtime.server import HealthServer

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
COUNT = 60


def readme_metrics() -> set[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Metrics") :]
    section = section[: section.index("\n#")]
    return set(re.findall(r"^\| `(optikpi_\w+)` \|", section, re.M))


def exposed_names(text: str) -> tuple[set[str], dict[str, float]]:
    """Family names as scraped (counters with their `_total`), and every sample's value."""
    names: set[str] = set()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("optikpi_"):
            names.add(family.name + "_total" if family.type == "counter" else family.name)
            for sample in family.samples:
                samples[sample.name] = samples.get(sample.name, 0.0) + sample.value
    return names, samples


def settings_for(api_url: str) -> Any:
    doc = {
        "kafka": {"bootstrap_servers": "in-memory:0"},
        "optikpi": {
            "base_url": api_url,
            "account_id": DEMO_ACCOUNT_ID,
            "workspace_id": DEMO_WORKSPACE_ID,
            "auth_token": DEMO_TOKEN,
        },
        "batching": {"max_records": 20, "max_wait_ms": 50},
        "dead_letter": {"topic": "dlq"},
        "mappings": [
            {
                "topic": "casino.deposits",
                "endpoint": "deposit",
                "format": "avro",
                "schema": "deposit.avsc",
                "fields": {"user_id": "player_id", "event_id": "deposit_id", "event_time": "created_at"},
                "constants": {"event_name": "Successful Deposit"},
            }
        ],
    }
    return parse_settings(doc, "run", source="metrics-test.yaml", env={})


def test_the_readme_table_lists_exactly_the_exposed_metrics(tmp_path: Path) -> None:
    broker = InMemoryBroker(time.time)  # records stamped with wall-clock time, as Kafka does
    broker.create_topic("casino.deposits", 2)
    broker.create_topic("dlq", 1)
    encode = partial(encode_raw, parse(load_schema("deposit", [])))
    messages = make_messages("deposit", COUNT, encode, random.Random(5), 0.1, wire_format="avro")
    for msg in messages:
        broker.produce("casino.deposits", msg.value, key=msg.key, headers=msg.headers)

    scraped: list[str] = []
    with SandboxServer(SandboxOptions(port=0, rate_limit_scale=0, seed=1)) as api:
        connector = build_connector(
            settings_for(api.base_url), consumer=broker.consumer("g"), producer=broker.producer()
        )
        server = HealthServer(connector.health, connector.metrics, "127.0.0.1", 0).start()

        def settled(p: Pipeline) -> bool:
            if p.stats["accepted"] + p.stats["dead_lettered"] < COUNT or p.in_flight_records:
                return False
            # Scraped over HTTP from the loop thread, while the pipeline is still running.
            scraped.append(httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10).text)
            return True

        try:
            assert connector.pipeline.run(until=settled) == 0
        finally:
            connector.close()
            server.stop()

    names, samples = exposed_names(scraped[0])
    documented = readme_metrics()
    assert names - documented == set(), "exposed but missing from the README table"
    assert documented - names == set(), "in the README table but not exposed"
    assert not any(name.endswith("_created") for name in samples)
    # The run was real: the new series carry values.
    assert samples["optikpi_delivery_seconds_count"] >= 1
    assert "optikpi_consumer_lag" in samples
    assert samples["optikpi_ingest_rate_limit"] > 0
    assert samples["optikpi_dead_lettered_total"] >= 1
