"""connector.ingest.signing: HKDF key, HMAC signature, token sources and the httpx.Auth."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest

from connector.config.settings import DestinationSettings
from connector.endpoints import HEADER_SAFE_RULE, header_safe
from connector.errors import TokenFileError
from connector.ingest import signing
from connector.ingest.jsjson import dumps_bytes
from connector.ingest.signing import FileToken, HmacAuth, StaticToken, derive_key, sign, verify
from connector.runtime.clock import FakeClock

pytestmark = pytest.mark.unit

TESTS_DIR = Path(__file__).resolve().parents[1]
VECTORS_FILE = TESTS_DIR / "data" / "signing_vectors.json"
GENERATOR = TESTS_DIR / "support" / "make_signing_vectors.js"

DOC_TOKEN = "tok_test_123"
DOC_ACCOUNT = "68911b7ad58ad825ec00c5ef"
DOC_WORKSPACE = "68911b7ad825ec00c5ef"
DOC_KEY = "73fefe6a2b85d1aa952ff90dba75e1d70213db6b52385ed8832a3adf334e3336"
DOC_BODY = (
    b'[{"account_id":"68911b7ad58ad825ec00c5ef","workspace_id":"68911b7ad825ec00c5ef","user_id":"u1",'
    b'"event_category":"Deposit","event_name":"Successful Deposit","event_id":"evt_1",'
    b'"event_time":"2024-01-15T10:30:00Z","amount":500,"payment_method":"bank","transaction_id":"txn_1"}]'
)
DOC_SIGNATURE = "73ea92174341fd014f774c3916bc8a9bc7abc23ee0a646b7e83a7d88f304f55a"

SECRET = "s3cr3t-t0ken-do-not-print"


def load_vectors() -> list[dict[str, str]]:
    data = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    vectors: list[dict[str, str]] = data["vectors"]
    return vectors


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; the live crypto cross-check needs it")
    return node


# --- key derivation and signature ------------------------------------------------------------


def test_ingest_api_doc_vector() -> None:
    key = derive_key(DOC_TOKEN, DOC_ACCOUNT, DOC_WORKSPACE)
    assert key.hex() == DOC_KEY
    assert sign(key, DOC_BODY) == DOC_SIGNATURE


@pytest.mark.parametrize("vector", load_vectors(), ids=lambda v: v["name"])
def test_node_generated_vectors(vector: dict[str, str]) -> None:
    key = derive_key(vector["token"], vector["account_id"], vector["workspace_id"])
    assert key.hex() == vector["key_hex"]
    body = vector["body"].encode("utf-8")
    assert sign(key, body) == vector["signature_hex"]
    assert verify(key, body, vector["signature_hex"])


def test_vector_file_covers_required_cases() -> None:
    vectors = load_vectors()
    assert len(vectors) >= 6
    assert any(not v["token"].isascii() for v in vectors)
    assert any(not (v["account_id"] + v["workspace_id"]).isascii() for v in vectors)
    assert any(v["key_hex"] == DOC_KEY and v["signature_hex"] == DOC_SIGNATURE for v in vectors)


def test_ids_are_concatenated_without_separator() -> None:
    assert derive_key("tok", "abc", "def") == derive_key("tok", "ab", "cdef")
    assert derive_key("tok", "abc", "def") != derive_key("tok2", "abc", "def")


def test_token_is_the_salt_not_the_input_key_material() -> None:
    # Swapping the roles (textbook HKDF order) must give a different key: the server checks the SDK's way.
    assert derive_key(DOC_TOKEN, DOC_ACCOUNT, DOC_WORKSPACE) != derive_key(
        DOC_ACCOUNT + DOC_WORKSPACE, DOC_TOKEN, ""
    )


def test_key_is_32_bytes_and_signature_is_lowercase_hex() -> None:
    key = derive_key("t", "a", "w")
    assert len(key) == 32
    signature = sign(key, b"{}")
    assert len(signature) == 64
    assert signature == signature.lower()
    int(signature, 16)


def test_vectors_file_is_the_generator_output() -> None:
    node = node_or_skip()
    produced = subprocess.run([node, str(GENERATOR)], capture_output=True, check=True, timeout=60).stdout
    assert json.loads(produced) == json.loads(VECTORS_FILE.read_bytes())


def test_live_cross_check_with_node_crypto() -> None:
    node = node_or_skip()
    rng = random.Random(20240115)
    alphabet = "abcXYZ019_-.+/=~ éüø日本語\u2028🔑😀"

    def text(min_len: int, max_len: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(min_len, max_len)))

    cases = [
        {
            "token": text(1, 120),
            "account_id": text(0, 30),
            "workspace_id": text(0, 30),
            "body": dumps_bytes([{"i": i, "s": text(0, 40), "x": rng.random() * 1e6}]).decode("utf-8"),
        }
        for i in range(40)
    ]
    result = subprocess.run(
        [node, str(GENERATOR), "--stdin"],
        input=json.dumps(cases).encode("utf-8"),
        capture_output=True,
        check=True,
        timeout=60,
    )
    computed = json.loads(result.stdout)
    assert len(computed) == len(cases)
    for case in computed:
        key = derive_key(case["token"], case["account_id"], case["workspace_id"])
        assert key.hex() == case["key_hex"]
        assert sign(key, case["body"].encode("utf-8")) == case["signature_hex"]


def test_verify_rejects_anything_but_the_exact_signature() -> None:
    key = derive_key(DOC_TOKEN, DOC_ACCOUNT, DOC_WORKSPACE)
    assert verify(key, DOC_BODY, DOC_SIGNATURE)
    assert not verify(key, DOC_BODY + b" ", DOC_SIGNATURE)
    assert not verify(key, DOC_BODY, DOC_SIGNATURE.upper())
    assert not verify(key, DOC_BODY, DOC_SIGNATURE[:-1])
    assert not verify(key, DOC_BODY, "")
    assert not verify(key, DOC_BODY, "é" * 64)
    assert not verify(derive_key("other", DOC_ACCOUNT, DOC_WORKSPACE), DOC_BODY, DOC_SIGNATURE)


# --- token sources ---------------------------------------------------------------------------


def test_static_token_hides_secret() -> None:
    token = StaticToken(SECRET)
    assert token.get() == SECRET
    assert repr(token) == "StaticToken(***)"
    assert str(token) == "StaticToken(***)"
    assert SECRET not in f"{token} {token!r} {[token]}"


def test_file_token_reads_and_strips(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"  {SECRET}\n\n", encoding="utf-8")
    assert FileToken(path, clock=FakeClock()).get() == SECRET


def test_file_token_rechecks_only_after_interval(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first-token", encoding="utf-8")
    clock = FakeClock()
    source = FileToken(path, min_recheck_s=5.0, clock=clock)
    assert source.get() == "first-token"

    path.write_text("second-token-longer", encoding="utf-8")
    clock.advance(4.9)
    assert source.get() == "first-token"
    clock.advance(0.1)
    assert source.get() == "second-token-longer"


def test_file_token_notices_same_size_rewrite_by_mtime(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("token-aaaa", encoding="utf-8")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    clock = FakeClock()
    source = FileToken(path, clock=clock)
    assert source.get() == "token-aaaa"

    inode = path.stat().st_ino
    path.write_text("token-bbbb", encoding="utf-8")  # same size, same inode
    os.utime(path, ns=(2_000_000_000, 2_000_000_000))
    assert path.stat().st_ino == inode
    clock.advance(1.0)
    assert source.get() == "token-bbbb"


def test_file_token_notices_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("token-aaaa", encoding="utf-8")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    clock = FakeClock()
    source = FileToken(path, clock=clock)
    assert source.get() == "token-aaaa"

    fresh = tmp_path / "token.new"
    fresh.write_text("token-cccc", encoding="utf-8")
    os.utime(fresh, ns=(1_000_000_000, 1_000_000_000))  # same size and mtime: only the inode differs
    os.replace(fresh, path)
    clock.advance(1.0)
    assert source.get() == "token-cccc"


def test_file_token_follows_secret_mount_symlink_swap(tmp_path: Path) -> None:
    # Kubernetes secret volumes: token -> ..data/token, ..data -> ..<timestamp>/, swapped atomically.
    (tmp_path / "..v1").mkdir()
    (tmp_path / "..v1" / "token").write_text("token-one", encoding="utf-8")
    (tmp_path / "..data").symlink_to("..v1")
    (tmp_path / "token").symlink_to("..data/token")
    clock = FakeClock()
    source = FileToken(tmp_path / "token", clock=clock)
    assert source.get() == "token-one"

    (tmp_path / "..v2").mkdir()
    (tmp_path / "..v2" / "token").write_text("token-two", encoding="utf-8")
    (tmp_path / "..data.tmp").symlink_to("..v2")
    os.replace(tmp_path / "..data.tmp", tmp_path / "..data")
    clock.advance(1.0)
    assert source.get() == "token-two"


def test_file_token_unchanged_file_is_not_reread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token"
    path.write_text("steady", encoding="utf-8")
    clock = FakeClock()
    source = FileToken(path, clock=clock)
    assert source.get() == "steady"

    reads: list[Path] = []
    original = Path.read_bytes

    def counting_read_bytes(self: Path) -> bytes:
        reads.append(self)
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", counting_read_bytes)
    clock.advance(10.0)
    assert source.get() == "steady"
    assert reads == []


def test_missing_file_raises_naming_path(tmp_path: Path) -> None:
    path = tmp_path / "nope"
    with pytest.raises(TokenFileError) as info:
        FileToken(path, clock=FakeClock()).get()
    assert str(path) in str(info.value)
    assert info.value.path == str(path)


@pytest.mark.parametrize("content", [b"", b"   \n\t  \n"])
def test_empty_file_raises(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    with pytest.raises(TokenFileError, match="empty"):
        FileToken(path, clock=FakeClock()).get()


def test_undecodable_file_raises_without_contents(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(SECRET.encode() + b"\xff\xfe")
    with pytest.raises(TokenFileError) as info:
        FileToken(path, clock=FakeClock()).get()
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_file_removed_after_load_raises_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("token-one", encoding="utf-8")
    clock = FakeClock()
    source = FileToken(path, clock=clock)
    assert source.get() == "token-one"

    path.unlink()
    clock.advance(1.0)
    with pytest.raises(TokenFileError):
        source.get()
    # A failed check is not stamped: the next call checks again instead of serving the stale token.
    with pytest.raises(TokenFileError):
        source.get()

    path.write_text("token-two", encoding="utf-8")
    assert source.get() == "token-two"


def test_file_token_and_error_never_show_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(SECRET, encoding="utf-8")
    source = FileToken(path, clock=FakeClock())
    assert source.get() == SECRET
    assert SECRET not in repr(source)
    assert SECRET not in str(source)
    assert str(path) in repr(source)
    error = TokenFileError(path, "empty")
    assert SECRET not in repr(error) + str(error)


# --- HmacAuth --------------------------------------------------------------------------------


def checking_handler(
    expected_token: list[str], account_id: str = DOC_ACCOUNT, workspace_id: str = DOC_WORKSPACE
) -> tuple[Any, list[httpx.Request]]:
    """A MockTransport handler that re-derives the key and checks every header of the request."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        token = request.headers["x-optikpi-token"]
        assert token == expected_token[0]
        assert request.headers["content-type"] == "application/json"
        assert request.headers["x-optikpi-account-id"] == account_id
        assert request.headers["x-optikpi-workspace-id"] == workspace_id
        assert request.headers["x-hmac-algorithm"] == "sha256"
        key = derive_key(token, account_id, workspace_id)
        assert request.headers["x-hmac-signature"] == sign(key, request.content)
        assert verify(key, request.content, request.headers["x-hmac-signature"])
        return httpx.Response(200, json={"message": "ok", "recordIds": [], "count": 0})

    return handler, seen


