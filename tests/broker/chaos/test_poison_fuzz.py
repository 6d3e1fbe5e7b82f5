"""Garbage on the wire: random and mutated Avro payloads mixed with valid bets. A bit flip often
still decodes to a valid bet, so each payload is classified by the reference path (the connector's
own framing and registry lookup, then the reference transform), never by how it was made. Every
poison record must reach the dead-letter topic with the stage the reference gives, every valid one
the API, and the connector must not crash.

Kinds: random bytes (a wrong magic byte), a random body behind the bet's header, bit flips,
truncations, schema ids registered under another subject, well-formed bets with a blank player id
(VALIDATE), values of a few hundred KB, and in the
full run one value above the dead-letter producer's limit (written without its value). Deep
nesting is not among them: the bet schema has no recursive or nested container type deeper than a
record of strings, so no payload under it can nest (tests/unit/test_record_limits.py covers it)."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connector.devtools.embedded_broker import EmbeddedBroker
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.sandbox.server import SandboxServer
from connector.errors import DecodeError, DeliveryError, Stage
from connector.pipeline.deadletter import H_STAGE, H_VALUE_OMITTED
from connector.pipeline.intake import Route
from connector.pipeline.wiring import build_registry, build_routes
from connector.transform.reference import build_reference
from connector.transform.spec import Poison, Transform
from tests.support.brokers import UniqueNames, make_producer
from tests.support.chaos import PeakRss, Verdict, judge, keep, session_order_breaks
from tests.support.e2e import (
    ENDPOINT,
    ConnectorProcess,
    Ledger,
    Outcome,
    Produced,
    accepted_ids,
    bet_mapping,
    connector_doc,
    create_topics,
    dlq_origin,
    encode_bet,
    header,
    make_bet,
    register_bet_schema,
    settings_of,
    write_config,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(1800)]

PARTITIONS = 3
OVERSIZED = 300_000  # a few hundred KB: under every limit, a large record all the same
ABOVE_DLQ = 2_000_000  # above the dead-letter producer's default 1 MB message.max.bytes
FOREIGN_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Deposit",
    "namespace": "chaos.fuzz",
    "fields": [{"name": "amount", "type": "long"}, {"name": "note", "type": "string"}],
}
KINDS = ("random bytes", "random body", "bit flips", "truncation", "foreign id", "blank player")


class Reference:
    """The connector's own classification of one value, off the hot path: framing and the registry
    lookup as `run` builds them, then the reference transform of the schema id."""

    def __init__(self, route: Route) -> None:
        self._route = route
        self._transforms: dict[int, Transform | Poison] = {}

    def __call__(self, value: bytes) -> bytes | Poison:
        framing = self._route.framing
        try:
            key, payload = framing.frame(value)
        except DecodeError as exc:
            return Poison(Stage.DECODE, type(exc).__name__, str(exc))
        if key not in self._transforms:
            try:
                self._transforms[key] = build_reference(framing.spec(key, self._route.mapping))
            except DecodeError as exc:
                self._transforms[key] = Poison(Stage.DECODE, type(exc).__name__, str(exc))
        transform = self._transforms[key]
        return transform if isinstance(transform, Poison) else transform(payload)


@dataclass
class Fuzzer:
    rng: random.Random
    bet_header: bytes
    foreign_header: bytes

    def mutate(self, kind: str, valid: bytes) -> bytes:
        rng = self.rng
        if kind == "random bytes":
            return bytes([rng.randrange(1, 256)]) + rng.randbytes(rng.randrange(0, 200))
        if kind == "random body":
            return self.bet_header + rng.randbytes(rng.randrange(0, 200))
        if kind == "bit flips":
            out = bytearray(valid)
            for _ in range(rng.randint(1, 3)):
                out[rng.randrange(5, len(out))] ^= 1 << rng.randrange(8)
            return bytes(out)
        if kind == "truncation":
            return valid[: rng.randrange(0, len(valid))]
        if kind == "foreign id":
            return self.foreign_header + valid[5:]
        if kind == "oversized":
            return valid + rng.randbytes(OVERSIZED)
        raise AssertionError(kind)


def test_fuzzed_payloads_each_end_where_the_reference_path_says(
    size: str,
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox_factory: Callable[..., SandboxServer],
    names: UniqueNames,
    tmp_path: Path,
    verdicts: dict[str, Verdict],
) -> None:
    full = size == "full"
    mutated, valid_count, oversized = (10_000, 10_000, 8) if full else (1500, 1500, 3)
    started = time.monotonic()
    sandbox = sandbox_factory(latency_ms=5)
    topic, dlq, group = names.topic("bets"), names.topic("dlq"), names.group()
    create_topics(broker.bootstrap_servers, {topic: PARTITIONS + 1, dlq: 1})
    schema_id = register_bet_schema(registry, topic)
    foreign_id = registry.register(f"{names.topic('deposits')}-value", FOREIGN_SCHEMA)
    doc = connector_doc(
        bootstrap=broker.bootstrap_servers,
        registry_url=registry.url,
        api_url=sandbox.base_url,
        group=group,
        dlq_topic=dlq,
        mappings=[bet_mapping(topic)],
        workers="auto",
    )
    # Half the stream is poison by design: the breaker, which has tests of its own, stays out of it.
    doc["dead_letter"]["max_ratio"] = 1.0
    config = write_config(tmp_path, doc)
    settings = settings_of(doc, config)
    reference = Reference(build_routes(settings, build_registry(settings))[topic])
    rng = random.Random(20261130)
    fuzzer = Fuzzer(rng, encode_bet(schema_id, make_bet(rng, 0))[:5], b"\x00" + foreign_id.to_bytes(4, "big"))
    plan = ["valid"] * valid_count + [rng.choice(KINDS) for _ in range(mutated)] + ["oversized"] * oversized
    rng.shuffle(plan)
    ledger = Ledger(broker.bootstrap_servers)
    made: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    mutants_valid = 0
    try:
        for i, kind in enumerate(plan, start=1):
            bet = make_bet(rng, i)
            if kind == "blank player":  # well-formed Avro the API cannot take: VALIDATE
                bet["player"]["id"] = rng.choice(["", " ", "\t"])
            valid = encode_bet(schema_id, bet)
            value = valid if kind in ("valid", "blank player") else fuzzer.mutate(kind, valid)
            result = reference(value)
            made[kind] += 1
            key, partition = str(bet["player"]["id"]).encode(), i % PARTITIONS
            if isinstance(result, Poison):
                stage = result.stage.value
                stages[stage] += 1
                ledger.produce(topic, partition, value, key=key, event_id=str(bet["bet_id"]), poison=stage)
            else:
                mutants_valid += kind != "valid"
                event_id = str(json.loads(result)["event_id"])
                ledger.produce(topic, partition, value, key=key, event_id=event_id)
        ledger.flush()
    finally:
        ledger.close()
    good_ids = [r.event_id for r in ledger.good()]
    assert len(set(good_ids)) == len(good_ids), "two valid payloads share an event id"
    if full:
        # Its own partition and producer: the ledger's producer keeps the default size limit.
        huge = b"\x05" + rng.randbytes(ABOVE_DLQ)
        assert isinstance(reference(huge), Poison)
        producer = make_producer(broker.bootstrap_servers, **{"message.max.bytes": 2 * ABOVE_DLQ})
        reports: list[DeliveryError | None] = []
        producer.produce(topic, None, huge, (), reports.append, partition=PARTITIONS)
        assert producer.flush(60.0) == 0 and reports == [None], reports
        producer.close()
        ledger.records.append(Produced(topic, PARTITIONS, 0, None, huge, (), None, Stage.DECODE.value))
        stages[Stage.DECODE.value] += 1
        made["above the dead-letter limit"] += 1
    proc = ConnectorProcess(config, tmp_path / "fuzz.log")
    try:
        with PeakRss() as rss:
            rss.watch(proc.process.pid)

            def done(_p: ConnectorProcess) -> bool:
                """As many records reached one end or the other as were produced: which end each
                reached is judge()'s question, not this wait's."""
                accepted = len(accepted_ids(sandbox))
                if accepted < len(good_ids):
                    return False
                dead = Outcome.collect(sandbox, broker.bootstrap_servers, dlq).dead
                return accepted + len(dead) >= len(ledger.records)

            proc.wait_for(done, 600.0, "every record delivered or dead-lettered", 1.0)
            code, _ = proc.terminate(60.0)
        assert code == 0
    finally:
        proc.stop_quietly()
    outcome = Outcome.collect(sandbox, broker.bootstrap_servers, dlq)
    expected = {r.position: r.poison for r in ledger.poison()}
    wrong_stage = []
    omitted = []
    for record in outcome.dlq_records:
        origin = dlq_origin(record)
        written = (header(record, H_STAGE) or b"").decode()
        if origin in expected and written != expected[origin]:
            wrong_stage.append((origin, written, expected[origin]))
        if header(record, H_VALUE_OMITTED) is not None:
            omitted.append(origin)
    assert wrong_stage == [], f"dead-lettered at another stage than the reference's: {wrong_stage[:5]}"
    if full:
        assert omitted == [(topic, PARTITIONS, 0)], omitted
    verdict = judge(
        scenario="poison fuzz",
        size=size,
        ledger=ledger,
        outcome=outcome,
        order=session_order_breaks([("run", sandbox.records(ENDPOINT))], ledger.by_event_id()),
        replayed_records=int(sandbox.stats()["replayed_records"]),
        peak_rss_bytes=rss.peak,
        duration_s=time.monotonic() - started,
        details={
            "made": ", ".join(f"{k} {n}" for k, n in sorted(made.items())),
            "stages": ", ".join(f"{k} {n}" for k, n in sorted(stages.items())),
            "mutants_valid": mutants_valid,
            "values_omitted": len(omitted),
        },
        dedup_duplicates_max=0,
    )
    keep(verdicts, verdict)
