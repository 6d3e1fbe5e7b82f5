"""`PartitionReader`: reads chosen partitions from chosen offsets outside any consumer group, for the
inspection tools (`dlq list/show/stats/replay`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import confluent_kafka as ck

from connector.errors import KafkaPortError
from connector.kafka._errors import describe, port_error
from connector.kafka.admin import kafka_version
from connector.kafka.config import redact_config
from connector.kafka.consumer import cached_high_watermarks, to_record
from connector.kafka.ports import Record, TopicPartition
from connector.runtime.logs import get_logger


class PartitionReader:
    """Reads chosen partitions from chosen offsets outside any consumer group (inspection tools).

    Nothing is ever committed and no group is joined: partitions are assign()ed, never subscribed.
    A partition's end is known from librdkafka's partition-EOF events and from the watermarks
    cached from fetch responses, never from ListOffsets (which some brokers, Tansu, answer wrongly).
    """

    def __init__(self, config: Mapping[str, object], logger: Any = None) -> None:
        self._logger = logger if logger is not None else get_logger(__name__)
        self.last_error: str | None = None
        settings: dict[str, Any] = dict(config)
        settings.setdefault("error_cb", self._on_error)
        self._logger.debug("kafka reader config", config=redact_config(settings), version=kafka_version())
        try:
            self._consumer = ck.Consumer(settings)
        except ck.KafkaException as exc:
            raise port_error(exc, "cannot create the kafka reader") from exc
        except ValueError as exc:  # confluent-kafka's own checks (a missing group.id...)
            raise KafkaPortError(f"cannot create the kafka reader: {exc}") from exc
        self._closed = False

    def _on_error(self, error: ck.KafkaError) -> None:
        # Kept for the caller's one-line message ("connection refused" says more than "timed out").
        self.last_error = describe(error)
        self._logger.debug("kafka reader error", error=self.last_error)

    def topics(self, timeout_s: float) -> dict[str, int]:
        """Topic name → partition count; KafkaPortError when no broker answers within `timeout_s`."""
        try:
            metadata = self._consumer.list_topics(timeout=timeout_s)
        except ck.KafkaException as exc:
            self._consumer.poll(0)  # serves error_cb, which knows why (connection refused, TLS, auth...)
            raise port_error(exc, "cannot read the cluster metadata") from exc
        return {name: len(topic.partitions) for name, topic in metadata.topics.items() if topic.error is None}

    def assign(self, positions: Mapping[TopicPartition, int | None]) -> None:
        """Read these partitions from these offsets (None: from the beginning), replacing any assignment."""
        request = [
            ck.TopicPartition(tp.topic, tp.partition, ck.OFFSET_BEGINNING if offset is None else offset)
            for tp, offset in positions.items()
        ]
        try:
            self._consumer.assign(request)
        except ck.KafkaException as exc:
            raise port_error(exc, "assign failed") from exc

    def read(self, max_records: int, timeout_s: float) -> tuple[list[Record], dict[TopicPartition, int]]:
        """Records, and the partitions that reached their end in this call (with the end offset)."""
        try:
            messages = self._consumer.consume(num_messages=max_records, timeout=timeout_s)
        except ck.KafkaException as exc:
            raise port_error(exc, "read failed") from exc
        records: list[Record] = []
        ends: dict[TopicPartition, int] = {}
        for message in messages:
            error = message.error()
            if error is None:
                records.append(to_record(message))
            elif error.code() == ck.KafkaError._PARTITION_EOF:
                topic, partition, offset = message.topic(), message.partition(), message.offset()
                if topic is not None and partition is not None and offset is not None:
                    ends[TopicPartition(topic, partition)] = offset
            elif error.fatal() or error.code() == ck.KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise KafkaPortError(f"read failed: {describe(error)}")
            else:
                self.last_error = describe(error)
                self._logger.debug("kafka read error", error=self.last_error, topic=message.topic())
        return records, ends

    def high_watermarks(self) -> dict[TopicPartition, int]:
        """End offsets of the assigned partitions as last seen in fetched data (absent: none fetched yet)."""
        return {} if self._closed else cached_high_watermarks(self._consumer)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._consumer.close()  # no group joined, auto-commit off: nothing is committed here
        except ck.KafkaException as exc:
            raise port_error(exc, "close failed") from exc
