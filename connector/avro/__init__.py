"""Avro: schema loading and names, the Schema Registry client, decoding of Confluent-framed and raw values."""
