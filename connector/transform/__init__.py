"""Per-record work chosen once per (topic mapping, writer schema): Avro payload → request body or poison.

The pipeline frames each value and looks up its writer schema in the main process; a transform
built from a `TransformSpec` does the rest (decode, map, validate, serialize), inline or in a
worker process. Everything in a spec and in a result pickles, and no secret is in either.
"""