def test_hmac_auth_signs_exact_body_bytes() -> None:
    handler, seen = checking_handler([DOC_TOKEN])
    auth = HmacAuth(DOC_ACCOUNT, DOC_WORKSPACE, StaticToken(DOC_TOKEN))
    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        response = client.post("https://ingest.test/apigw/ingest/events/deposit", content=DOC_BODY)
    assert response.status_code == 200
    assert seen[0].content == DOC_BODY
    assert seen[0].headers["x-hmac-signature"] == DOC_SIGNATURE


def test_hmac_auth_signs_non_ascii_body() -> None:
    handler, seen = checking_handler([DOC_TOKEN])
    body = dumps_bytes([{"name": "Zoë ☃ 😀", "sep": "\u2028", "amount": 12.5}])
    auth = HmacAuth(DOC_ACCOUNT, DOC_WORKSPACE, StaticToken(DOC_TOKEN))
    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        client.post("https://ingest.test/customers", content=body, headers={"Content-Type": "text/plain"})
    assert seen[0].content == body
    # Whatever the caller set, the API requires application/json (checked in the handler too).
    assert seen[0].headers.get_list("content-type") == ["application/json"]


def test_hmac_auth_async_client() -> None:
    handler, seen = checking_handler([DOC_TOKEN])
    auth = HmacAuth(DOC_ACCOUNT, DOC_WORKSPACE, StaticToken(DOC_TOKEN))

    async def run() -> int:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=auth) as client:
            response = await client.post("https://ingest.test/extattributes", content=DOC_BODY)
            return response.status_code

    assert asyncio.run(run()) == 200
    assert seen[0].headers["x-hmac-signature"] == DOC_SIGNATURE


