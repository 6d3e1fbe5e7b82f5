"""Local tooling that never runs in a consumer pod: sandbox, registry stub, broker, samples, demo.

The production packages never import this package; `connector.cli` reaches it only inside command handlers.
"""
