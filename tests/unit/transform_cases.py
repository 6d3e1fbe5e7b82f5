"""Hypothesis strategies for transform tests: Avro schemas, mappings over them, payloads.

Payloads are written with the schema's logical types removed, so the raw values (timestamps far
out of range, decimals with more digits than their precision, strings that are not UUIDs) are
drawn freely; the transforms then read them with the real schema, as a consumer would.
"""

from __future__ import annotations

import copy
import math
import re
import uuid
from io import BytesIO
from typing import Any

import fastavro
from hypothesis import strategies as st

from connector.config.settings import DestinationSettings, MappingSettings
from connector.errors import MappingError
from connector.ingest.models import MODELS, FieldKind
from connector.mapping.compiled import TopicMapping
from connector.transform.spec import Poison, TransformSpec

DESTINATION = DestinationSettings.model_validate(
    {
        "base_url": "https://gateway.example.com/apigw/ingest",
        "account_id": "acc-1",
        "workspace_id": "ws-1",
        "auth_token": "t",
    }
)
ENDPOINTS = sorted(MODELS)
OWN_NAMES = ["player", "game", "id", "meta", "when", "x", "amount_raw"]
KINDS = {name: f.kind for model in MODELS.values() for name, f in model.fields.items()}
FITTING: dict[FieldKind, list[Any]] = {
    FieldKind.STRING: ["string", "enum", "long", "int", {"type": "string", "logicalType": "uuid"}],
    FieldKind.NUMBER: [
        "double",
        "long",
        "int",
        "float",
        {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
    ],
    FieldKind.INTEGER: ["int", "long"],
    FieldKind.BOOLEAN: ["boolean"],
    FieldKind.OBJECT: ["record", {"type": "map", "values": "string"}, "string"],
    FieldKind.DATETIME: [
        {"type": "long", "logicalType": "timestamp-millis"},
        {"type": "long", "logicalType": "timestamp-micros"},
        {"type": "long", "logicalType": "local-timestamp-millis"},
    ],
    FieldKind.DATE: [{"type": "int", "logicalType": "date"}],
}
SYMBOLS = ["Subscribed", "Unsubscribed", "gaming", "BET_PLACED", "A", "x_1", "REAL"]
TEXT = st.one_of(st.sampled_from(["", " ", "\t\n", "x", "Subscribed", "a-b_c", "0"]), st.text(max_size=6))
DOUBLES = st.one_of(
    st.sampled_from([500.0, -0.0, 1e-6, 5e-6, 1e-5, 2.5, 1e16, 1e21, 2.0**53 + 2, math.nan, math.inf]),
    st.floats(),
)
# Hypothesis favours small integers; the ones JavaScript rounds are named explicitly.
LONGS = st.one_of(
    st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63)]),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**54), 2**54),
)


# Seconds since the epoch where a cached per-second prefix could go wrong: both sides of the
# epoch (floor, not truncation), day and year boundaries, the first and last second of the
# years 1 and 9999.
EDGE_SECONDS = [
    0,
    1,
    -1,
    2,
    -2,
    59,
    60,
    -60,
    86399,
    86400,
    -86400,
    -86401,
    1767225600,
    -62135596800,
    253402300799,
]
EDGE_DAYS = [0, 1, -1, 59, -366, -719162, 2932896, 20454]
BEYOND_DAYS = [-719163, 2932897]


def instant_edges(scale: int) -> st.SearchStrategy[int]:
    """Instants at an edge second, plus or minus a fraction that is zero, tiny or almost a
    second; `scale` is 1 for milliseconds, 1000 for microseconds."""
    fractions = [0, 1, 999 * scale, scale, 500 * scale, 1000 * scale - 1]
    return st.builds(
        lambda second, fraction, sign: second * 1000 * scale + sign * fraction,
        st.sampled_from(EDGE_SECONDS),
        st.sampled_from(fractions),
        st.sampled_from([1, -1]),
    )


