"""The connector's exit codes, its dead-letter stages and its one error tree.

Exit codes are a contract with operators and scripts: 0 success, 1 a runtime failure (for `send`,
at least one record rejected or invalid), 2 bad usage or bad configuration, 130 interrupted.

Every exception the connector raises on purpose derives from `ConnectorError`. The tree has two
control-flow signals: a `RecordError` is about one record and sends it to the dead-letter topic
at its `stage`; everything else is about the connector's surroundings (configuration, registry,
API, broker) and is retried, paused on or reported, never dead-lettered.

    ConnectorError
    ├── ConfigError               bad configuration: exit 2, one line per problem naming the key path
    ├── TokenFileError            auth_token_file missing, unreadable or empty (names the path only)
    ├── RecordError               one record can never be delivered: dead-letter it at `stage`
    │   ├── DecodeError           DECODE: the bytes are not a record of any known writer schema
    │   │   └── UnknownSchemaError    the registry does not know the record's schema id
    │   ├── MappingError          MAP: the mapping cannot turn the record into an ingest record
    │   └── NonFiniteNumberError  MAP: a mapped NaN or ±Infinity, which JSON cannot carry
    ├── UnusableMappingError      the mapping cannot apply to a writer schema of the topic's own
    │                             subject: that topic pauses (readiness `mapping`), nothing dead-lettered
    ├── SchemaError               a schema that cannot be used
    │   ├── InvalidSchemaError    not valid Avro
    │   └── SchemaFileError       a schema reference that cannot be loaded
    ├── RegistryError             the Schema Registry refused for good (409 incompatible, 422 invalid)
    ├── RegistryUnavailable       the Schema Registry cannot answer now: stall and retry
    │   └── RegistryAuthError     401/403 from the registry: retried like an outage, logged loudly
    ├── IngestError               an upload stopped without a verdict per record
    │   ├── CredentialsError      401/403/404/405/3xx: pause everything, unready, probe slowly
    │   ├── RetryBudgetExceeded   transient failures outlasted retry.max_elapsed_s: kept uncommitted
    │   └── UploadCancelled       the client closed while the upload waited to retry
    ├── KafkaPortError            a broker-side failure
    │   ├── CommitError           the commit was not stored
    │   ├── FatalKafkaError       the client cannot continue
    │   └── DeliveryError         a produced record was not acknowledged
    │       └── RecordTooLargeError   ... because it is larger than the producer's or topic's limit
    ├── WorkerPoolError           the transform worker processes cannot start or run: exit 1
    └── PipelineStopped           the loop unwinds after a fatal condition; the exit code says why

Records the API refuses for their content (400/422 narrowed to the record) are not exceptions:
the ingest client returns them as rejections, and the pipeline dead-letters them at stage UPLOAD.
Records that fail validation come back as a list of field errors and go out at stage VALIDATE.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable
from typing import ClassVar


class ExitCode(enum.IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    GAVE_UP = 3  # send: a request kept failing for --max-elapsed; the rest of the file was not sent
    INTERRUPTED = 130  # Ctrl-C: the shell's 128 + SIGINT


class Stage(enum.StrEnum):
    """Where a record failed; written to the dead-letter header `__connect.errors.stage`."""

    DECODE = "DECODE"
    MAP = "MAP"
    VALIDATE = "VALIDATE"
    UPLOAD = "UPLOAD"


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose."""


