"""The settings models: frozen, validated sections of the YAML configuration (see README.md).

Every rule that concerns a single value or section lives here as a pydantic validator, so its
message names the key path once connector.config.loader formats it. The loader decides which
sections a command reads and checks what spans sections.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from connector.endpoints import (
    ENDPOINT_KEYS,
    ENDPOINTS,
    HEADER_SAFE_RULE,
    MAX_RECORDS_PER_REQUEST,
    header_safe,
)

EndpointKey = Literal[
    "customers",
    "account",
    "deposit",
    "withdraw",
    "gaming-activity",
    "wallet-balance",
    "refer-friend",
    "system-events",
    "extattributes",
]
assert set(EndpointKey.__args__) == set(ENDPOINT_KEYS)  # type: ignore[attr-defined]

DEFAULT_DESTINATION = "optikpi"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


ScalarProperty = str | int | float | bool


class KafkaSettings(_Frozen):
    bootstrap_servers: Annotated[str, Field(min_length=1)]
    group_id: Annotated[str, Field(min_length=1)] = "optikpi-connector"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    # librdkafka properties, passed through (security.protocol, sasl.*, ssl.*). May hold secrets:
    # never log them.
    properties: dict[str, ScalarProperty] = Field(default_factory=dict)

    def __repr__(self) -> str:
        return f"KafkaSettings(bootstrap_servers={self.bootstrap_servers!r}, group_id={self.group_id!r})"


class SchemaRegistrySettings(_Frozen):
    url: Annotated[str, Field(pattern=r"^https?://")]
    # e.g. basic.auth.user.info; may hold secrets.
    properties: dict[str, ScalarProperty] = Field(default_factory=dict)

    def __repr__(self) -> str:
        return f"SchemaRegistrySettings(url={self.url!r})"


class DestinationSettings(_Frozen):
    # The token and ids are checked with header_safe here because signing.HmacAuth refuses anything
    # else at request time, which would surface as a traceback instead of a configuration error.
    base_url: Annotated[str, Field(pattern=r"^https?://\S+$")]
    account_id: Annotated[str, Field(min_length=1)]
    workspace_id: Annotated[str, Field(min_length=1)]
    auth_token: SecretStr | None = None
    auth_token_file: Path | None = None
    timeout_s: Annotated[float, Field(gt=0)] = 30.0
    rate_limits: dict[EndpointKey, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    max_concurrency: Annotated[int, Field(ge=1, le=256)] = 8

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("auth_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        if value is not None and not header_safe(value.get_secret_value()):
            raise ValueError(HEADER_SAFE_RULE)  # never the value: it is a secret
        return value

    @field_validator("account_id", "workspace_id")
    @classmethod
    def _id_header_safe(cls, value: str) -> str:
        if not header_safe(value):
            raise ValueError(HEADER_SAFE_RULE)
        return value

    @model_validator(mode="after")
    def _one_token(self) -> DestinationSettings:
        if (self.auth_token is None) == (self.auth_token_file is None):
            raise ValueError("set exactly one of auth_token and auth_token_file")
        return self

    def rate_limit(self, endpoint: str) -> float:
        return float(self.rate_limits.get(endpoint, ENDPOINTS[endpoint].rate_limit))  # type: ignore[call-overload]


class BatchingSettings(_Frozen):
    max_records: Annotated[int, Field(ge=1, le=MAX_RECORDS_PER_REQUEST)] = MAX_RECORDS_PER_REQUEST
    max_bytes: Annotated[int, Field(ge=1024, le=100_000_000)] = 1_000_000
    max_wait_ms: Annotated[int, Field(ge=0, le=3_600_000)] = 1000


class RetrySettings(_Frozen):
    initial_backoff_ms: Annotated[int, Field(ge=1)] = 500
    max_backoff_ms: Annotated[int, Field(ge=1)] = 60_000
    max_elapsed_s: Annotated[float, Field(ge=0)] = 0.0  # 0: retry transient errors forever
    # After this long of transient failures only, /readyz reports reason `api` (the retries go on).
    unready_after_s: Annotated[float, Field(gt=0)] = 60.0

    @model_validator(mode="after")
    def _ordered(self) -> RetrySettings:
        if self.max_backoff_ms < self.initial_backoff_ms:
            raise ValueError("max_backoff_ms must be >= initial_backoff_ms")
        return self


class DeadLetterSettings(_Frozen):
    topic: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")]
    max_ratio: Annotated[float, Field(gt=0, le=1)] = 0.5
    window: Annotated[int, Field(ge=1)] = 1000


class ServerSettings(_Frozen):
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    host: str = "0.0.0.0"


class BackpressureSettings(_Frozen):
    """Extension: bounds on what is consumed but not yet done (invariant 6)."""

    max_in_flight_records: Annotated[int, Field(ge=1)] = 20_000
    max_in_flight_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024 * 1024


class ProcessingSettings(_Frozen):
    """How many processes turn raw values into request bodies. `auto`: the usable CPUs, at most 8
    (one usable CPU means inline); 1: inline, in the consumer process; N: N worker processes."""

    workers: Literal["auto"] | int = "auto"

    @field_validator("workers", mode="before")
    @classmethod
    def _auto_or_count(cls, value: Any) -> Any:
        # One message for both forms: pydantic would report the union's two branches separately.
        if value == "auto" or (type(value) is int and 1 <= value <= 64):
            return value
        raise ValueError("must be auto or a whole number of processes from 1 to 64")


class MappingSettings(_Frozen):
    topic: Annotated[str, Field(min_length=1)]
    endpoint: EndpointKey
    destination: Annotated[str, Field(min_length=1)] = DEFAULT_DESTINATION
    format: Literal["confluent-avro", "avro"] = "confluent-avro"
    schema_path: str | None = Field(default=None, alias="schema")
    # The registry subject the topic's writer schemas are registered under, for the record-name
    # strategies; None: <topic>-value (TopicNameStrategy).
    subject: Annotated[str, Field(min_length=1)] | None = None
    fields: dict[str, Annotated[str, Field(min_length=1)]] = Field(default_factory=dict)
    constants: dict[str, Any] = Field(default_factory=dict)
    copy_matching: bool = True

    @model_validator(mode="after")
    def _schema_for_raw_avro(self) -> MappingSettings:
        if self.format == "avro" and not self.schema_path:
            raise ValueError("format 'avro' needs `schema` (the writer schema)")
        both = set(self.fields) & set(self.constants)
        if both:
            raise ValueError(f"{', '.join(sorted(both))} set both in fields and in constants")
        if self.subject is not None and self.format != "confluent-avro":
            raise ValueError("`subject` applies to format 'confluent-avro' only")
        return self

    @property
    def value_subject(self) -> str:
        """The registry subject of this topic's writer schemas."""
        return self.subject or f"{self.topic}-value"


@dataclass(frozen=True)
class Settings:
    """The parsed configuration; sections a command does not use are None."""

    source: str
    kafka: KafkaSettings | None = None
    schema_registry: SchemaRegistrySettings | None = None
    destinations: Mapping[str, DestinationSettings] = field(default_factory=dict)
    batching: BatchingSettings = field(default_factory=BatchingSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    dead_letter: DeadLetterSettings | None = None
    server: ServerSettings = field(default_factory=ServerSettings)
    backpressure: BackpressureSettings = field(default_factory=BackpressureSettings)
    processing: ProcessingSettings = field(default_factory=ProcessingSettings)
    mappings: tuple[MappingSettings, ...] = ()
    shutdown_timeout_s: float = 25.0
    log_level: str = "info"

    @property
    def optikpi(self) -> DestinationSettings | None:
        return self.destinations.get(DEFAULT_DESTINATION)

    def destination(self, name: str) -> DestinationSettings:
        return self.destinations[name]
