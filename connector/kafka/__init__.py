"""Kafka behind a small port; the only package importing confluent_kafka. `memory` is the fake."""