class ConfigError(ConnectorError):
    """Bad configuration: one line per problem, each naming the key path."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class TokenFileError(ConnectorError, RuntimeError):
    """The token file is missing, unreadable or empty. Names the path, never the contents."""

    def __init__(self, path: str | os.PathLike[str], reason: str = "missing or empty") -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"token file {self.path!r}: {reason}")


class RecordError(ConnectorError):
    """A problem of one record: it goes to the dead-letter topic at `stage` and the stream moves on."""

    stage: ClassVar[Stage]


class DecodeError(RecordError):
    """The record cannot be decoded: a permanent problem of the record."""

    stage = Stage.DECODE


class UnknownSchemaError(DecodeError):
    """The registry does not know the schema id the record was written with."""

    def __init__(self, schema_id: int) -> None:
        self.schema_id = schema_id
        super().__init__(f"schema id {schema_id} is not known to the schema registry")


class MappingError(RecordError):
    """A record (or a mapping constant) that cannot be turned into an ingest record.

    `field` is the target field; `rule` says which kind of problem it is (for dead-letter
    reasons and metrics). Messages name fields and types, never values: those may be personal data.
    """

    stage = Stage.MAP

    def __init__(self, field: str, message: str, *, rule: str = "mapping") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.rule = rule


class NonFiniteNumberError(RecordError, ValueError):
    """NaN or ±Infinity in the value: JSON.stringify would silently write ``null``. Raised when a
    mapped record is serialized, so it is the mapping's failure."""

    stage = Stage.MAP


class UnusableMappingError(ConnectorError):
    """The mapping cannot apply to a writer schema registered under the topic's own subject: a
    configuration error, not poison. The topic pauses until the mapping is fixed and the pod
    restarts; its records are neither dead-lettered nor committed."""

    def __init__(self, topic: str, schema_id: int, field: str, message: str) -> None:
        self.topic = topic
        self.schema_id = schema_id
        self.field = field
        self.message = message
        where = f"field {field}: " if field else ""
        super().__init__(f"topic {topic}, schema id {schema_id}: {where}{message}")


class SchemaError(ConnectorError, ValueError):
    """A schema that cannot be used; the message names the schema and the problem."""


class InvalidSchemaError(SchemaError):
    """A schema that is not valid Avro."""


class SchemaFileError(SchemaError):
    """A schema reference that cannot be loaded; the message names the reference and the problem."""


class RegistryError(ConnectorError):
    """The registry refused a write or lookup for good (e.g. 409 incompatible, 422 invalid schema)."""

    def __init__(self, message: str, status: int | None = None, error_code: int | None = None) -> None:
        self.status = status
        self.error_code = error_code
        super().__init__(message)


class RegistryUnavailable(ConnectorError):
    """The registry cannot answer now (network, timeout, 5xx, 429, ...): retry, never dead-letter."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class RegistryAuthError(RegistryUnavailable):
    """401/403: a credentials problem, not a data problem. Retried like an outage, but worth a loud log."""


class IngestError(ConnectorError):
    """Base of the errors that stop an upload without a per-record verdict."""


class CredentialsError(IngestError):
    """401/403/404/405/3xx: bad token, signature, ids or base URL. Never a data problem."""

    def __init__(self, status: int, endpoint: str, detail: str) -> None:
        self.status = status
        self.endpoint = endpoint
        self.detail = detail
        self.wrong_base_url = status in (404, 405) or 300 <= status < 400
        hint = "check base_url" if self.wrong_base_url else "check auth_token, account_id and workspace_id"
        super().__init__(f"ingest API answered {status} for {endpoint} ({hint}): {detail}")


class RetryBudgetExceeded(IngestError):
    """Transient failures lasted longer than retry.max_elapsed_s. The records are not dropped: the
    caller keeps them uncommitted."""


class UploadCancelled(IngestError):
    """close() was called while the upload was waiting to retry."""


class KafkaPortError(ConnectorError):
    """A broker-side failure the caller may retry (commit failed, broker unreachable...)."""


class CommitError(KafkaPortError):
    """The commit was not stored (e.g. the partition is no longer owned, or a rebalance is in progress)."""


class FatalKafkaError(KafkaPortError):
    """The client cannot continue (fatal librdkafka error, fenced producer, bad credentials)."""


class DeliveryError(KafkaPortError):
    """A produced record was not acknowledged by the broker."""


class RecordTooLargeError(DeliveryError):
    """The producer or the broker refused a record as larger than its size limit
    (`message.max.bytes`, the topic's `max.message.bytes`): sending it again cannot help."""


class WorkerPoolError(ConnectorError):
    """The transform worker processes cannot start, or a transform failed in a way that is not a
    record's fault (a bug): the connector stops."""


class PipelineStopped(ConnectorError):
    """A fatal condition: the loop stops without committing the work it could not finish."""
