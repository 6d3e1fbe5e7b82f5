"""Request signing: the HKDF-derived key, the body HMAC, and an httpx.Auth that applies both.

The key derivation follows the vendor's JavaScript SDK (docs/ingest-api.md, "Authentication and
signing"): HKDF-SHA256 with the *token* as salt and account_id + workspace_id as input key
material, info "hmac-signing", 32 bytes. The signature is the lowercase hex HMAC-SHA256 of the
exact body bytes that go on the wire.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Final, Protocol

import httpx

from connector.endpoints import HEADER_SAFE_RULE, header_safe
from connector.errors import TokenFileError
from connector.runtime.logs import register_secret

__all__ = [
    "FileToken",
    "HmacAuth",
    "StaticToken",
    "TokenFileError",
    "TokenSource",
    "derive_key",
    "sign",
    "verify",
]

_INFO: Final = b"hmac-signing"


class TokenSource(Protocol):
    def get(self) -> str:
        """The current auth token."""
        ...


class StaticToken:
    """A token fixed for the life of the process."""

    __slots__ = ("_token",)

    def __init__(self, token: str) -> None:
        self._token = token

    def get(self) -> str:
        return self._token

    def __repr__(self) -> str:
        return "StaticToken(***)"

    __str__ = __repr__


class FileToken:
    """A token read from a file (a mounted Kubernetes/Vault secret) and re-read when it rotates.

    Rotation is detected by the file's identity (device, inode: secret mounts swap a symlink)
    and its mtime/size, checked at most once per ``min_recheck_s`` so the hot path does not stat
    the file for every request.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        min_recheck_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = Path(path)
        self._min_recheck_s = min_recheck_s
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._stamp: tuple[int, int, int, int, int] | None = None
        self._checked_at = 0.0

    @property
    def path(self) -> Path:
        return self._path

    def get(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is not None and now - self._checked_at < self._min_recheck_s:
                return self._token
            token = self._reload()
            # Stamp the check only once it succeeded, so a missing file is retried on the next
            # call rather than masked by the cached token for a whole interval.
            self._checked_at = now
            return token

    def _reload(self) -> str:
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            raise TokenFileError(self._path, "missing") from None
        except OSError as exc:
            raise TokenFileError(self._path, f"cannot stat ({exc.strerror})") from None
        stamp = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        if self._token is not None and stamp == self._stamp:
            return self._token
        try:
            raw = self._path.read_bytes()
        except OSError as exc:
            raise TokenFileError(self._path, f"cannot read ({exc.strerror})") from None
        try:
            # `from None`: a decode error's context would carry the file's bytes.
            token = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise TokenFileError(self._path, "not valid UTF-8") from None
        if not token:
            raise TokenFileError(self._path, "empty")
        if not header_safe(token):
            # HmacAuth would refuse it with a bare ValueError on every request; this names the file.
            raise TokenFileError(self._path, "not printable ASCII")
        # A rotated token must be scrubbed from logs like the one read at start-up.
        register_secret(token)
        self._token, self._stamp = token, stamp
        return token

    def __repr__(self) -> str:
        return f"FileToken(path={str(self._path)!r})"

    __str__ = __repr__


def derive_key(token: str, account_id: str, workspace_id: str) -> bytes:
    """HKDF-SHA256(salt=token, ikm=account_id+workspace_id, info="hmac-signing", L=32)."""
    ikm = (account_id + workspace_id).encode("utf-8")
    prk = hmac.new(token.encode("utf-8"), ikm, hashlib.sha256).digest()
    # L=32 is one SHA-256 block, so HKDF-Expand is a single HMAC with counter 1.
    return hmac.new(prk, _INFO + b"\x01", hashlib.sha256).digest()


def sign(key: bytes, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of the body bytes."""
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(key: bytes, body: bytes, signature: str) -> bool:
    """Constant-time check of a signature as the server does it (lowercase hex only)."""
    if not signature.isascii():
        return False  # compare_digest refuses non-ASCII str; such a value can never match anyway
    return hmac.compare_digest(sign(key, body), signature)


def _check_header_value(name: str, value: str) -> None:
    # Failing here says which setting is wrong (never its value) instead of a baffling 401.
    if not value or not header_safe(value):
        raise ValueError(f"{name} must be non-empty {HEADER_SAFE_RULE}")


class HmacAuth(httpx.Auth):
    """Adds the OptiKPI auth headers and the body signature to every request."""

    requires_request_body = True

    def __init__(self, account_id: str, workspace_id: str, token: TokenSource) -> None:
        _check_header_value("account_id", account_id)
        _check_header_value("workspace_id", workspace_id)
        self._account_id = account_id
        self._workspace_id = workspace_id
        self._token = token
        # (token, key): derivation is two HMACs, cheap, but signing runs for every request and the
        # token changes only on rotation. One tuple so readers never see a mismatched pair.
        self._cached: tuple[str, bytes] | None = None

    def _key_for(self, token: str) -> bytes:
        cached = self._cached
        if cached is not None and cached[0] == token:
            return cached[1]
        _check_header_value("token", token)
        key = derive_key(token, self._account_id, self._workspace_id)
        self._cached = (token, key)
        return key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._token.get()
        key = self._key_for(token)
        headers = request.headers
        headers["Content-Type"] = "application/json"
        headers["x-optikpi-token"] = token
        headers["x-optikpi-account-id"] = self._account_id
        headers["x-optikpi-workspace-id"] = self._workspace_id
        headers["x-hmac-signature"] = sign(key, request.content)
        headers["x-hmac-algorithm"] = "sha256"
        yield request

    def __repr__(self) -> str:
        # Only our own sources are known to keep the secret out of their repr.
        source = self._token
        shown = repr(source) if isinstance(source, StaticToken | FileToken) else type(source).__name__
        ids = f"account_id={self._account_id!r}, workspace_id={self._workspace_id!r}"
        return f"HmacAuth({ids}, token={shown})"

    __str__ = __repr__
