"""connector.avro: schema files and names, framing, decoding failures, the registry client (MockTransport)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.avro.decoding import (
    ConfluentAvroDecoder,
    RawAvroDecoder,
    encode_confluent,
    encode_raw,
    split_confluent_frame,
)
from connector.avro.registry import SchemaRegistryClient
from connector.avro.schemas import (
    BUNDLED_SCHEMAS_DIR,
    definition_name,
    full_name,
    load_schema,
    parse,
    schema_name,
)
from connector.errors import (
    DecodeError,
    InvalidSchemaError,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailable,
    SchemaFileError,
    UnknownSchemaError,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]

LOGICAL: dict[str, Any] = {
    "type": "record",
    "name": "Logical",
    "namespace": "test",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "at_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "at_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2}},
        {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
        {"name": "maybe", "type": ["null", "double"], "default": None},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "extra", "type": {"type": "map", "values": "long"}},
    ],
}
LOGICAL_RECORD: dict[str, Any] = {
    "id": "x-1",
    "at_ms": datetime(2024, 6, 1, 12, 0, 0, 123000, tzinfo=UTC),
    "at_us": datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC),
    "day": date(1990, 2, 28),
    "amount": Decimal("1234.50"),
    "ref": uuid.UUID("12345678-1234-4678-9234-567812345678"),
    "kind": "B",
    "maybe": 2.5,
    "tags": ["a", "b"],
    "extra": {"k": 7},
}


class FakeRegistry:
    """A registry behind httpx.MockTransport: schemas by id, a request log, scripted failures."""

    def __init__(self) -> None:
        self.schemas: dict[int, Any] = {}
        self.extra: dict[int, dict[str, Any]] = {}
        self.paths: list[str] = []
        self.headers: list[httpx.Headers] = []
        self.status: int | None = None
        self.error: Exception | None = None
        self.body: bytes | None = None

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        self.headers.append(request.headers)
        if self.error is not None:
            raise self.error
        if self.status is not None:
            return httpx.Response(
                self.status, content=self.body or b'{"error_code": 50001, "message": "boom"}'
            )
        parts = request.url.path.strip("/").split("/")
        if parts[:2] == ["schemas", "ids"]:
            schema = self.schemas.get(int(parts[2]))
            if schema is None:
                return httpx.Response(404, json={"error_code": 40403, "message": "Schema not found"})
            text = schema if isinstance(schema, str) else json.dumps(schema)
            return httpx.Response(200, json={"schema": text, **self.extra.get(int(parts[2]), {})})
        return httpx.Response(404, json={"error_code": 404, "message": "HTTP 404 Not Found"})

    def client(self, **kwargs: Any) -> SchemaRegistryClient:
        return SchemaRegistryClient(
            "http://registry.test", transport=httpx.MockTransport(self.handler), **kwargs
        )

    def schema_calls(self) -> int:
        return sum(1 for p in self.paths if p.startswith("/schemas/ids/"))


@pytest.fixture
def fake() -> FakeRegistry:
    return FakeRegistry()


def framed(schema_id: int, schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    return encode_confluent(schema_id, parse(schema), record)


# --------------------------------------------------------------------------------------------
# Framing


def test_split_confluent_frame_returns_id_and_payload() -> None:
    assert split_confluent_frame(b"\x00\x00\x00\x01\x02abc") == (258, b"abc")
    assert split_confluent_frame(b"\x00\xff\xff\xff\xff") == (0xFFFFFFFF, b"")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty value"),
        (b"", "empty value"),
        (b"\x01\x00\x00\x00\x01abc", "magic byte 0x01"),
        (b'{"bet_id": "b-1"}', "magic byte 0x7b"),
        (b"\x00\x00\x01", "shorter than the 5-byte"),
    ],
)
def test_split_confluent_frame_rejects(value: bytes | None, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        split_confluent_frame(value)


@pytest.mark.parametrize("value", [None, b"", b"\x05\x00\x00\x00\x01\x02", b"\x00\x00"])
def test_decoder_rejects_bad_frames_without_asking_the_registry(
    fake: FakeRegistry, value: bytes | None
) -> None:
    decoder = ConfluentAvroDecoder(fake.client())
    with pytest.raises(DecodeError):
        decoder.decode(value)
    assert fake.paths == []


def test_encode_confluent_header_and_id_range() -> None:
    value = framed(7, LOGICAL, LOGICAL_RECORD)
    assert value[:5] == b"\x00\x00\x00\x00\x07"
    assert value[5:] == encode_raw(parse(LOGICAL), LOGICAL_RECORD)
    with pytest.raises(ValueError, match="4-byte"):
        encode_confluent(2**32, parse(LOGICAL), LOGICAL_RECORD)


# --------------------------------------------------------------------------------------------
# Decoding


def test_logical_types_are_decoded_to_python_objects(fake: FakeRegistry) -> None:
    fake.schemas[1] = LOGICAL
    record = ConfluentAvroDecoder(fake.client()).decode(framed(1, LOGICAL, LOGICAL_RECORD))
    assert record == LOGICAL_RECORD
    assert record["at_ms"].tzinfo is not None and record["at_ms"].utcoffset().total_seconds() == 0
    assert isinstance(record["amount"], Decimal) and str(record["amount"]) == "1234.50"
    assert isinstance(record["ref"], uuid.UUID)
    assert type(record["day"]) is date


def _encoded_fields(first: int, last: int | None = None) -> bytes:
    """The encoding of LOGICAL_RECORD's fields [first:last]: a record is its fields, concatenated."""
    fields = LOGICAL["fields"][first:last]
    schema = {"type": "record", "name": "Part", "fields": fields}
    return encode_raw(parse(schema), {f["name"]: LOGICAL_RECORD[f["name"]] for f in fields})


