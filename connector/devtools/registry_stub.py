"""A minimal Confluent Schema Registry (the REST subset the connector uses), on loopback.

For the one-command demo and as the tests' Schema Registry double. Standard library only, in
memory, thread-safe. Ids are global and stable: registering an identical schema again, under any
subject, returns the id it already has, as the real registry does.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import fastavro
from fastavro.schema import SchemaParseException

from connector.runtime.httpserver import BackgroundHTTPServer, QuietHandler

__all__ = ["RegistryStub"]

CONTENT_TYPE: Final = "application/vnd.schemaregistry.v1+json"


class _Problem(ValueError):
    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


def _subject_not_found(subject: str) -> _Problem:
    return _Problem(404, 40401, f"Subject '{subject}' not found.")


class RegistryStub:
    """`with RegistryStub() as registry: ... registry.url ...`"""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, credentials: tuple[str, str] | None = None
    ) -> None:
        self._host = host
        self._port = port
        self._expected_auth = (
            None
            if credentials is None
            else "Basic " + base64.b64encode(":".join(credentials).encode()).decode("ascii")
        )
        self._lock = threading.Lock()
        # id -> (canonical schema text, references)
        self._by_id: dict[int, tuple[str, list[dict[str, Any]]]] = {}
        self._id_by_key: dict[str, int] = {}
        self._subjects: dict[str, list[int]] = {}  # subject -> ids, index = version - 1
        self._server: BackgroundHTTPServer | None = None
        self.unavailable = False
        self.request_count = 0
        # (method, path) of recent requests, for tests; bounded for long demo runs.
        self.requests: deque[tuple[str, str]] = deque(maxlen=10_000)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> RegistryStub:
        if self._server is None:
            server = BackgroundHTTPServer(self._host, self._port, _handler_for(self), name="registry-stub")
            self._server = server.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> RegistryStub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._started().port

    @property
    def url(self) -> str:
        return self._started().url

    def _started(self) -> BackgroundHTTPServer:
        if self._server is None:
            raise RuntimeError("RegistryStub is not started")
        return self._server

    # -- the registry --------------------------------------------------------------------------

    def register(
        self, subject: str, schema: Mapping[str, Any] | str, references: Sequence[Mapping[str, Any]] = ()
    ) -> int:
        """Register in-process (no HTTP); the same id for an identical schema. ValueError if invalid."""
        text = schema if isinstance(schema, str) else json.dumps(schema)
        return self._register(subject, text, [dict(r) for r in references])

    def subjects(self) -> list[str]:
        with self._lock:
            return sorted(self._subjects)

    def _register(self, subject: str, schema_text: str, references: list[dict[str, Any]]) -> int:
        try:
            parsed = json.loads(schema_text)
        except json.JSONDecodeError as exc:
            raise _Problem(422, 42201, f"Invalid schema: {exc.msg}") from None
        if not references:
            # With references the named types live elsewhere; only the real registry resolves them.
            try:
                fastavro.parse_schema(parsed)
            except (SchemaParseException, ValueError, TypeError, KeyError, AttributeError) as exc:
                raise _Problem(422, 42201, f"Invalid schema: {exc}") from None
        canonical = json.dumps(parsed, sort_keys=True, separators=(",", ":"))
        key = json.dumps([canonical, references], sort_keys=True)
        with self._lock:
            schema_id = self._id_by_key.get(key)
            if schema_id is None:
                schema_id = len(self._by_id) + 1
                self._by_id[schema_id] = (canonical, references)
                self._id_by_key[key] = schema_id
            versions = self._subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id

    def _version(self, subject: str, version: str) -> dict[str, Any]:
        with self._lock:
            versions = self._subjects.get(subject)
            if versions is None:
                raise _subject_not_found(subject)
            if version == "latest":
                number = len(versions)
            elif version.isdigit() and 1 <= int(version) <= len(versions):
                number = int(version)
            else:
                raise _Problem(404, 40402, f"Version {version} not found.")
            schema_id = versions[number - 1]
            return self._describe(subject, number, schema_id)

    def _describe(self, subject: str, version: int, schema_id: int) -> dict[str, Any]:
        text, references = self._by_id[schema_id]
        answer: dict[str, Any] = {"subject": subject, "version": version, "id": schema_id, "schema": text}
        if references:
            answer["references"] = references
        return answer

    def _versions_of(self, schema_id: int) -> list[dict[str, Any]]:
        with self._lock:
            if schema_id not in self._by_id:
                raise _Problem(404, 40403, "Schema not found")
            return [
                {"subject": subject, "version": ids.index(schema_id) + 1}
                for subject, ids in sorted(self._subjects.items())
                if schema_id in ids
            ]

    def _lookup(self, subject: str, schema_text: str, references: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            canonical = json.dumps(json.loads(schema_text), sort_keys=True, separators=(",", ":"))
        except json.JSONDecodeError:
            raise _Problem(422, 42201, "Invalid schema") from None
        key = json.dumps([canonical, references], sort_keys=True)
        with self._lock:
            versions = self._subjects.get(subject)
            if versions is None:
                raise _subject_not_found(subject)
            schema_id = self._id_by_key.get(key)
            if schema_id is None or schema_id not in versions:
                raise _Problem(404, 40403, "Schema not found")
            return self._describe(subject, versions.index(schema_id) + 1, schema_id)

    # -- HTTP ----------------------------------------------------------------------------------

    def _route(self, method: str, path: str, authorization: str | None, body: bytes) -> tuple[int, Any]:
        with self._lock:
            self.request_count += 1
            self.requests.append((method, path))
            unavailable = self.unavailable
        if unavailable:
            return 503, {"error_code": 50003, "message": "Schema Registry is unavailable (stub fault)"}
        if self._expected_auth is not None and authorization != self._expected_auth:
            return 401, {"error_code": 401, "message": "Unauthorized"}
        parts = [unquote(p) for p in urlsplit(path).path.strip("/").split("/") if p]
        try:
            return 200, self._dispatch(method, parts, body)
        except _Problem as problem:
            return problem.status, {"error_code": problem.error_code, "message": problem.message}

    def _dispatch(self, method: str, parts: list[str], body: bytes) -> Any:
        if method == "GET":
            match parts:
                case []:
                    return {}
                case ["config"]:
                    return {"compatibilityLevel": "BACKWARD"}
                case ["subjects"]:
                    return self.subjects()
                case ["schemas", "ids", raw_id] if raw_id.isdigit():
                    with self._lock:
                        found = self._by_id.get(int(raw_id))
                    if found is None:
                        raise _Problem(404, 40403, "Schema not found")
                    answer: dict[str, Any] = {"schema": found[0]}
                    if found[1]:
                        answer["references"] = found[1]
                    return answer
                case ["schemas", "ids", raw_id, "versions"] if raw_id.isdigit():
                    return self._versions_of(int(raw_id))
                case ["subjects", subject, "versions"]:
                    with self._lock:
                        versions = self._subjects.get(subject)
                        if versions is None:
                            raise _subject_not_found(subject)
                        return list(range(1, len(versions) + 1))
                case ["subjects", subject, "versions", version]:
                    return self._version(subject, version)
        elif method == "POST":
            match parts:
                case ["subjects", subject, "versions"]:
                    text, references = self._schema_request(body)
                    return {"id": self._register(subject, text, references)}
                case ["subjects", subject]:
                    text, references = self._schema_request(body)
                    return self._lookup(subject, text, references)
        raise _Problem(404, 404, "HTTP 404 Not Found")

    @staticmethod
    def _schema_request(body: bytes) -> tuple[str, list[dict[str, Any]]]:
        try:
            payload = json.loads(body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _Problem(400, 400, "Unrecognized request body: not JSON") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("schema"), str):
            raise _Problem(422, 42201, "Either the input schema or one its references is invalid")
        schema_type = payload.get("schemaType", "AVRO")
        if schema_type != "AVRO":
            raise _Problem(422, 42201, f"this stub only stores AVRO schemas (got {schema_type})")
        references = payload.get("references") or []
        if not isinstance(references, list) or not all(isinstance(r, dict) for r in references):
            raise _Problem(422, 42201, "Invalid references")
        return payload["schema"], references


def _handler_for(stub: RegistryStub) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            status, payload = stub._route(method, self.path, self.headers.get("Authorization"), body)
            self.reply(status, json.dumps(payload).encode(), CONTENT_TYPE)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

    return Handler
