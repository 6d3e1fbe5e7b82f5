"""Process-wide services of a running connector: logs, metrics, readiness and its HTTP server."""