class _Schemas:
    """Draws one schema: named types get unique names and may be referred to again by name."""

    def __init__(self, draw: Any, names: list[str]) -> None:
        self.draw = draw
        self.names = names
        self.named: dict[str, Any] = {}
        self.open: set[str] = set()  # records being drawn: no recursive types

    def name(self, kind: str) -> str:
        return f"{kind}{len(self.named)}"

    def type(self, depth: int) -> Any:
        choice = self.draw(st.integers(0, 13 if depth < 2 else 10))
        if choice <= 3:
            return self.draw(
                st.sampled_from(["string", "int", "long", "boolean", "float", "double", "bytes"])
            )
        if choice <= 5:
            return self.logical()
        if choice == 6:
            return self.enum()
        if choice <= 8:
            inner = self.type(depth + 1)
            if isinstance(inner, list):
                return inner
            return self.draw(st.sampled_from([["null", inner], [inner, "null"]]))
        if choice == 9:
            return ["null", "string", "long"]
        done = sorted(set(self.named) - self.open)
        if choice == 10 and done:
            return self.draw(st.sampled_from(done))
        if choice <= 11:
            return self.record(depth + 1)
        if choice == 12:
            return {"type": "map", "values": self.nonnull(depth + 1)}
        return {"type": "array", "items": self.nonnull(depth + 1)}

    def field_type(self, name: str, depth: int) -> Any:
        """Mostly a type that fits the model field of the same name, so copy_matching gives valid
        records; sometimes any type."""
        fitting = FITTING.get(KINDS.get(name))  # type: ignore[arg-type]
        if fitting is None or self.draw(st.integers(0, 3)) == 3:
            return self.type(depth)
        chosen = self.draw(st.sampled_from(fitting))
        if chosen == "enum":
            return self.enum()
        if chosen == "record":
            return self.record(depth + 1)
        return self.draw(st.sampled_from([chosen, ["null", chosen]]))

    def nonnull(self, depth: int) -> Any:
        """Items of arrays and values of maps: nulls too, whose corrupt block counts fastavro
        would follow without end (connector.avro.blockcounts)."""
        if depth > 2 or self.draw(st.integers(0, 7)) == 0:
            return self.draw(st.sampled_from(["string", "long", "double", "boolean", "null"]))
        return self.type(3)

    def logical(self) -> Any:
        choice = self.draw(st.integers(0, 8))
        if choice <= 1:
            precision = self.draw(st.integers(1, 40))
            scale = self.draw(st.integers(0, precision))
            if choice == 0:
                return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}
            name = self.name("Fixed")
            fixed = {"type": "fixed", "name": name, "size": 8, "logicalType": "decimal"}
            self.named[name] = {**fixed, "precision": min(precision, 18), "scale": min(scale, 18)}
            return self.named[name]
        logical = ["timestamp-millis", "timestamp-micros", "local-timestamp-millis", "local-timestamp-micros"]
        if choice <= 5:
            return {"type": "long", "logicalType": logical[choice - 2]}
        if choice == 6:
            return {"type": "int", "logicalType": "date"}
        if choice == 7:
            return {"type": "string", "logicalType": "uuid"}
        return {"type": "int", "logicalType": "time-millis"}

    def enum(self) -> Any:
        name = self.name("Enum")
        symbols = self.draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=4, unique=True))
        self.named[name] = {"type": "enum", "name": name, "symbols": symbols}
        return self.named[name]

    def record(self, depth: int) -> Any:
        name = self.name("Rec")
        self.named[name] = {"type": "record", "name": name, "fields": []}
        self.open.add(name)
        names = self.draw(st.lists(st.sampled_from(self.names), min_size=1, max_size=8, unique=True))
        self.named[name]["fields"] = [{"name": n, "type": self.field_type(n, depth)} for n in names]
        self.open.discard(name)
        return self.named[name]