def test_hmac_auth_picks_up_rotated_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    derivations: list[str] = []
    real_derive = signing.derive_key

    def counting_derive(token: str, account_id: str, workspace_id: str) -> bytes:
        derivations.append(token)
        return real_derive(token, account_id, workspace_id)

    monkeypatch.setattr(signing, "derive_key", counting_derive)

    path = tmp_path / "token"
    path.write_text("token-one\n", encoding="utf-8")
    clock = FakeClock()
    expected = ["token-one"]
    handler, seen = checking_handler(expected)
    auth = HmacAuth(DOC_ACCOUNT, DOC_WORKSPACE, FileToken(path, min_recheck_s=1.0, clock=clock))
    url = "https://ingest.test/events/account"
    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        client.post(url, content=b"[1]")
        client.post(url, content=b"[2]")
        assert derivations == ["token-one"]  # the key is cached per token value

        path.write_text("token-two-rotated\n", encoding="utf-8")
        client.post(url, content=b"[3]")  # clock not advanced: still the old token
        clock.advance(1.0)
        expected[0] = "token-two-rotated"
        client.post(url, content=b"[4]")
        client.post(url, content=b"[5]")

    assert derivations == ["token-one", "token-two-rotated"]
    old_key = real_derive("token-one", DOC_ACCOUNT, DOC_WORKSPACE)
    new_key = real_derive("token-two-rotated", DOC_ACCOUNT, DOC_WORKSPACE)
    assert [r.headers["x-hmac-signature"] for r in seen] == [
        sign(old_key, b"[1]"),
        sign(old_key, b"[2]"),
        sign(old_key, b"[3]"),
        sign(new_key, b"[4]"),
        sign(new_key, b"[5]"),
    ]


