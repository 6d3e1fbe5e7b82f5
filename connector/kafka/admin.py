"""`AdminPort` on confluent-kafka's `AdminClient` (topics and groups), and the client library versions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import TYPE_CHECKING

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._resource import ResourceType
from confluent_kafka.cimpl import NewTopic

from connector.errors import KafkaPortError
from connector.kafka._errors import describe, kafka_error_of, port_error
from connector.kafka.ports import AdminPort


def kafka_version() -> str:
    # The package's version() returns a plain string in recent releases, a (str, int) tuple in older ones.
    client: object = ck.version()
    client_version = client[0] if isinstance(client, tuple) else client
    return f"confluent-kafka {client_version}, librdkafka {ck.libversion()[0]}"


class KafkaAdmin:
    """`AdminPort` on confluent-kafka's `AdminClient`."""

    def __init__(self, config: Mapping[str, object], replication_factor: int = -1) -> None:
        # -1 lets the broker apply its default replication factor (KIP-464).
        self._replication_factor = replication_factor
        try:
            self._admin = AdminClient(dict(config))  # type: ignore[arg-type]  # values checked by librdkafka
        except ck.KafkaException as exc:
            raise port_error(exc, "cannot create the kafka admin client") from exc

    def create_topics(self, names: Sequence[str], partitions: int, timeout_s: float) -> None:
        if not names:
            return
        new_topics = [
            NewTopic(name, num_partitions=partitions, replication_factor=self._replication_factor)
            for name in names
        ]
        futures = self._admin.create_topics(
            new_topics, operation_timeout=timeout_s, request_timeout=timeout_s
        )
        failures: list[str] = []
        for name, future in futures.items():
            try:
                future.result(timeout=timeout_s)
            except ck.KafkaException as exc:
                error = kafka_error_of(exc)
                if error is not None and error.code() == ck.KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                failures.append(f"{name}: {describe(error) if error is not None else exc}")
            except FutureTimeoutError:
                failures.append(f"{name}: no answer within {timeout_s} s")
        if failures:
            raise KafkaPortError("cannot create topics: " + "; ".join(failures))

    def list_topics(self, timeout_s: float) -> dict[str, int]:
        try:
            metadata = self._admin.list_topics(timeout=timeout_s)
        except ck.KafkaException as exc:
            raise port_error(exc, "cannot list topics") from exc
        return {name: len(topic.partitions) for name, topic in metadata.topics.items() if topic.error is None}

    def topic_max_message_bytes(self, topic: str, timeout_s: float) -> int | None:
        """The topic's `max.message.bytes`; None when the broker does not say (no DescribeConfigs,
        no permission, no answer in time): callers then go by the producer's own limit."""
        resource = ConfigResource(ResourceType.TOPIC, topic)
        try:
            futures = self._admin.describe_configs([resource], request_timeout=timeout_s)
            entries = futures[resource].result(timeout=timeout_s)
            value = entries["max.message.bytes"].value
            return int(value) if value is not None else None
        except (ck.KafkaException, FutureTimeoutError, KeyError, ValueError, TypeError):
            return None

    def list_groups(self, timeout_s: float) -> set[str]:
        """Names of the consumer groups the cluster knows (any group that joined or committed)."""
        try:
            result = self._admin.list_consumer_groups(request_timeout=timeout_s).result(timeout=timeout_s)
        except ck.KafkaException as exc:
            raise port_error(exc, "cannot list consumer groups") from exc
        except FutureTimeoutError:
            raise KafkaPortError(f"cannot list consumer groups: no answer within {timeout_s} s") from None
        return {group.group_id for group in result.valid}


if TYPE_CHECKING:  # mypy proves the adapter implements the port

    def _implements_port(admin: KafkaAdmin) -> AdminPort:
        return admin