def _raw(node: Any, named: dict[str, Any], valid: bool = False) -> Any:
    """Strategy for raw values of `node` (logical types read as their base type); `valid`: only
    values fastavro turns into a logical value, and finite doubles."""
    if isinstance(node, str):
        if node in named:
            return _raw(named[node], named, valid)
        if valid and node == "double":
            return DOUBLES.filter(math.isfinite)
        if valid and node == "float":
            return st.floats(allow_nan=False, allow_infinity=False, width=32)
        return {
            "null": st.none(),
            "string": TEXT,
            "int": st.integers(-(2**31), 2**31 - 1),
            "long": LONGS,
            "boolean": st.booleans(),
            "float": st.floats(width=32),
            "double": DOUBLES,
            "bytes": st.binary(max_size=6),
        }[node]
    if isinstance(node, list):
        return st.one_of([_raw(branch, named, valid) for branch in node])
    kind, logical = node["type"], node.get("logicalType")
    if logical == "uuid":
        return st.uuids().map(str) if valid else st.one_of(st.uuids().map(str), TEXT)
    if logical == "date":
        days = st.one_of(st.sampled_from(EDGE_DAYS), st.integers(-719162, 2932896))
        return (
            days if valid else st.one_of(days, st.sampled_from(BEYOND_DAYS), st.integers(-(2**31), 2**31 - 1))
        )
    if logical == "time-millis" and valid:
        return st.integers(0, 86_399_999)
    if logical is not None and kind == "long":
        scale = 1000 if logical.endswith("micros") else 1
        lowest, highest = -62135596800000 * scale, 253402300799999 * scale
        edges = instant_edges(scale).filter(lambda t: lowest <= t <= highest)
        instants = st.one_of(edges, st.integers(lowest, highest))
        beyond = st.sampled_from([lowest - 1, highest + 1]) | instant_edges(scale)
        return instants if valid else st.one_of(instants, beyond, LONGS)
    if logical == "decimal" and kind == "bytes":
        return st.one_of(
            st.integers(-(10**20), 10**20).map(
                lambda n: n.to_bytes(10, "big", signed=True).lstrip(b"\0") or b"\0"
            ),
            st.binary(max_size=20),
        )
    if kind == "fixed":
        return st.binary(min_size=node["size"], max_size=node["size"])
    if kind == "enum":
        return st.sampled_from(node["symbols"])
    if kind == "record":
        return st.fixed_dictionaries({f["name"]: _raw(f["type"], named, valid) for f in node["fields"]})
    if kind == "map":
        return st.dictionaries(
            st.sampled_from(["k", "j"]) | TEXT, _raw(node["values"], named, valid), max_size=3
        )
    if kind == "array":
        return st.lists(_raw(node["items"], named, valid), max_size=3)
    return _raw(kind, named, valid)  # {"type": "int", "logicalType": "time-millis"} and the like


def _strip_logical(node: Any) -> Any:
    if isinstance(node, list):
        return [_strip_logical(branch) for branch in node]
    if isinstance(node, dict):
        return {k: _strip_logical(v) for k, v in node.items() if k != "logicalType"}
    return node


def _paths(node: Any, named: dict[str, Any], prefix: tuple[str, ...], depth: int) -> list[tuple[str, ...]]:
    if depth > 3:
        return []
    if isinstance(node, str) and node in named:
        node = named[node]
    branches = node if isinstance(node, list) else [node]
    out: list[tuple[str, ...]] = []
    for branch in branches:
        branch = named.get(branch, branch) if isinstance(branch, str) else branch
        if isinstance(branch, dict) and branch.get("type") == "record":
            for f in branch["fields"]:
                out.append((*prefix, f["name"]))
                out += _paths(f["type"], named, (*prefix, f["name"]), depth + 1)
        elif isinstance(branch, dict) and branch.get("type") == "map":
            out.append((*prefix, "k"))
    return out


CONSTANTS = st.one_of(
    TEXT,
    st.integers(-(2**60), 2**60),
    DOUBLES.filter(math.isfinite),
    st.booleans(),
    st.none(),
    st.dictionaries(st.sampled_from(["a", "1"]), st.integers(0, 3), max_size=2),
    st.lists(st.integers(0, 2), max_size=2),
)


