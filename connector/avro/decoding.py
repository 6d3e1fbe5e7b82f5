"""Avro decoding: the Confluent wire format, the Schema Registry client, one decoder per topic mapping.

Two error families leave this module, and the pipeline must never confuse them:
`DecodeError` is about the record (dead-letter it, stage DECODE); `RegistryUnavailable` is about
the infrastructure (retry, pause, never dead-letter). fastavro does the byte-level work; here we
only frame, fetch and cache, and translate its many exception types into those two.
"""

from __future__ import annotations

import base64
import copy
import json
import ssl
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from io import BytesIO
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import fastavro
import httpx
from fastavro.read import SchemaResolutionError
from fastavro.schema import SchemaParseException

__all__ = [
    "BUNDLED_SCHEMAS_DIR",
    "MAGIC_BYTE",
    "ConfluentAvroDecoder",
    "DecodeError",
    "InvalidSchemaError",
    "RawAvroDecoder",
    "RecordDecoder",
    "RegistryAuthError",
    "RegistryError",
    "RegistryUnavailable",
    "SchemaFileError",
    "SchemaRegistryClient",
    "UnknownSchemaError",
    "encode_confluent",
    "encode_raw",
    "load_schema",
    "parse",
    "schema_name",
    "split_confluent_frame",
]

MAGIC_BYTE: Final = 0
_HEADER_SIZE: Final = 5
_MAX_SCHEMA_ID: Final = 0xFFFFFFFF
BUNDLED_SCHEMAS_DIR: Final = Path(__file__).resolve().parents[1] / "schemas"

# Everything fastavro has been seen to raise on garbage, truncated or hostile payloads. A bare
# `except Exception` would also turn our own bugs into dead letters, silently.
_READ_ERRORS: Final = (
    EOFError,
    StopIteration,
    ValueError,  # includes UnicodeDecodeError
    IndexError,
    KeyError,
    TypeError,
    ArithmeticError,  # OverflowError (timestamps, ints), decimal.InvalidOperation
    MemoryError,
    RecursionError,
    struct.error,
)
_MAX_REASON: Final = 300


# --------------------------------------------------------------------------------------------
# Errors


class DecodeError(Exception):
    """The record cannot be decoded: a permanent problem of the record (dead-letter, stage DECODE)."""


class UnknownSchemaError(DecodeError):
    """The registry does not know the schema id the record was written with."""

    def __init__(self, schema_id: int) -> None:
        self.schema_id = schema_id
        super().__init__(f"schema id {schema_id} is not known to the schema registry")


