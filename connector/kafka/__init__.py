"""Kafka behind a small port. The only package that imports confluent_kafka; `memory` is the in-memory fake."""