VALID = {
    FieldKind.STRING: "u-1",
    FieldKind.DATETIME: "2024-01-15T10:30:00.123Z",
    FieldKind.DATE: "2024-01-15",
    FieldKind.NUMBER: 12.5,
    FieldKind.INTEGER: 3,
    FieldKind.BOOLEAN: True,
    FieldKind.OBJECT: {"a": [1, "b"]},
}


def _reader(draw: Any, writer: dict[str, Any]) -> dict[str, Any]:
    reader = copy.deepcopy(writer)
    fields = [f for f in reader["fields"] if draw(st.booleans()) or f is reader["fields"][0]]
    for f in fields:
        if f["type"] == "int" and draw(st.booleans()):
            f["type"] = draw(st.sampled_from(["long", "double"]))
        elif f["type"] == "string" and draw(st.booleans()):
            f["type"], f["default"] = ["string", "null"], "dflt"
    taken = {f["name"] for f in fields}
    extra = draw(st.sampled_from([n for n in ["currency", "game_id", "added"] if n not in taken] or ["zz"]))
    fields.append(
        draw(
            st.sampled_from(
                [
                    {"name": extra, "type": "string", "default": "dflt"},
                    {"name": extra, "type": ["null", "long"], "default": None},
                ]
            )
        )
    )
    reader["fields"] = fields
    return reader


@st.composite
def cases(draw: Any, with_reader: bool = False) -> tuple[TransformSpec, list[bytes]]:
    """A spec (schema and mapping) and payloads for it: valid ones and corrupt ones."""
    endpoint = draw(st.sampled_from(ENDPOINTS))
    # Mostly the endpoint's own field names, so copy_matching has work to do.
    schemas = _Schemas(draw, [*MODELS[endpoint].fields, *OWN_NAMES, "amount", "status", "custom_data"])
    writer = schemas.record(0)
    paths = [".".join(p) for p in _paths(writer, schemas.named, (), 0)] + ["nope", "player.nope"]
    # Required fields are drawn apart, below: mostly valid, so that bodies are compared too.
    targets = [n for n, f in MODELS[endpoint].fields.items() if not f.required] + ["extra_a", "9lives"]
    fields = draw(st.dictionaries(st.sampled_from(targets), st.sampled_from(paths), max_size=8))
    free = [t for t in targets if t not in fields]
    constants = draw(st.dictionaries(st.sampled_from(free), CONSTANTS, max_size=3)) if free else {}
    for model_field in MODELS[endpoint].fields.values():
        if not model_field.required:
            continue
        how = draw(st.integers(0, 19))  # hypothesis favours small numbers: the usual case first
        if how < 14 and model_field.name not in ("account_id", "workspace_id", "event_category"):
            constants[model_field.name] = VALID[model_field.kind]
        elif how == 17:
            constants[model_field.name] = draw(CONSTANTS)
        elif how > 17:
            fields[model_field.name] = draw(st.sampled_from(paths))
    settings = MappingSettings.model_validate(
        {
            "topic": "t",
            "endpoint": endpoint,
            "fields": fields,
            "constants": constants,
            "copy_matching": draw(st.booleans()),
        }
    )
    try:
        mapping = TopicMapping.from_settings(settings, DESTINATION)
    except MappingError:
        mapping = TopicMapping.from_settings(settings.model_copy(update={"constants": {}}), DESTINATION)
    reader = _reader(draw, writer) if with_reader else None
    spec = TransformSpec(mapping, writer, "Rec0 (writer)", reader, "Rec0 (reader)" if reader else "")

    raw_schema = fastavro.parse_schema(_strip_logical(writer))
    payloads = []
    for datum in draw(st.lists(_raw(writer, schemas.named), min_size=1, max_size=4)):
        out = BytesIO()
        fastavro.schemaless_writer(out, raw_schema, datum)
        payloads.append(out.getvalue())
    for payload in list(payloads):
        cut = draw(st.integers(0, max(len(payload) - 1, 0)))
        bit = draw(st.integers(0, len(payload) * 8 - 1)) if payload else 0
        flipped = bytearray(payload)
        if flipped:
            flipped[bit // 8] ^= 1 << (bit % 8)
        payloads += [payload[:cut], bytes(flipped), payload + draw(st.binary(min_size=1, max_size=4))]
    payloads.append(draw(st.binary(max_size=24)))
    payloads.append(str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))).encode())
    return spec, payloads


