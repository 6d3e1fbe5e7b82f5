"""Realistic sample events for `produce-sample` and the demo, with poison messages on demand.

One kind per bundled schema (`schemas/<kind>.avsc`). `the demo mappings` is the mapping that goes
with each kind; the poison labels promise where a message fails *under that mapping*:
DECODE (not valid Avro for its schema), MAP (a NaN where the mapping expects a number) or
VALIDATE (valid Avro that breaks the ingest model). Everything is drawn from the `random.Random`
passed in, so a seed gives the same messages every time.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

import yaml

from connector.devtools.sample_records import SAMPLE_BASE_TIME, SAMPLE_KINDS, player_id_of, sample_record

__all__ = [
    "MAP_POISON_FIELDS",
    "SAMPLE_BASE_TIME",
    "SAMPLE_KINDS",
    "PoisonStage",
    "SampleMessage",
    "make_messages",
    "player_id_of",
    "sample_mappings",
    "sample_record",
]

SOURCE_HEADER: Final = ("source", b"sample-generator")
POISON_HEADER: Final = "sample.poison"

PoisonStage = Literal["DECODE", "MAP", "VALIDATE"]


@dataclass(frozen=True)
class SampleMessage:
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    # None, or the stage the message must fail at under the demo mappings.
    poison: str | None


DEMO_MAPPINGS_FILE: Final = Path(__file__).with_name("demo_mappings.yaml")


def sample_mappings() -> dict[str, dict[str, Any]]:
    """Sample kind → its `mappings:` entry in connector/devtools/demo_mappings.yaml, the one place the
    example mappings are written down (the poison promises below are made under them)."""
    doc = yaml.safe_load(DEMO_MAPPINGS_FILE.read_text(encoding="utf-8"))
    return {Path(entry["schema"]).stem: entry for entry in doc["mappings"]}


# The double field of each kind that the demo mappings sends to a number field: a NaN there cannot
# become JSON. Kinds without one get no MAP poison.
MAP_POISON_FIELDS: Final[Mapping[str, str]] = MappingProxyType(
    {"bet": "odds", "wallet_balance": "cash_balance", "customer_profile": "deposit_limit"}
)

# --------------------------------------------------------------------------------------------
# Reference data


# --------------------------------------------------------------------------------------------
# Poison


def _poison_map(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    return {**record, MAP_POISON_FIELDS[kind]: math.nan}


def _poison_validate(kind: str, record: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    if kind in ("deposit", "withdrawal") and rng.random() < 0.5:
        return {**record, "amount": rng.choice((Decimal("0.00"), Decimal("-25.00")))}
    if kind == "bet":
        return {**record, "player": {**record["player"], "id": ""}}
    return {**record, "player_id": ""}


def _varint(n: int) -> bytes:
    zigzag = (n << 1) ^ (n >> 63)
    out = bytearray()
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def _garbage(rng: random.Random) -> bytes:
    # Every sample schema starts with a string: announce one far longer than the bytes that
    # follow, so the garbage fails to decode whatever the random tail holds.
    tail = bytes(rng.getrandbits(8) for _ in range(rng.randint(4, 40)))
    return _varint(rng.randint(10_000, 1_000_000)) + tail


def _poison_decode(
    kind: str,
    record: dict[str, Any],
    encoded: bytes,
    rng: random.Random,
    wire_format: str,
    unknown_schema_id_encode: Callable[[Mapping[str, Any]], bytes] | None,
) -> bytes:
    variants = ["truncated", "garbage"]
    if wire_format == "confluent-avro":
        variants.append("json")
        if unknown_schema_id_encode is not None:
            variants.append("unknown-schema")
    else:
        variants.append("trailing")
    variant = rng.choice(variants)
    if variant == "truncated":
        return encoded[: rng.randint(1, len(encoded) - 1)]
    if variant == "garbage":
        header = encoded[:5] if wire_format == "confluent-avro" else b""
        return header + _garbage(rng)
    if variant == "json":
        # The classic: a producer without the Schema Registry serializer writes plain JSON.
        return json.dumps(record, default=str).encode()
    if variant == "unknown-schema":
        assert unknown_schema_id_encode is not None
        return unknown_schema_id_encode(record)
    return encoded + bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 16)))


def _stages_for(kind: str) -> tuple[PoisonStage, ...]:
    return ("DECODE", "MAP", "VALIDATE") if kind in MAP_POISON_FIELDS else ("DECODE", "VALIDATE")


def make_messages(
    kind: str,
    count: int,
    encode: Callable[[Mapping[str, Any]], bytes],
    rng: random.Random,
    poison_rate: float = 0.0,
    unknown_schema_id_encode: Callable[[Mapping[str, Any]], bytes] | None = None,
    *,
    wire_format: Literal["confluent-avro", "avro"] = "confluent-avro",
    base_time: datetime = SAMPLE_BASE_TIME,
) -> list[SampleMessage]:
    """`count` messages of `kind`, each poisoned with probability `poison_rate`.

    `encode` turns a datum into the Kafka value (e.g. `partial(encode_confluent, id, parsed)`);
    `wire_format` says which framing it produces, so DECODE poison breaks the right thing.
    Keys are player ids (one player's events share a partition); poisoned messages carry a
    `sample.poison` header naming the stage they must fail at.
    """
    if kind not in SAMPLE_KINDS:
        raise ValueError(f"unknown sample kind {kind!r}; known: {', '.join(SAMPLE_KINDS)}")
    if not 0.0 <= poison_rate <= 1.0:
        raise ValueError("poison_rate must be between 0 and 1")
    if count < 0:
        raise ValueError("count must not be negative")
    messages = []
    for index in range(count):
        record = sample_record(kind, rng, index, base_time=base_time)
        stage: PoisonStage | None = None
        if poison_rate and rng.random() < poison_rate:
            stage = rng.choice(_stages_for(kind))
        if stage == "MAP":
            record = _poison_map(kind, record)
        elif stage == "VALIDATE":
            record = _poison_validate(kind, record, rng)
        value = encode(record)
        if stage == "DECODE":
            value = _poison_decode(kind, record, value, rng, wire_format, unknown_schema_id_encode)
        player_id = player_id_of(kind, record)
        headers: tuple[tuple[str, bytes], ...] = (SOURCE_HEADER, ("sample.kind", kind.encode()))
        if stage is not None:
            headers += ((POISON_HEADER, stage.encode()),)
        messages.append(SampleMessage(player_id.encode() or None, value, headers, stage))
    return messages
