"""Compiled topic mappings (Avro record → ingest JSON record) and their static check."""