def _field_index(name: str) -> int:
    return next(i for i, f in enumerate(LOGICAL["fields"]) if f["name"] == name)


def _payload_cases() -> list[tuple[str, bytes]]:
    good = encode_raw(parse(LOGICAL), LOGICAL_RECORD)
    cases = [(f"truncated at {cut}", good[:cut]) for cut in range(0, len(good), 3)]
    at_ms, kind, maybe = _field_index("at_ms"), _field_index("kind"), _field_index("maybe")
    huge_long = b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01"  # zigzag of 2**63 - 1
    cases += [
        ("negative string length", b"\x01abc"),
        ("huge string length", huge_long + b"x"),
        ("unterminated varint", _encoded_fields(0, at_ms) + b"\x80" * 12),
        ("timestamp beyond year 9999", _encoded_fields(0, at_ms) + huge_long + _encoded_fields(at_ms + 1)),
        ("invalid utf-8", b"\x04\xff\xfe" + _encoded_fields(1)),
        ("enum index out of range", _encoded_fields(0, kind) + b"\x08" + _encoded_fields(kind + 1)),
        ("union index out of range", _encoded_fields(0, maybe) + b"\x06" + _encoded_fields(maybe + 1)),
    ]
    return cases


@pytest.mark.parametrize(("label", "payload"), _payload_cases(), ids=[c[0] for c in _payload_cases()])
def test_broken_payloads_raise_decode_error(fake: FakeRegistry, label: str, payload: bytes) -> None:
    fake.schemas[1] = LOGICAL
    decoder = ConfluentAvroDecoder(fake.client())
    with pytest.raises(DecodeError) as info:
        decoder.decode(b"\x00\x00\x00\x00\x01" + payload)
    assert not isinstance(info.value, UnknownSchemaError)
    assert len(str(info.value)) <= 400
    raw = RawAvroDecoder(LOGICAL)
    with pytest.raises(DecodeError):
        raw.decode(payload or b"\x00")


def test_trailing_bytes_are_a_decode_error(fake: FakeRegistry) -> None:
    fake.schemas[1] = LOGICAL
    value = framed(1, LOGICAL, LOGICAL_RECORD)
    with pytest.raises(DecodeError, match="3 trailing bytes"):
        ConfluentAvroDecoder(fake.client()).decode(value + b"\x00\x01\x02")
    with pytest.raises(DecodeError, match="1 trailing bytes"):
        RawAvroDecoder(LOGICAL).decode(value[5:] + b"\x00")