def test_hmac_auth_propagates_token_file_error(tmp_path: Path) -> None:
    handler, seen = checking_handler(["never"])
    auth = HmacAuth(DOC_ACCOUNT, DOC_WORKSPACE, FileToken(tmp_path / "missing", clock=FakeClock()))
    with (
        httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client,
        pytest.raises(TokenFileError),
    ):
        client.post("https://ingest.test/customers", content=b"[]")
    assert seen == []


@pytest.mark.parametrize(
    ("account_id", "workspace_id"),
    [("konto-é", "ws"), ("acct", "ワーク"), ("", "ws"), ("acct", " ws"), ("acct\n", "ws")],
)
def test_hmac_auth_rejects_ids_unusable_in_headers(account_id: str, workspace_id: str) -> None:
    with pytest.raises(ValueError, match="_id must be"):
        HmacAuth(account_id, workspace_id, StaticToken("tok"))


@pytest.mark.parametrize("token", ["tøken-" + SECRET, SECRET + "\r\n", ""])
def test_hmac_auth_rejects_token_unusable_in_header_without_showing_it(token: str) -> None:
    handler, seen = checking_handler([token])
    auth = HmacAuth(DOC_ACCOUNT, DOC_WORKSPACE, StaticToken(token))
    with (
        httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client,
        pytest.raises(ValueError, match="token must be") as info,
    ):
        client.post("https://ingest.test/customers", content=b"[]")
    assert SECRET not in str(info.value)
    assert seen == []


HEADER_VALUES = [
    "acct-1",
    "tok_test_123",
    "konto-é",
    "ワーク",
    " ws",
    "ws ",
    "acct\n",
    "a\tb",
    "a\x7fb",
    "a b",
]


@pytest.mark.parametrize("value", HEADER_VALUES)
def test_config_and_signer_share_one_header_rule(value: str) -> None:
    """DestinationSettings accepts exactly the ids and tokens HmacAuth can put in headers."""
    base = {"base_url": "https://ingest.test", "account_id": "a", "workspace_id": "w", "auth_token": "t"}
    for key in ("account_id", "workspace_id", "auth_token"):
        try:
            DestinationSettings.model_validate({**base, key: value})
            config_ok = True
        except pydantic.ValidationError as exc:
            assert HEADER_SAFE_RULE in str(exc)
            config_ok = False
        try:
            given = {**base, key: value}
            auth = HmacAuth(given["account_id"], given["workspace_id"], StaticToken(given["auth_token"]))
            auth._key_for(given["auth_token"])
            signer_ok = True
        except ValueError as exc:
            assert f"must be non-empty {HEADER_SAFE_RULE}" in str(exc)
            signer_ok = False
        assert config_ok == signer_ok == header_safe(value), key


class LeakyTokenSource:
    def __init__(self, token: str) -> None:
        self.token = token

    def get(self) -> str:
        return self.token

    def __repr__(self) -> str:
        return f"LeakyTokenSource({self.token})"


def test_hmac_auth_repr_never_shows_secret(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(SECRET, encoding="utf-8")
    sources: list[signing.TokenSource] = [
        StaticToken(SECRET),
        FileToken(path, clock=FakeClock()),
        LeakyTokenSource(SECRET),
    ]
    for source in sources:
        auth = HmacAuth(DOC_ACCOUNT, DOC_WORKSPACE, source)
        handler, _ = checking_handler([SECRET])
        with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
            client.post("https://ingest.test/customers", content=b"[]")  # populates the key cache
        text = repr(auth) + str(auth)
        assert SECRET not in text
        assert DOC_ACCOUNT in text
