"""/healthz, /readyz and /metrics for Kubernetes probes and Prometheus, on a daemon thread."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from connector.runtime.health import Health
from connector.runtime.metrics import Metrics


class HealthServer:
    def __init__(self, health: Health, metrics: Metrics, host: str = "0.0.0.0", port: int = 8080) -> None:
        self._health = health
        self._metrics = metrics
        handler = self._handler()
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-server", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        health, metrics = self._health, self._metrics

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # probes every few seconds: no noise
                pass

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    ok = health.alive
                    self._send(200 if ok else 503, json.dumps({"alive": ok}).encode(), "application/json")
                elif path == "/readyz":
                    reasons = health.reasons()
                    body = json.dumps({"ready": not reasons, "reasons": reasons}).encode()
                    self._send(200 if not reasons else 503, body, "application/json")
                elif path == "/metrics":
                    self._send(200, metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
                else:
                    self._send(404, b'{"error":"not found"}', "application/json")

        return Handler