class RegistryUnavailable(Exception):
    """The registry cannot answer now (network, timeout, 5xx, 429, ...): retry, never dead-letter."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class RegistryAuthError(RegistryUnavailable):
    """401/403: a credentials problem, not a data problem. Retried like an outage, but worth a loud log."""


class RegistryError(Exception):
    """The registry refused a write or lookup for good (e.g. 409 incompatible, 422 invalid schema)."""

    def __init__(self, message: str, status: int | None = None, error_code: int | None = None) -> None:
        self.status = status
        self.error_code = error_code
        super().__init__(message)


class InvalidSchemaError(ValueError):
    """A schema that is not valid Avro."""


class SchemaFileError(ValueError):
    """A schema reference that cannot be loaded; the message names the reference and the problem."""


def _short(text: object, limit: int = _MAX_REASON) -> str:
    s = str(text)
    return s if len(s) <= limit else s[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Schemas


def _check_structure(node: Any, where: str) -> None:
    """What fastavro lets through but every other Avro implementation rejects."""
    if isinstance(node, list):
        for i, branch in enumerate(node):
            _check_structure(branch, f"{where}[{i}]")
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind in ("record", "error"):
            fields = node.get("fields")
            if not isinstance(fields, list):
                raise InvalidSchemaError(f"{where}: record {node.get('name')!r} needs a `fields` list")
            for field in fields:
                if not isinstance(field, dict) or not isinstance(field.get("name"), str):
                    raise InvalidSchemaError(f"{where}: every field of {node.get('name')!r} needs a name")
                if "type" not in field:
                    raise InvalidSchemaError(f"{where}.{field['name']}: field has no `type`")
                _check_structure(field["type"], f"{where}.{field['name']}")
        elif kind == "array":
            _check_structure(node.get("items"), f"{where}[]")
        elif kind == "map":
            _check_structure(node.get("values"), f"{where}{{}}")
        elif isinstance(kind, dict | list):
            _check_structure(kind, where)


def parse(schema: Mapping[str, Any]) -> Any:
    """fastavro.parse_schema, with every failure as InvalidSchemaError (a ValueError)."""
    plain = dict(schema)
    _check_structure(plain, "schema")
    try:
        return fastavro.parse_schema(plain)
    except (SchemaParseException, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidSchemaError(_short(exc) or type(exc).__name__) from None


def schema_name(schema: Mapping[str, Any]) -> str:
    """The full name of a named schema ("com.operator.events.Bet"), else its type."""
    name = schema.get("name")
    if not isinstance(name, str):
        return str(schema.get("type", "?"))
    namespace = schema.get("namespace")
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _schema_candidates(ref: str, base_dirs: Sequence[Path]) -> list[Path]:
    path = Path(ref).expanduser()
    if path.is_absolute():
        return [path]
    roots = [*base_dirs, Path.cwd()]
    candidates = [root / path for root in roots]
    if len(path.parts) == 1:  # a bare name: "bet" or "bet.avsc"
        file_name = path.name if path.suffix == ".avsc" else f"{path.name}.avsc"
        candidates += [root / "schemas" / file_name for root in roots]
        candidates.append(BUNDLED_SCHEMAS_DIR / file_name)
    return candidates


def load_schema(ref: str, base_dirs: Sequence[Path] = ()) -> dict[str, Any]:
    """Find, read and check an Avro schema file; returns the JSON (not parsed).

    Lookup: `ref` as a path (absolute, or relative to each of `base_dirs`, then the working
    directory); for a bare name ("bet", "bet.avsc"), `schemas/<name>.avsc` under the same roots,
    then the copy bundled with the package.
    """
    if not ref or not ref.strip():
        raise SchemaFileError("schema reference is empty")
    candidates = _schema_candidates(ref, base_dirs)
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        tried = ", ".join(dict.fromkeys(str(p) for p in candidates))
        raise SchemaFileError(f"schema {ref!r}: file not found (looked at {tried})")
    try:
        text = found.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise SchemaFileError(f"schema {ref!r}: cannot read {found} ({reason})") from None
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaFileError(
            f"schema {ref!r}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(schema, dict) or schema.get("type") not in ("record", "error"):
        raise SchemaFileError(
            f"schema {ref!r}: must be an Avro record schema (a JSON object with type record)"
        )
    try:
        parse(schema)
    except InvalidSchemaError as exc:
        raise SchemaFileError(f"schema {ref!r}: invalid Avro schema: {exc}") from None
    return schema


# --------------------------------------------------------------------------------------------
# Schema references (Confluent 5.5+): inline the referenced named types so every schema handed
# out is self-contained, which is what fastavro and the mapping checks need.

_PRIMITIVES: Final = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED: Final = frozenset({"record", "error", "enum", "fixed"})


def _full_name(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _inline_references(schema: Any, definitions: Mapping[str, Any]) -> Any:
    defined: set[str] = set()

    def walk(node: Any, namespace: str) -> Any:
        if isinstance(node, str):
            if node in _PRIMITIVES:
                return node
            full = _full_name(node, namespace)
            if full in defined or node in defined:
                return node
            definition = definitions.get(full, definitions.get(node))
            if definition is None or not isinstance(definition, dict):
                return node
            # Pin its namespace: inlined into another namespace, a short name would change meaning.
            pinned = dict(definition)
            own = schema_name(pinned)
            pinned["namespace"] = own.rpartition(".")[0]
            pinned["name"] = own.rpartition(".")[2]
            return walk(pinned, namespace)
        if isinstance(node, list):
            return [walk(branch, namespace) for branch in node]
        if not isinstance(node, dict):
            return node
        kind = node.get("type")
        out = dict(node)
        if kind in _NAMED and isinstance(node.get("name"), str):
            full = _full_name(node["name"], node.get("namespace") or namespace)
            if full in defined:  # a shared type reached twice through different references
                return full
            defined.add(full)
            inner_ns = full.rpartition(".")[0]
            if kind in ("record", "error") and isinstance(node.get("fields"), list):
                out["fields"] = [
                    {**f, "type": walk(f.get("type"), inner_ns)} if isinstance(f, dict) else f
                    for f in node["fields"]
                ]
            return out
        if kind == "array":
            out["items"] = walk(node.get("items"), namespace)
        elif kind == "map":
            out["values"] = walk(node.get("values"), namespace)
        elif isinstance(kind, dict | list):
            out["type"] = walk(kind, namespace)
        return out

    return walk(schema, "")


# --------------------------------------------------------------------------------------------
# Schema Registry client

_CONTENT_TYPE: Final = "application/vnd.schemaregistry.v1+json"
_ACCEPT: Final = (
    "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json"
)
_TRANSIENT_STATUS: Final = frozenset({408, 425, 429})
_SUPPORTED_PROPERTIES: Final = (
    "basic.auth.user.info",
    "basic.auth.credentials.source",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
)
_MAX_REFERENCE_DEPTH: Final = 16
_MAX_UNKNOWN_IDS: Final = 10_000


class _BasicAuth(httpx.Auth):
    """Basic auth whose repr never shows the password."""

    def __init__(self, user: str, password: str) -> None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._header = f"Basic {token}"

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "_BasicAuth(***)"


def _client_options(
    url: str, properties: Mapping[str, object]
) -> tuple[str, httpx.Auth | None, ssl.SSLContext | None]:
    """(url without credentials, auth, TLS context) from the URL and the Confluent-style properties."""
    unknown = sorted(k for k in properties if k not in _SUPPORTED_PROPERTIES)
    if unknown:
        raise ValueError(
            f"unsupported schema registry properties: {', '.join(unknown)} "
            f"(supported: {', '.join(_SUPPORTED_PROPERTIES)})"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("schema registry url must be http(s)://host[:port][/path]")
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname:  # IPv6 literal
        netloc = f"[{parts.hostname}]" + ("" if parts.port is None else f":{parts.port}")
    clean_url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))

    source = str(properties.get("basic.auth.credentials.source", "USER_INFO")).upper()
    auth: httpx.Auth | None = None
    if source == "URL":
        if parts.username is None:
            raise ValueError("basic.auth.credentials.source is URL but the url has no user:password@")
        auth = _BasicAuth(unquote(parts.username), unquote(parts.password or ""))
    elif source == "USER_INFO":
        info = properties.get("basic.auth.user.info")
        if info is not None:
            user, sep, password = str(info).partition(":")
            if not sep or not user:
                raise ValueError("basic.auth.user.info must be user:password")
            auth = _BasicAuth(user, password)
        elif parts.username is not None:
            auth = _BasicAuth(unquote(parts.username), unquote(parts.password or ""))
    else:
        raise ValueError(f"basic.auth.credentials.source must be USER_INFO or URL (got {source!r})")

    context: ssl.SSLContext | None = None
    ca, cert, key = (properties.get(k) for k in _SUPPORTED_PROPERTIES[2:])
    if ca is not None or cert is not None:
        try:
            context = ssl.create_default_context(cafile=None if ca is None else str(ca))
            if cert is not None:
                context.load_cert_chain(str(cert), None if key is None else str(key))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"schema registry TLS files cannot be loaded: {_short(exc)}") from None
    elif key is not None:
        raise ValueError("ssl.key.location needs ssl.certificate.location")
    return clean_url, auth, context


class SchemaRegistryClient:
    """A small, thread-safe Confluent Schema Registry client (REST, Avro only).

    Schemas by id never change, so they are cached forever. Ids the registry does not know are
    remembered for `unknown_id_ttl_s`, so a burst of records with a bogus id does not become a
    burst of requests.
    """

    def __init__(
        self,
        url: str,
        properties: Mapping[str, object] | None = None,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        *,
        unknown_id_ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url, auth, context = _client_options(url, properties or {})
        self._unknown_ttl = unknown_id_ttl_s
        self._clock = clock
        self._http = httpx.Client(
            base_url=self.url,
            auth=auth,
            timeout=timeout_s,
            transport=transport,
            verify=context if context is not None else True,
            headers={"Accept": _ACCEPT},
            follow_redirects=False,
        )
        self._lock = threading.Lock()
        self._id_locks: dict[int, threading.Lock] = {}
        self._schemas: dict[int, dict[str, Any]] = {}
        self._unknown: dict[int, float] = {}

    def __repr__(self) -> str:
        return f"SchemaRegistryClient(url={self.url!r})"

    def __enter__(self) -> SchemaRegistryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- public API ----------------------------------------------------------------------------

    def get_schema(self, schema_id: int) -> dict[str, Any]:
        """The writer schema with this id (references inlined). A fresh copy: callers may mutate it."""
        cached = self._schemas.get(schema_id)
        if cached is not None:
            return copy.deepcopy(cached)
        with self._lock:
            id_lock = self._id_locks.setdefault(schema_id, threading.Lock())
        # One request per id even when several threads miss the cache at the same moment.
        try:
            with id_lock:
                cached = self._schemas.get(schema_id)
                if cached is None:
                    cached = self._fetch_schema(schema_id)
        finally:
            with self._lock:
                self._id_locks.pop(schema_id, None)
        return copy.deepcopy(cached)

    def register(
        self, subject: str, schema: Mapping[str, Any], references: Sequence[Mapping[str, Any]] = ()
    ) -> int:
        """Register `schema` under `subject` (idempotent: an existing identical schema keeps its id)."""
        body: dict[str, Any] = {"schema": json.dumps(schema, separators=(",", ":"))}
        if references:
            body["references"] = [dict(r) for r in references]
        response = self._request("POST", f"/subjects/{quote(subject, safe='')}/versions", body)
        if response.status_code != 200:
            self._raise_for(response, f"register subject {subject!r}")
        payload = self._json(response)
        schema_id = payload.get("id") if isinstance(payload, dict) else None
        if not isinstance(schema_id, int):
            raise RegistryUnavailable(f"schema registry {self.url}: unexpected answer to register")
        if not references:
            with self._lock:
                self._schemas.setdefault(schema_id, json.loads(body["schema"]))
        return schema_id

    def latest(self, subject: str) -> tuple[int, dict[str, Any]] | None:
        """(id, schema) of the subject's latest version, or None when the subject does not exist."""
        response = self._request("GET", f"/subjects/{quote(subject, safe='')}/versions/latest")
        if response.status_code == 404 and _error_code(response) in (40401, 40402):
            return None
        if response.status_code != 200:
            self._raise_for(response, f"latest version of subject {subject!r}")
        payload = self._json(response)
        schema_id = payload.get("id") if isinstance(payload, dict) else None
        if not isinstance(schema_id, int):
            raise RegistryUnavailable(
                f"schema registry {self.url}: unexpected answer for subject {subject!r}"
            )
        schema = self._resolve(payload, f"subject {subject!r}", 0)
        with self._lock:
            self._schemas.setdefault(schema_id, schema)
        return schema_id, copy.deepcopy(schema)

    def subjects(self) -> list[str]:
        """All subjects; also a cheap reachability and credentials check."""
        response = self._request("GET", "/subjects")
        if response.status_code != 200:
            self._raise_for(response, "list subjects")
        payload = self._json(response)
        if not isinstance(payload, list):
            raise RegistryUnavailable(f"schema registry {self.url}: unexpected answer to list subjects")
        return [str(s) for s in payload]

    # -- internals -----------------------------------------------------------------------------

    def _fetch_schema(self, schema_id: int) -> dict[str, Any]:
        now = self._clock()
        expiry = self._unknown.get(schema_id)
        if expiry is not None and now < expiry:
            raise UnknownSchemaError(schema_id)
        response = self._request("GET", f"/schemas/ids/{schema_id}")
        if response.status_code == 404 and _error_code(response) == 40403:
            with self._lock:
                if len(self._unknown) >= _MAX_UNKNOWN_IDS:
                    self._unknown.clear()
                self._unknown[schema_id] = now + self._unknown_ttl
            raise UnknownSchemaError(schema_id)
        if response.status_code != 200:
            self._raise_for(response, f"schema id {schema_id}")
        schema = self._resolve(self._json(response), f"schema id {schema_id}", 0)
        with self._lock:
            self._unknown.pop(schema_id, None)
            self._schemas[schema_id] = schema
        return schema

    def _resolve(self, payload: Any, what: str, depth: int) -> dict[str, Any]:
        """The schema of a registry answer, with its references inlined."""
        if not isinstance(payload, dict) or not isinstance(payload.get("schema"), str):
            raise RegistryUnavailable(f"schema registry {self.url}: unexpected answer for {what}")
        schema_type = payload.get("schemaType", "AVRO")
        if schema_type != "AVRO":
            raise DecodeError(f"{what} is a {schema_type} schema, not Avro")
        try:
            schema = json.loads(payload["schema"])
        except json.JSONDecodeError:
            raise DecodeError(f"{what}: the registry holds a schema that is not valid JSON") from None
        references = payload.get("references") or []
        if not isinstance(references, list) or not all(isinstance(r, dict) for r in references):
            raise DecodeError(f"{what}: malformed schema references {_short(references, 100)}")
        if references:
            if depth >= _MAX_REFERENCE_DEPTH:
                raise DecodeError(f"{what}: schema references nest deeper than {_MAX_REFERENCE_DEPTH}")
            definitions = {str(ref.get("name")): self._reference(ref, what, depth) for ref in references}
            schema = _inline_references(schema, definitions)
        if not isinstance(schema, dict):
            raise DecodeError(f"{what} is not an Avro record schema")
        return schema

    def _reference(self, ref: Mapping[str, Any], what: str, depth: int) -> dict[str, Any]:
        if not {"name", "subject", "version"} <= set(ref):
            raise DecodeError(f"{what}: malformed schema reference {_short(ref, 100)}")
        subject, version = str(ref["subject"]), str(ref["version"])
        response = self._request("GET", f"/subjects/{quote(subject, safe='')}/versions/{quote(version)}")
        if response.status_code == 404 and _error_code(response) in (40401, 40402):
            raise DecodeError(f"{what}: referenced subject {subject!r} version {version} does not exist")
        if response.status_code != 200:
            self._raise_for(response, f"reference {subject!r} of {what}")
        return self._resolve(self._json(response), f"reference {ref['name']!r} of {what}", depth + 1)

    def _request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> httpx.Response:
        try:
            if body is None:
                return self._http.request(method, path)
            return self._http.request(
                method, path, content=json.dumps(body).encode(), headers={"Content-Type": _CONTENT_TYPE}
            )
        except httpx.TransportError as exc:
            # The exception text may carry the URL; ours has no credentials in it.
            raise RegistryUnavailable(
                f"schema registry {self.url} unreachable: {type(exc).__name__}: {_short(exc, 200)}"
            ) from None

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RegistryUnavailable(
                f"schema registry {self.url}: HTTP {response.status_code} answer is not JSON",
                response.status_code,
            ) from None

    def _raise_for(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        code = _error_code(response)
        message = _error_message(response)
        detail = f"schema registry {self.url}: {what}: HTTP {status}" + (f" ({message})" if message else "")
        if status in (401, 403):
            raise RegistryAuthError(detail + "; check schema_registry.properties credentials", status)
        if status >= 500 or status in _TRANSIENT_STATUS:
            raise RegistryUnavailable(detail, status)
        if code is None:
            # Not a Schema Registry answer (a proxy, a wrong path): a configuration problem.
            raise RegistryUnavailable(detail + "; is schema_registry.url right?", status)
        raise RegistryError(detail, status, code)


def _error_code(response: httpx.Response) -> int | None:
    try:
        payload = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    code = payload.get("error_code") if isinstance(payload, dict) else None
    return code if isinstance(code, int) else None


def _error_message(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    message = payload.get("message") if isinstance(payload, dict) else None
    return _short(message, 200) if isinstance(message, str) else ""


# --------------------------------------------------------------------------------------------
# Framing and decoding


def split_confluent_frame(value: bytes | None) -> tuple[int, bytes]:
    """(schema id, Avro payload) of a Confluent wire-format value; DecodeError when it is not one."""
    if not value:
        raise DecodeError("empty value")
    if value[0] != MAGIC_BYTE:
        raise DecodeError(
            f"unknown magic byte 0x{value[0]:02x} (the Confluent wire format starts with 0x00): "
            "not written by a Schema Registry serializer"
        )
    if len(value) < _HEADER_SIZE:
        raise DecodeError(f"value of {len(value)} bytes is shorter than the 5-byte Confluent header")
    return int.from_bytes(value[1:_HEADER_SIZE], "big"), bytes(value[_HEADER_SIZE:])


class RecordDecoder(Protocol):
    def decode(self, value: bytes | None) -> dict[str, Any]: ...


class _Plan:
    """Everything needed to read records of one writer schema, prepared once."""

    __slots__ = ("reader", "reader_label", "writer", "writer_label")

    def __init__(self, writer: Any, writer_label: str, reader: Any, reader_label: str) -> None:
        self.writer = writer
        self.writer_label = writer_label
        # fastavro compares writer and reader on every call; None skips that and the resolution.
        self.reader = None if reader is None or reader == writer else reader
        self.reader_label = reader_label


def _read(plan: _Plan, value: bytes, offset: int) -> dict[str, Any]:
    stream = BytesIO(value)  # shares the bytes object's buffer: no copy
    stream.seek(offset)
    try:
        datum = fastavro.schemaless_reader(stream, plan.writer, plan.reader)
    except SchemaResolutionError as exc:
        raise DecodeError(
            f"writer schema {plan.writer_label} cannot be read as reader schema {plan.reader_label}: "
            f"{_short(exc, 160)}"
        ) from None
    except _READ_ERRORS as exc:
        reason = str(exc) or "unexpected end of data"
        raise DecodeError(
            f"invalid Avro for {plan.writer_label}: {type(exc).__name__}: {_short(reason, 200)}"
        ) from None
    left = len(value) - stream.tell()
    if left:
        raise DecodeError(f"{left} trailing bytes after the {plan.writer_label} record")
    if type(datum) is not dict:
        raise DecodeError(f"{plan.writer_label} does not describe a record")
    return datum


def _parse_reader(reader_schema: Mapping[str, Any] | None) -> tuple[Any, str]:
    if reader_schema is None:
        return None, ""
    return parse(reader_schema), f"{schema_name(reader_schema)} (reader)"


class ConfluentAvroDecoder:
    """Decodes Confluent wire-format values; the writer schema comes from the registry by id.

    Several writer versions on one topic are fine: each id gets its own prepared plan, built once.
    With a reader schema, every record comes out in the reader's shape (Avro schema resolution).
    """

    def __init__(
        self, registry: SchemaRegistryClient, reader_schema: Mapping[str, Any] | None = None
    ) -> None:
        self._registry = registry
        self._reader, self._reader_label = _parse_reader(reader_schema)
        self._plans: dict[int, _Plan | DecodeError] = {}
        self._lock = threading.Lock()

    def decode(self, value: bytes | None) -> dict[str, Any]:
        if not value or len(value) < _HEADER_SIZE or value[0] != MAGIC_BYTE:
            split_confluent_frame(value)  # raises the precise framing error
        assert value is not None
        schema_id = int.from_bytes(value[1:_HEADER_SIZE], "big")
        plan = self._plans.get(schema_id)
        if plan is None:
            plan = self._plan(schema_id)
        if isinstance(plan, DecodeError):
            raise DecodeError(str(plan))
        return _read(plan, value, _HEADER_SIZE)

    def _plan(self, schema_id: int) -> _Plan | DecodeError:
        with self._lock:
            plan = self._plans.get(schema_id)
            if plan is not None:
                return plan
            # UnknownSchemaError and RegistryUnavailable propagate uncached: the registry client
            # decides when to ask again.
            writer_schema = self._registry.get_schema(schema_id)
            label = f"{schema_name(writer_schema)} (schema id {schema_id})"
            built: _Plan | DecodeError
            try:
                built = _Plan(parse(writer_schema), label, self._reader, self._reader_label)
            except InvalidSchemaError as exc:
                # The registry's copy never changes, so neither will this verdict.
                built = DecodeError(f"writer schema {label} is not usable: {exc}")
            self._plans[schema_id] = built
            return built


class RawAvroDecoder:
    """Decodes plain Avro binary values written with a known writer schema (format `avro`)."""

    def __init__(
        self, writer_schema: Mapping[str, Any], reader_schema: Mapping[str, Any] | None = None
    ) -> None:
        reader, reader_label = _parse_reader(reader_schema)
        self._plan = _Plan(
            parse(writer_schema), f"{schema_name(writer_schema)} (writer)", reader, reader_label
        )

    def decode(self, value: bytes | None) -> dict[str, Any]:
        if not value:
            raise DecodeError("empty value")
        return _read(self._plan, value, 0)


# --------------------------------------------------------------------------------------------
# Encoding (samples, demo, tests)


def encode_raw(parsed_schema: Any, record: Mapping[str, Any]) -> bytes:
    out = BytesIO()
    fastavro.schemaless_writer(out, parsed_schema, record)
    return out.getvalue()


def encode_confluent(schema_id: int, parsed_schema: Any, record: Mapping[str, Any]) -> bytes:
    if not 0 <= schema_id <= _MAX_SCHEMA_ID:
        raise ValueError(f"schema id {schema_id} does not fit the 4-byte header")
    out = BytesIO()
    out.write(bytes((MAGIC_BYTE,)) + schema_id.to_bytes(4, "big"))
    fastavro.schemaless_writer(out, parsed_schema, record)
    return out.getvalue()
