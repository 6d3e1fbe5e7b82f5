"""The registry client and decoders against RegistryStub over loopback HTTP, and the stub's REST subset."""

from __future__ import annotations

import json
import random
import socket
from collections.abc import Iterator
from functools import partial

import httpx
import pytest

from connector.avro.decoding import ConfluentAvroDecoder, encode_confluent
from connector.avro.registry import SchemaRegistryClient
from connector.avro.schemas import load_schema, parse
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.samples import SAMPLE_KINDS, make_messages, sample_record
from connector.errors import (
    DecodeError,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailable,
    UnknownSchemaError,
)

pytestmark = pytest.mark.integration

SV1 = "application/vnd.schemaregistry.v1+json"


@pytest.fixture
def stub() -> Iterator[RegistryStub]:
    with RegistryStub() as registry:
        yield registry


@pytest.fixture
def client(stub: RegistryStub) -> Iterator[SchemaRegistryClient]:
    with SchemaRegistryClient(stub.url, timeout_s=5.0) as c:
        yield c


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------------------
# The stub's REST API, as a Confluent client sees it


def test_rest_api_subset(stub: RegistryStub) -> None:
    bet, bet_v2 = load_schema("bet"), load_schema("bet_v2")
    with httpx.Client(base_url=stub.url) as http:
        r = http.post("/subjects/casino.bets-value/versions", json={"schema": json.dumps(bet)})
        assert r.status_code == 200 and r.headers["content-type"] == SV1
        first = r.json()["id"]
        again = http.post(
            "/subjects/casino.bets-value/versions", json={"schema": json.dumps(bet), "schemaType": "AVRO"}
        )
        assert again.json() == {"id": first}
        second = http.post(
            "/subjects/casino.bets-value/versions", json={"schema": json.dumps(bet_v2)}
        ).json()["id"]
        assert second != first
        # Ids are global: the same schema under another subject keeps its id.
        other = http.post("/subjects/archive.bets-value/versions", json={"schema": json.dumps(bet)}).json()[
            "id"
        ]
        assert other == first

        assert http.get("/subjects").json() == ["archive.bets-value", "casino.bets-value"]
        assert http.get("/subjects/casino.bets-value/versions").json() == [1, 2]
        latest = http.get("/subjects/casino.bets-value/versions/latest").json()
        assert (latest["subject"], latest["version"], latest["id"]) == ("casino.bets-value", 2, second)
        assert json.loads(latest["schema"]) == bet_v2
        assert http.get("/subjects/casino.bets-value/versions/1").json()["id"] == first
        assert json.loads(http.get(f"/schemas/ids/{first}").json()["schema"]) == bet

        lookup = http.post("/subjects/casino.bets-value", json={"schema": json.dumps(bet_v2)}).json()
        assert (lookup["version"], lookup["id"]) == (2, second)

        errors = {
            "/schemas/ids/999": (404, 40403),
            "/subjects/nope/versions": (404, 40401),
            "/subjects/nope/versions/latest": (404, 40401),
            "/subjects/casino.bets-value/versions/7": (404, 40402),
            "/no/such/endpoint": (404, 404),
        }
        for path, (status, code) in errors.items():
            r = http.get(path)
            assert (r.status_code, r.json()["error_code"]) == (status, code), path
        bad = http.post(
            "/subjects/x/versions", json={"schema": '{"type": "record", "name": "R", "fields": 5}'}
        )
        assert (bad.status_code, bad.json()["error_code"]) == (422, 42201)
        assert http.post("/subjects/x/versions", content=b"not json").status_code == 400
    assert stub.request_count == 17