@settings(derandomize=True, database=None, max_examples=400, deadline=None)
@given(payload=st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_decode_error_only(payload: bytes) -> None:
    bet = load_schema("bet")
    decoder = RawAvroDecoder(bet)
    try:
        record = decoder.decode(payload)
    except DecodeError:
        return
    assert isinstance(record, dict) and "bet_id" in record


def test_unknown_schema_id(fake: FakeRegistry) -> None:
    decoder = ConfluentAvroDecoder(fake.client())
    with pytest.raises(UnknownSchemaError, match="schema id 42") as info:
        decoder.decode(framed(42, LOGICAL, LOGICAL_RECORD))
    assert info.value.schema_id == 42
    assert isinstance(info.value, DecodeError)


def test_unknown_ids_are_remembered_for_a_while(fake: FakeRegistry) -> None:
    now = [1000.0]
    client = fake.client(unknown_id_ttl_s=60.0, clock=lambda: now[0])
    decoder = ConfluentAvroDecoder(client)
    value = framed(42, LOGICAL, LOGICAL_RECORD)
    for _ in range(5):
        with pytest.raises(UnknownSchemaError):
            decoder.decode(value)
    assert fake.schema_calls() == 1
    fake.schemas[42] = LOGICAL  # registered late
    now[0] += 61.0
    assert decoder.decode(value) == LOGICAL_RECORD
    assert fake.schema_calls() == 2


def test_registry_asked_once_per_id_across_records_and_decoders(fake: FakeRegistry) -> None:
    fake.schemas[1] = LOGICAL
    fake.schemas[2] = {**LOGICAL, "fields": [*LOGICAL["fields"], {"name": "n", "type": "int", "default": 0}]}
    client = fake.client()
    first, second = ConfluentAvroDecoder(client), ConfluentAvroDecoder(client)
    v1 = framed(1, LOGICAL, LOGICAL_RECORD)
    v2 = framed(2, fake.schemas[2], {**LOGICAL_RECORD, "n": 5})
    for _ in range(50):
        assert first.decode(v1) == LOGICAL_RECORD
        assert first.decode(v2)["n"] == 5
        assert second.decode(v2)["n"] == 5
    assert sorted(fake.paths) == ["/schemas/ids/1", "/schemas/ids/2"]


def test_get_schema_returns_copies(fake: FakeRegistry) -> None:
    fake.schemas[1] = LOGICAL
    client = fake.client()
    client.get_schema(1)["fields"].clear()
    assert client.get_schema(1) == LOGICAL


def test_schema_evolution_two_writer_versions_one_reader(fake: FakeRegistry) -> None:
    v1, v2 = load_schema("bet"), load_schema("bet_v2")
    fake.schemas[11], fake.schemas[12] = v1, v2
    record = _bet_record()
    old = framed(11, v1, record)
    new = framed(12, v2, {**record, "bonus_code": "WELCOME100"})
    as_v2 = ConfluentAvroDecoder(fake.client(), reader_schema=v2)
    assert as_v2.decode(old) == {**record, "bonus_code": None}
    assert as_v2.decode(new) == {**record, "bonus_code": "WELCOME100"}
    as_v1 = ConfluentAvroDecoder(fake.client(), reader_schema=v1)
    assert as_v1.decode(new) == record
    as_written = ConfluentAvroDecoder(fake.client())
    assert "bonus_code" not in as_written.decode(old)
    assert as_written.decode(new)["bonus_code"] == "WELCOME100"


def test_incompatible_reader_schema_names_both(fake: FakeRegistry) -> None:
    v1 = load_schema("bet")
    fake.schemas[11] = v1
    needs_field = {**v1, "fields": [*v1["fields"], {"name": "jurisdiction", "type": "string"}]}
    with pytest.raises(DecodeError, match=r"com\.operator\.events\.Bet \(schema id 11\).*reader"):
        ConfluentAvroDecoder(fake.client(), reader_schema=needs_field).decode(framed(11, v1, _bet_record()))
    other_name = {**LOGICAL, "name": "Other"}
    with pytest.raises(DecodeError, match=r"test\.Logical.*test\.Other \(reader\)"):
        RawAvroDecoder(LOGICAL, other_name).decode(encode_raw(parse(LOGICAL), LOGICAL_RECORD))


def test_enum_symbol_unknown_to_reader_is_a_decode_error() -> None:
    writer = {
        "type": "record",
        "name": "E",
        "fields": [{"name": "s", "type": {"type": "enum", "name": "S", "symbols": ["A", "B", "C"]}}],
    }
    reader = {
        "type": "record",
        "name": "E",
        "fields": [{"name": "s", "type": {"type": "enum", "name": "S", "symbols": ["A", "B"]}}],
    }
    decoder = RawAvroDecoder(writer, reader)
    assert decoder.decode(encode_raw(parse(writer), {"s": "A"})) == {"s": "A"}
    with pytest.raises(DecodeError, match="cannot be read as reader schema"):
        decoder.decode(encode_raw(parse(writer), {"s": "C"}))


def test_raw_decoder_round_trip_and_empty_value() -> None:
    decoder = RawAvroDecoder(LOGICAL)
    assert decoder.decode(encode_raw(parse(LOGICAL), LOGICAL_RECORD)) == LOGICAL_RECORD
    for empty in (None, b""):
        with pytest.raises(DecodeError, match="empty value"):
            decoder.decode(empty)


def test_raw_decoder_rejects_invalid_schemas() -> None:
    with pytest.raises(InvalidSchemaError):
        RawAvroDecoder({"type": "record", "name": "R", "fields": [{"name": "a", "type": "strng"}]})


def test_writer_schema_that_is_not_avro_record_is_a_cached_decode_error(fake: FakeRegistry) -> None:
    fake.schemas[3] = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "nosuchtype"}]}
    fake.schemas[4] = "not json {"
    fake.schemas[5] = {"type": "string"}
    decoder = ConfluentAvroDecoder(fake.client())
    for _ in range(3):
        with pytest.raises(DecodeError, match="schema id 3"):
            decoder.decode(b"\x00\x00\x00\x00\x03\x02a")
    assert fake.paths.count("/schemas/ids/3") == 1
    with pytest.raises(DecodeError, match="not valid JSON"):
        decoder.decode(b"\x00\x00\x00\x00\x04\x02a")
    with pytest.raises(DecodeError, match="does not describe a record"):
        decoder.decode(b"\x00\x00\x00\x00\x05\x02a")


