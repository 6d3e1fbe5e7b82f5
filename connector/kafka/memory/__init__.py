"""The in-memory fake behind the Kafka ports: `broker` (topics, offsets, groups) and `clients`
(consumer, producer, admin), deterministic and instant, on an injectable clock.

The names below are re-imported for modules that still import them from here."""

from connector.kafka.memory.broker import InMemoryBroker
from connector.kafka.memory.clients import InMemoryConsumer
from connector.runtime.clock import FakeClock

__all__ = ["FakeClock", "InMemoryBroker", "InMemoryConsumer"]