def test_in_process_register_matches_http_ids(stub: RegistryStub, client: SchemaRegistryClient) -> None:
    bet = load_schema("bet")
    schema_id = stub.register("casino.bets-value", bet)
    assert client.register("casino.bets-value", bet) == schema_id
    assert stub.register("other-value", bet) == schema_id
    with pytest.raises(ValueError, match="Invalid schema"):
        stub.register("x", {"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]})


def test_port_and_restart() -> None:
    stub = RegistryStub()
    with pytest.raises(RuntimeError):
        _ = stub.url
    with stub:
        assert stub.url.startswith("http://127.0.0.1:")
        assert httpx.get(stub.url + "/subjects").json() == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{closed_port()}/subjects")


# --------------------------------------------------------------------------------------------
# Client and decoder over HTTP


def test_samples_round_trip_through_the_registry(stub: RegistryStub, client: SchemaRegistryClient) -> None:
    rng = random.Random(11)
    for kind in SAMPLE_KINDS:
        schema = load_schema(kind)
        schema_id = client.register(f"{kind}-value", schema)
        decoder = ConfluentAvroDecoder(SchemaRegistryClient(stub.url))
        records = [sample_record(kind, rng, i) for i in range(30)]
        for record in records:
            assert decoder.decode(encode_confluent(schema_id, parse(schema), record)) == record


def test_registry_is_asked_once_per_schema_id(stub: RegistryStub, client: SchemaRegistryClient) -> None:
    v1, v2 = load_schema("bet"), load_schema("bet_v2")
    id1, id2 = stub.register("casino.bets-value", v1), stub.register("casino.bets-value", v2)
    decoder = ConfluentAvroDecoder(client, reader_schema=v2)
    rng = random.Random(5)
    before = stub.request_count
    for i in range(40):
        record = sample_record("bet", rng, i)
        old = decoder.decode(encode_confluent(id1, parse(v1), record))
        new = decoder.decode(encode_confluent(id2, parse(v2), {**record, "bonus_code": "FREESPINS"}))
        assert old == {**record, "bonus_code": None}
        assert new == {**record, "bonus_code": "FREESPINS"}
    assert stub.request_count - before == 2
    assert sorted(p for m, p in stub.requests if p.startswith("/schemas/ids/")) == [
        f"/schemas/ids/{id1}",
        f"/schemas/ids/{id2}",
    ]


def test_unknown_schema_id_over_http(stub: RegistryStub, client: SchemaRegistryClient) -> None:
    bet = load_schema("bet")
    value = encode_confluent(777, parse(bet), sample_record("bet", random.Random(1), 0))
    with pytest.raises(UnknownSchemaError):
        ConfluentAvroDecoder(client).decode(value)


def test_registry_503_is_transient_not_a_decode_error(
    stub: RegistryStub, client: SchemaRegistryClient
) -> None:
    bet = load_schema("bet")
    schema_id = stub.register("casino.bets-value", bet)
    value = encode_confluent(schema_id, parse(bet), sample_record("bet", random.Random(2), 0))
    decoder = ConfluentAvroDecoder(client)
    stub.unavailable = True
    for _ in range(3):
        with pytest.raises(RegistryUnavailable) as info:
            decoder.decode(value)
        assert not isinstance(info.value, DecodeError)
        assert info.value.status == 503
    assert stub.request_count == 3  # every attempt went to the registry: nothing cached the outage
    stub.unavailable = False
    assert decoder.decode(value)["bet_id"]
    with pytest.raises(RegistryUnavailable):
        stub.unavailable = True
        client.register("x-value", bet)


def test_connection_refused_is_registry_unavailable() -> None:
    bet = load_schema("bet")
    value = encode_confluent(1, parse(bet), sample_record("bet", random.Random(3), 0))
    with SchemaRegistryClient(f"http://127.0.0.1:{closed_port()}", timeout_s=5.0) as client:
        with pytest.raises(RegistryUnavailable, match="unreachable: ConnectError"):
            ConfluentAvroDecoder(client).decode(value)
        with pytest.raises(RegistryUnavailable):
            client.latest("casino.bets-value")


def test_basic_auth_against_the_stub() -> None:
    with RegistryStub(credentials=("connector", "hunter2")) as stub:
        stub.register("s-value", load_schema("deposit"))
        with SchemaRegistryClient(stub.url, {"basic.auth.user.info": "connector:hunter2"}) as good:
            assert good.subjects() == ["s-value"]
            assert good.latest("s-value") is not None
        with SchemaRegistryClient(stub.url, {"basic.auth.user.info": "connector:wrong"}) as bad:
            with pytest.raises(RegistryAuthError) as info:
                bad.get_schema(1)
            assert "wrong" not in str(info.value) and "hunter2" not in str(info.value)
        with SchemaRegistryClient(stub.url) as anonymous, pytest.raises(RegistryAuthError):
            anonymous.subjects()


def test_client_register_latest_and_errors(stub: RegistryStub, client: SchemaRegistryClient) -> None:
    assert client.latest("casino.bets-value") is None
    v1 = load_schema("bet")
    schema_id = client.register("casino.bets-value", v1)
    assert client.latest("casino.bets-value") == (schema_id, v1)
    with pytest.raises(RegistryError) as info:
        client.register("x-value", {"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]})
    assert (info.value.status, info.value.error_code) == (422, 42201)


def test_schema_references_are_inlined(stub: RegistryStub, client: SchemaRegistryClient) -> None:
    player = {
        "type": "record",
        "name": "PlayerRef",
        "namespace": "com.operator.common",
        "fields": [{"name": "id", "type": "string"}, {"name": "country", "type": "string"}],
    }
    money = {"type": "fixed", "name": "Money", "namespace": "com.operator.common", "size": 8}
    stub.register("com.operator.common.PlayerRef", player)
    stub.register("com.operator.common.Money", money)
    bet = {
        "type": "record",
        "name": "SlimBet",
        "namespace": "com.operator.events",
        "fields": [
            {"name": "bet_id", "type": "string"},
            {"name": "player", "type": "com.operator.common.PlayerRef"},
            {"name": "referrer", "type": ["null", "com.operator.common.PlayerRef"], "default": None},
            {"name": "stake", "type": "com.operator.common.Money"},
        ],
    }
    refs = [
        {"name": "com.operator.common.PlayerRef", "subject": "com.operator.common.PlayerRef", "version": 1},
        {"name": "com.operator.common.Money", "subject": "com.operator.common.Money", "version": 1},
    ]
    schema_id = stub.register("slim-bets-value", bet, references=refs)
    resolved = client.get_schema(schema_id)
    assert resolved["fields"][1]["type"]["name"] == "PlayerRef"
    assert resolved["fields"][2]["type"][1] == "com.operator.common.PlayerRef"  # defined once, then named
    record = {
        "bet_id": "b-1",
        "player": {"id": "P1", "country": "SE"},
        "referrer": None,
        "stake": b"\x00" * 8,
    }
    decoded = ConfluentAvroDecoder(client).decode(encode_confluent(schema_id, parse(resolved), record))
    assert decoded == record

    dangling = stub.register("dangling-value", bet, references=[{**refs[0], "version": 9}, refs[1]])
    with pytest.raises(DecodeError, match="version 9 does not exist"):
        client.get_schema(dangling)


def test_samples_with_poison_fail_where_they_say(stub: RegistryStub, client: SchemaRegistryClient) -> None:
    rng = random.Random(99)
    for kind in SAMPLE_KINDS:
        schema = load_schema(kind)
        parsed = parse(schema)
        schema_id = stub.register(f"{kind}-value", schema)
        messages = make_messages(
            kind,
            200,
            partial(encode_confluent, schema_id, parsed),
            rng,
            poison_rate=0.4,
            unknown_schema_id_encode=partial(encode_confluent, 4242, parsed),
        )
        decoder = ConfluentAvroDecoder(client)
        outcomes: dict[str | None, int] = {}
        for message in messages:
            try:
                decoder.decode(message.value)
                failed = False
            except DecodeError:
                failed = True
            assert failed == (message.poison == "DECODE"), (kind, message)
            outcomes[message.poison] = outcomes.get(message.poison, 0) + 1
        assert outcomes.get("DECODE", 0) > 0 and outcomes.get(None, 0) > 0