def test_non_avro_schema_type_is_a_decode_error(fake: FakeRegistry) -> None:
    fake.schemas[6] = "syntax = 'proto3';"
    fake.extra[6] = {"schemaType": "PROTOBUF"}
    with pytest.raises(DecodeError, match="PROTOBUF schema, not Avro"):
        ConfluentAvroDecoder(fake.client()).decode(b"\x00\x00\x00\x00\x06\x00")


# --------------------------------------------------------------------------------------------
# Registry failures: transient problems must never look like record problems.


def test_registry_failure_classes_are_separate() -> None:
    assert not issubclass(RegistryUnavailable, DecodeError)
    assert not issubclass(DecodeError, RegistryUnavailable)
    assert issubclass(RegistryAuthError, RegistryUnavailable)
    assert not issubclass(RegistryError, DecodeError)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 408])
def test_server_errors_are_registry_unavailable(fake: FakeRegistry, status: int) -> None:
    fake.status = status
    decoder = ConfluentAvroDecoder(fake.client())
    with pytest.raises(RegistryUnavailable) as info:
        decoder.decode(framed(1, LOGICAL, LOGICAL_RECORD))
    assert info.value.status == status
    fake.status = None
    fake.schemas[1] = LOGICAL
    assert decoder.decode(framed(1, LOGICAL, LOGICAL_RECORD)) == LOGICAL_RECORD  # nothing cached the failure


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.ConnectTimeout("timed out"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
)
def test_transport_errors_are_registry_unavailable(fake: FakeRegistry, error: Exception) -> None:
    fake.error = error
    with pytest.raises(RegistryUnavailable, match=type(error).__name__):
        ConfluentAvroDecoder(fake.client()).decode(framed(1, LOGICAL, LOGICAL_RECORD))


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_credentials_are_registry_auth_error(fake: FakeRegistry, status: int) -> None:
    fake.status = status
    fake.body = b'{"error_code": 40101, "message": "Unauthorized"}'
    with pytest.raises(RegistryAuthError, match="credentials"):
        fake.client().get_schema(1)


