"""The in-memory fake behind the Kafka ports: `broker` (topics, offsets, groups) and `clients`
(consumer, producer, admin), deterministic and instant, on an injectable clock."""
