"""The one builder of librdkafka settings, for every client kind: consumer, producer, admin, reader.

Each config is layered the same way: the connector's defaults, then the user's `properties` (which
may override a default), then the guarded keys the delivery guarantees depend on, applied last so
that no user property can turn them off. Also `redact_config`, to log a config without its secrets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from connector.kafka.rdlogs import LibrdkafkaLogs
from connector.runtime.logs import is_secret_key

DEFAULT_CLIENT_ID = "optikpi-connector"
# confluent-kafka refuses a consumer without a group.id, even one that only ever assign()s; a reader
# uses this one, never joins it and never commits to it.
READER_GROUP_ID = "optikpi-connector-reader"

# Offsets move only when the pipeline says every record below them is done.
NO_AUTO_COMMIT: Mapping[str, object] = {"enable.auto.commit": False, "enable.auto.offset.store": False}
CONSUMER_GUARDED: Mapping[str, object] = NO_AUTO_COMMIT
# A dead-letter write counts only once acks=all confirmed it, and a retry never writes it twice.
PRODUCER_GUARDED: Mapping[str, object] = {"enable.idempotence": True, "acks": "all"}
# A reader belongs to no group: it reads to the end of each partition and commits nothing.
READER_GUARDED: Mapping[str, object] = {
    "group.id": READER_GROUP_ID,
    **NO_AUTO_COMMIT,
    "enable.partition.eof": True,
}

CONSUMER_DEFAULTS: Mapping[str, object] = {
    "partition.assignment.strategy": "cooperative-sticky",
    "enable.partition.eof": False,
    # librdkafka prefetches up to 64 MB per consumer by default; that memory is outside the
    # pipeline's in-flight accounting, so keep it smaller unless the user says otherwise.
    "queued.max.messages.kbytes": 16384,
    # How long a fetch may wait for data. librdkafka's 500 ms adds straight to a record's delivery
    # time where the broker holds a fetch for that long (the embedded broker does): at 2,000
    # records/s and max_wait_ms 500 it put p99 at 822 ms, against 592 ms with 50 ms (docs/performance.md).
    "fetch.wait.max.ms": 100,
}

# Consumer-only properties in a producer config make librdkafka warn on every start.
_CONSUMER_ONLY_PREFIXES = (
    "group.",
    "session.",
    "heartbeat.",
    "max.poll.",
    "auto.offset",
    "partition.assignment",
    "queued.",
    "fetch.",
    "enable.auto",
)

# librdkafka names key material without saying "secret" (ssl.key.pem, ssl.keystore.location...).
_KEY_MATERIAL = re.compile(r"key", re.IGNORECASE)
_REDACTED = "***"


def _layered(
    base: Mapping[str, object],
    properties: Mapping[str, object],
    guarded: Mapping[str, object],
    logs: LibrdkafkaLogs | None,
) -> dict[str, object]:
    # Every client's librdkafka lines go through structlog, rate-limited: never raw to stderr.
    return {**base, **properties, **guarded, "logger": logs if logs is not None else LibrdkafkaLogs()}


def consumer_config(
    bootstrap_servers: str,
    group_id: str,
    auto_offset_reset: str,
    properties: Mapping[str, object],
    client_id: str = DEFAULT_CLIENT_ID,
    *,
    logs: LibrdkafkaLogs | None = None,
) -> dict[str, object]:
    """A group member's settings: manual commits only, cooperative rebalancing by default."""
    base: dict[str, object] = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "client.id": client_id,
        "auto.offset.reset": auto_offset_reset,
        **CONSUMER_DEFAULTS,
    }
    return _layered(base, properties, CONSUMER_GUARDED, logs)


def producer_config(
    bootstrap_servers: str,
    properties: Mapping[str, object],
    client_id: str = DEFAULT_CLIENT_ID,
    *,
    logs: LibrdkafkaLogs | None = None,
) -> dict[str, object]:
    """An idempotent producer's settings; the consumer-only keys of `properties` are left out."""
    base: dict[str, object] = {"bootstrap.servers": bootstrap_servers, "client.id": client_id}
    wanted = {key: value for key, value in properties.items() if not key.startswith(_CONSUMER_ONLY_PREFIXES)}
    return _layered(base, wanted, PRODUCER_GUARDED, logs)


def admin_config(
    bootstrap_servers: str,
    properties: Mapping[str, object],
    client_id: str = DEFAULT_CLIENT_ID,
    *,
    logs: LibrdkafkaLogs | None = None,
) -> dict[str, object]:
    """An admin client's settings (nothing guarded: it neither commits nor produces)."""
    base: dict[str, object] = {"bootstrap.servers": bootstrap_servers, "client.id": client_id}
    return _layered(base, properties, {}, logs)


def reader_config(
    bootstrap_servers: str,
    properties: Mapping[str, object],
    client_id: str = DEFAULT_CLIENT_ID,
    *,
    logs: LibrdkafkaLogs | None = None,
) -> dict[str, object]:
    """Settings for a `PartitionReader`: the user's `properties` (security...), but never a group's."""
    base: dict[str, object] = {
        "bootstrap.servers": bootstrap_servers,
        "client.id": client_id,
        "auto.offset.reset": "earliest",
    }
    wanted = {key: value for key, value in properties.items() if not key.startswith("group.")}
    return _layered(base, wanted, READER_GUARDED, logs)


def redact_config(config: Mapping[str, object]) -> dict[str, object]:
    """A copy that is safe to log: values of secret-looking keys masked, callables named only."""
    safe: dict[str, object] = {}
    for key, value in config.items():
        if is_secret_key(key) or _KEY_MATERIAL.search(key):
            safe[key] = _REDACTED
        elif value is None or isinstance(value, str | int | float | bool):
            safe[key] = value
        else:  # callbacks, loggers: their repr says nothing useful and may say too much
            safe[key] = f"<{type(value).__name__}>"
    return safe


def broker_hosts(bootstrap_servers: str) -> str:
    """The `host:port` list of `bootstrap_servers`, for messages: without a `PROTOCOL://` prefix or
    a `user:password@` part, should anyone have written one there."""
    hosts = []
    for server in bootstrap_servers.split(","):
        server = server.strip().rsplit("://", 1)[-1].rsplit("@", 1)[-1]
        if server:
            hosts.append(server)
    return ",".join(hosts)
