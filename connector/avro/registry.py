"""The Schema Registry client: Confluent's REST API, Avro only, thread-safe, cached by id.

Connection options come from Confluent-style properties (basic auth, TLS files). Answers are
translated into the avro error families: a record's problem is a DecodeError, an outage or a
credentials problem is RegistryUnavailable, a refused write is RegistryError.
"""

from __future__ import annotations

import copy
import json
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

from connector.avro.reasons import shorten
from connector.avro.schemas import inline_references
from connector.errors import (
    DecodeError,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailable,
    UnknownSchemaError,
)

__all__ = ["SchemaRegistryClient"]

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
        auth = httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
    elif source == "USER_INFO":
        info = properties.get("basic.auth.user.info")
        if info is not None:
            user, sep, password = str(info).partition(":")
            if not sep or not user:
                raise ValueError("basic.auth.user.info must be user:password")
            auth = httpx.BasicAuth(user, password)
        elif parts.username is not None:
            auth = httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
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
            raise ValueError(f"schema registry TLS files cannot be loaded: {shorten(exc)}") from None
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
        self._subjects_of: dict[int, frozenset[str] | None] = {}

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

    def registered_under(self, schema_id: int, subject: str) -> bool:
        """Whether `subject` has a version with this schema id. Asked once per id (the id's subjects
        are kept): a writer schema is first seen once, and its answer decides what its records are."""
        with self._lock:
            cached = schema_id in self._subjects_of
            known = self._subjects_of.get(schema_id)
        if not cached:
            known = self._fetch_subjects_of(schema_id)
            with self._lock:
                self._subjects_of[schema_id] = known
        # None: the registry cannot say (it predates the endpoint); the id counts as the topic's
        # own, so a mapping problem pauses the topic rather than dead-letter what may be its data.
        return known is None or subject in known

    def _fetch_subjects_of(self, schema_id: int) -> frozenset[str] | None:
        response = self._request("GET", f"/schemas/ids/{schema_id}/versions")
        if response.status_code == 404 and _error_code(response) == 40403:
            return frozenset()
        if response.status_code in (404, 405):
            return None
        if response.status_code != 200:
            self._raise_for(response, f"subjects of schema id {schema_id}")
        payload = self._json(response)
        if not isinstance(payload, list):
            raise RegistryUnavailable(
                f"schema registry {self.url}: unexpected answer for the subjects of schema id {schema_id}"
            )
        return frozenset(str(v["subject"]) for v in payload if isinstance(v, dict) and "subject" in v)

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
            raise DecodeError(f"{what}: malformed schema references {shorten(references, 100)}")
        if references:
            if depth >= _MAX_REFERENCE_DEPTH:
                raise DecodeError(f"{what}: schema references nest deeper than {_MAX_REFERENCE_DEPTH}")
            definitions = {str(ref.get("name")): self._reference(ref, what, depth) for ref in references}
            schema = inline_references(schema, definitions)
        if not isinstance(schema, dict):
            raise DecodeError(f"{what} is not an Avro record schema")
        return schema

    def _reference(self, ref: Mapping[str, Any], what: str, depth: int) -> dict[str, Any]:
        if not {"name", "subject", "version"} <= set(ref):
            raise DecodeError(f"{what}: malformed schema reference {shorten(ref, 100)}")
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
                f"schema registry {self.url} unreachable: {type(exc).__name__}: {shorten(exc, 200)}"
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
    return shorten(message, 200) if isinstance(message, str) else ""