def test_404_that_is_not_from_a_schema_registry_is_not_unknown_schema(fake: FakeRegistry) -> None:
    fake.status = 404
    fake.body = b"<html>Not Found</html>"
    with pytest.raises(RegistryUnavailable, match="url right"):
        ConfluentAvroDecoder(fake.client()).decode(framed(1, LOGICAL, LOGICAL_RECORD))


def test_non_json_success_answer_is_registry_unavailable(fake: FakeRegistry) -> None:
    fake.status = 200
    fake.body = b"<html>proxy login</html>"
    with pytest.raises(RegistryUnavailable, match="not JSON"):
        fake.client().get_schema(1)


def test_latest_and_register_error_mapping() -> None:
    answers: list[httpx.Response] = []

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    client = SchemaRegistryClient("http://r.test", transport=httpx.MockTransport(handler))
    answers.append(httpx.Response(404, json={"error_code": 40401, "message": "Subject not found."}))
    assert client.latest("missing-value") is None
    answers.append(
        httpx.Response(200, json={"subject": "s", "version": 3, "id": 9, "schema": json.dumps(LOGICAL)})
    )
    assert client.latest("s") == (9, LOGICAL)
    assert client.get_schema(9) == LOGICAL  # cached by latest(): no answer left to pop
    answers.append(httpx.Response(409, json={"error_code": 409, "message": "incompatible"}))
    with pytest.raises(RegistryError, match="409") as info:
        client.register("s", LOGICAL)
    assert info.value.error_code == 409
    answers.append(httpx.Response(503, json={"error_code": 50003, "message": "down"}))
    with pytest.raises(RegistryUnavailable):
        client.register("s", LOGICAL)


def test_register_sends_the_schema_as_a_json_string() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": 17})

    client = SchemaRegistryClient("http://r.test/base/", transport=httpx.MockTransport(handler))
    assert client.register("casino.bets-value", LOGICAL) == 17
    request = seen[0]
    assert request.method == "POST"
    assert request.url.path == "/base/subjects/casino.bets-value/versions"
    assert request.headers["Content-Type"] == "application/vnd.schemaregistry.v1+json"
    assert json.loads(json.loads(request.content)["schema"]) == LOGICAL
    assert client.get_schema(17) == LOGICAL
    assert len(seen) == 1


# --------------------------------------------------------------------------------------------
# Client configuration and secrets


def _capture_auth() -> tuple[list[str | None], Callable[[httpx.Request], httpx.Response]]:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(200, json=[])

    return seen, handler


def test_basic_auth_from_user_info_never_shown() -> None:
    seen, handler = _capture_auth()
    client = SchemaRegistryClient(
        "https://registry.test:8081",
        {"basic.auth.user.info": "svc-connector:s3cr3t-Pa55", "basic.auth.credentials.source": "USER_INFO"},
        transport=httpx.MockTransport(handler),
    )
    client.subjects()
    assert seen == ["Basic " + base64.b64encode(b"svc-connector:s3cr3t-Pa55").decode()]
    assert "s3cr3t" not in repr(client) and "s3cr3t" not in str(vars(client))


def test_basic_auth_from_url_and_url_is_stripped() -> None:
    seen, handler = _capture_auth()
    client = SchemaRegistryClient(
        "https://svc:p%40ss@registry.test:8081/",
        {"basic.auth.credentials.source": "URL"},
        transport=httpx.MockTransport(handler),
    )
    client.subjects()
    assert seen == ["Basic c3ZjOnBAc3M="]  # svc:p@ss
    assert client.url == "https://registry.test:8081"
    assert "p%40ss" not in repr(client) and "p@ss" not in repr(client)