def comparable(result: bytes | Poison) -> bytes | Poison:
    """fastavro names the stream it read from in some messages (`cannot read boolean from
    <_io.BytesIO object at 0x7f...>`), so two runs of the reference differ by that address."""
    if isinstance(result, bytes):
        return result
    return Poison(result.stage, result.error_class, re.sub(r" at 0x[0-9a-f]+>", " at 0x?>", result.message))


_EVERY_TYPE: dict[str, Any] = {
    "s": "string",
    "i": "int",
    "l": "long",
    "b": "boolean",
    "f": "float",
    "d": "double",
    "by": "bytes",
    "dec": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
    "dec0": {"type": "bytes", "logicalType": "decimal", "precision": 30, "scale": 0},
    "ts": {"type": "long", "logicalType": "timestamp-millis"},
    "tsu": {"type": "long", "logicalType": "timestamp-micros"},
    "lts": {"type": "long", "logicalType": "local-timestamp-millis"},
    "ltsu": {"type": "long", "logicalType": "local-timestamp-micros"},
    "dt": {"type": "int", "logicalType": "date"},
    "uu": {"type": "string", "logicalType": "uuid"},
    "tm": {"type": "int", "logicalType": "time-millis"},
    "mp": {"type": "map", "values": "long"},
    "arr": {"type": "array", "items": "double"},
}
# Model fields of every kind that the sources above may be mapped to.
_KIND_TARGETS = ["game_id", "wager_amount", "num_spins_played", "auto_play", "free_spin_expiry_date"]


@st.composite
def every_type_cases(draw: Any) -> tuple[TransformSpec, list[bytes]]:
    """Every Avro type, plain and nullable; drawn ones mapped to fields the model does not know
    (so their values reach the body), and one to a model field of some kind."""
    fields: list[dict[str, Any]] = []
    for name, node in _EVERY_TYPE.items():
        fields += [{"name": name, "type": node}, {"name": f"{name}_n", "type": ["null", node]}]
    fields.append({"name": "en", "type": {"type": "enum", "name": "En", "symbols": ["A", "Subscribed"]}})
    rec = {"type": "record", "name": "Inner", "fields": [{"name": "t", "type": _EVERY_TYPE["ts"]}]}
    fields += [{"name": "rec", "type": rec}, {"name": "rec_n", "type": ["null", "Inner"]}]
    writer = {"type": "record", "name": "Every", "fields": fields}
    sources = [f["name"] for f in fields]
    # A drawn subset: one nested value in the record and orjson is never called. Bytes never
    # reach a body (MappingError): they are only mapped to model fields, below.
    chosen = draw(st.sets(st.sampled_from([s for s in sources if not s.startswith("by")]), min_size=1))
    mapped = {f"x_{source}": source for source in sorted(chosen)} | {
        "x_rec_t": "rec.t",
        "x_rec_n_t": "rec_n.t",
    }
    pair = draw(st.none() | st.tuples(st.sampled_from(_KIND_TARGETS), st.sampled_from(sources)))
    if pair is not None:
        mapped[pair[0]] = pair[1]
    constants = {n: VALID[f.kind] for n, f in MODELS["gaming-activity"].fields.items() if f.required}
    for derived in ("account_id", "workspace_id", "event_category"):
        del constants[derived]
    settings = MappingSettings.model_validate(
        {"topic": "t", "endpoint": "gaming-activity", "fields": mapped, "constants": constants}
    )
    spec = TransformSpec(TopicMapping.from_settings(settings, DESTINATION), writer, "Every (writer)")
    raw_schema = fastavro.parse_schema(_strip_logical(writer))
    payloads = []
    for datum in draw(st.lists(_raw(writer, {"Inner": rec}, valid=True), min_size=1, max_size=3)):
        out = BytesIO()
        fastavro.schemaless_writer(out, raw_schema, datum)
        payloads.append(out.getvalue())
    return spec, payloads
