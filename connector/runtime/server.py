"""/healthz, /readyz and /metrics for Kubernetes probes and Prometheus, on a daemon thread."""

from __future__ import annotations

import json

from connector.runtime.health import Health
from connector.runtime.httpserver import BackgroundHTTPServer, QuietHandler
from connector.runtime.metrics import Metrics

_JSON = "application/json"
_PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class HealthServer:
    def __init__(self, health: Health, metrics: Metrics, host: str = "0.0.0.0", port: int = 8080) -> None:
        self._health = health
        self._metrics = metrics
        self._server = BackgroundHTTPServer(host, port, self._handler(), name="health-server")

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> HealthServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def _handler(self) -> type[QuietHandler]:
        health, metrics = self._health, self._metrics

        class Handler(QuietHandler):
            # Probes open a connection per request; keep-alive would only hold a thread per prober.
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    ok = health.alive
                    self.reply(200 if ok else 503, json.dumps({"alive": ok}).encode(), _JSON)
                elif path == "/readyz":
                    reasons = health.reasons()
                    body = json.dumps({"ready": not reasons, "reasons": reasons}).encode()
                    self.reply(200 if not reasons else 503, body, _JSON)
                elif path == "/metrics":
                    self.reply(200, metrics.render(), _PROMETHEUS_TEXT)
                else:
                    self.reply(404, b'{"error":"not found"}', _JSON)

        return Handler