def test_credentials_never_in_unavailable_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {request.url}")

    client = SchemaRegistryClient("https://u:topsecret@registry.test", transport=httpx.MockTransport(handler))
    with pytest.raises(RegistryUnavailable) as info:
        client.get_schema(1)
    assert "topsecret" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "properties", "message"),
    [
        ("http://r.test", {"basic.auth.user.info": "no-colon"}, "user:password"),
        ("http://r.test", {"basic.auth.credentials.source": "SASL_INHERIT"}, "USER_INFO or URL"),
        ("http://r.test", {"basic.auth.credentials.source": "URL"}, "no user:password@"),
        ("http://r.test", {"schema.registry.basic.auth.user.info": "a:b"}, "unsupported"),
        ("ftp://r.test", {}, "http"),
        ("http://r.test", {"ssl.key.location": "key.pem"}, "ssl.certificate.location"),
        ("http://r.test", {"ssl.ca.location": "/nonexistent/ca.pem"}, "TLS files"),
    ],
)
def test_bad_client_settings(url: str, properties: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SchemaRegistryClient(url, properties)


def test_basic_auth_is_httpx_basic_auth() -> None:
    client = SchemaRegistryClient("http://r.test", {"basic.auth.user.info": "svc:pw"})
    assert type(client._http.auth) is httpx.BasicAuth


# --------------------------------------------------------------------------------------------
# Names


@pytest.mark.parametrize(
    ("node", "enclosing", "expected"),
    [
        ({"name": "Bet"}, "", "Bet"),
        ({"name": "Bet"}, "a.b", "a.b.Bet"),
        ({"name": "Bet", "namespace": "x"}, "a.b", "x.Bet"),
        ({"name": "y.Bet", "namespace": "x"}, "a.b", "y.Bet"),
        # An explicit empty namespace is the null namespace, not "inherit": fastavro reads it so.
        ({"name": "Bet", "namespace": ""}, "a.b", "Bet"),
        ({"name": "Bet", "namespace": None}, "a.b", "a.b.Bet"),
    ],
)
def test_definition_name_follows_the_avro_rules(node: dict[str, Any], enclosing: str, expected: str) -> None:
    assert definition_name(node, enclosing) == expected


def test_definition_name_agrees_with_fastavro() -> None:
    inner = [
        {"type": "enum", "name": "A", "symbols": ["X"]},
        {"type": "enum", "name": "B", "namespace": "", "symbols": ["X"]},
        {"type": "enum", "name": "C", "namespace": "o.p", "symbols": ["X"]},
        {"type": "enum", "name": "q.D", "namespace": "o.p", "symbols": ["X"]},
    ]
    schema = {
        "type": "record",
        "name": "R",
        "namespace": "a.b",
        "fields": [{"name": f"f{i}", "type": node} for i, node in enumerate(inner)],
    }
    parsed = parse(schema)
    assert [f["type"]["name"] for f in parsed["fields"]] == [definition_name(n, "a.b") for n in inner]
    assert schema_name(schema) == parsed["name"] == "a.b.R"
    assert full_name("R", "") == full_name("R", None) == "R"


# --------------------------------------------------------------------------------------------
# Schema files


def test_load_schema_bare_names_use_the_bundled_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_schema("bet")["name"] == "Bet"
    assert load_schema("bet.avsc") == load_schema("bet")
    assert (BUNDLED_SCHEMAS_DIR / "bet.avsc").is_file()


def test_bundled_schemas_are_the_repository_schemas() -> None:
    repo_files = sorted(p.name for p in (REPO / "schemas").glob("*.avsc"))
    assert repo_files == sorted(p.name for p in BUNDLED_SCHEMAS_DIR.glob("*.avsc"))
    for name in repo_files:
        assert (REPO / "schemas" / name).read_bytes() == (BUNDLED_SCHEMAS_DIR / name).read_bytes()


def _write(path: Path, name: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**LOGICAL, "name": name}))
    return path


def test_load_schema_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base, cwd = tmp_path / "conf", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    _write(cwd / "schemas" / "bet.avsc", "FromCwdSchemas")
    assert load_schema("bet", [base])["name"] == "FromCwdSchemas"
    _write(base / "schemas" / "bet.avsc", "FromBaseSchemas")
    assert load_schema("bet", [base])["name"] == "FromBaseSchemas"
    _write(cwd / "bet.avsc", "FromCwd")
    assert load_schema("bet.avsc", [base])["name"] == "FromCwd"
    _write(base / "bet.avsc", "FromBase")
    assert load_schema("bet.avsc", [base])["name"] == "FromBase"
    # A path with directories is a path: it never falls back to a bundled copy.
    assert load_schema("schemas/bet.avsc", [base])["name"] == "FromBaseSchemas"
    absolute = _write(tmp_path / "elsewhere" / "x.avsc", "Absolute")
    assert load_schema(str(absolute), [base])["name"] == "Absolute"


def test_load_schema_not_found_lists_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SchemaFileError, match=r"'schemas/nope.avsc': file not found \(looked at .*nope.avsc"):
        load_schema("schemas/nope.avsc")
    with pytest.raises(SchemaFileError, match="file not found"):
        load_schema("no_such_kind")
    with pytest.raises(SchemaFileError, match="empty"):
        load_schema(" ")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"type": "record",\n "name": "R", "fields": [}', "invalid JSON at line 2, column"),
        ('["null", "string"]', "must be an Avro record schema"),
        ('{"type": "record", "name": "R"}', "needs a `fields` list"),
        (
            '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "strng"}]}',
            "invalid Avro schema",
        ),
        (
            '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int", "default": "x"}]}',
            "Default",
        ),
        ('{"type": "record", "name": "R", "fields": [{"name": "a"}]}', "no `type`"),
    ],
)
def test_load_schema_reports_bad_files(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "bad.avsc").write_text(content)
    with pytest.raises(SchemaFileError, match=r"'bad\.avsc'") as info:
        load_schema("bad.avsc", [tmp_path])
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_load_schema_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "latin1.avsc").write_bytes(b'{"doc": "\xe9"}')
    with pytest.raises(SchemaFileError, match="cannot read"):
        load_schema("latin1.avsc", [tmp_path])


def test_parse_wraps_fastavro_errors() -> None:
    with pytest.raises(InvalidSchemaError):
        parse({"type": "enum", "name": "E", "symbols": ["A", "A"]})
    with pytest.raises(InvalidSchemaError, match="fields"):
        parse(
            {
                "type": "record",
                "name": "R",
                "fields": [{"name": "x", "type": {"type": "record", "name": "In"}}],
            }
        )


def test_every_shipped_schema_loads() -> None:
    names = sorted(p.stem for p in (REPO / "schemas").glob("*.avsc"))
    assert {
        "bet",
        "bet_v2",
        "deposit",
        "withdrawal",
        "account_event",
        "wallet_balance",
        "customer_profile",
    } <= set(names)
    for name in names:
        parse(load_schema(name))


def _bet_record() -> dict[str, Any]:
    return {
        "bet_id": "b-00000001",
        "event_type": "BET_SETTLED",
        "player": {"id": "P0000042", "brand": "royalspin.co.uk", "country": "GB"},
        "game": {
            "id": "sb-football",
            "title": "Arsenal v Chelsea",
            "provider": "Kambi",
            "category": "SPORTS",
        },
        "sport": "Football",
        "market": "Match Result",
        "stake": Decimal("10.00"),
        "win_amount": Decimal("25.00"),
        "odds": 2.5,
        "currency": "GBP",
        "money_type": "REAL",
        "placed_at": datetime(2024, 6, 1, 12, 0, tzinfo=UTC),
        "settled_at": datetime(2024, 6, 1, 13, 55, tzinfo=UTC),
        "channel": "IOS_APP",
        "status": "WON",
        "session_id": None,
        "metadata": {"client_version": "5.12.0"},
    }
