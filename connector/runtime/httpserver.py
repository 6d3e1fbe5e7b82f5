"""The one `http.server` base for the connector's small HTTP servers.

The health/metrics server, the sandbox ingest API and the Schema Registry stub all serve from a
background thread, on IPv4 or IPv6, without an access log, and must stop completely: no thread left
serving a keep-alive connection after `stop()`.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

__all__ = ["BackgroundHTTPServer", "QuietHandler"]

RequestHandlerFactory = Callable[[Any, Any, "BackgroundHTTPServer"], socketserver.BaseRequestHandler]


class BackgroundHTTPServer(ThreadingHTTPServer):
    """Bound on construction (OSError if the address is taken); `start()` serves from a daemon thread.

    `with BackgroundHTTPServer(host, port, Handler, name="x") as server: server.url`
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        host: str,
        port: int,
        handler: RequestHandlerFactory,
        *,
        name: str,
        poll_interval: float = 0.05,  # how long stop() may wait for the serving thread to notice
    ) -> None:
        # Read by TCPServer.__init__ when it makes the socket, so it must be set first.
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._name = name
        self._poll_interval = poll_interval
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((host, port), handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can hang on a machine without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    # ---- lifecycle

    def start(self) -> Self:
        if self._thread is not None or self._stopped:
            raise RuntimeError(f"{self._name} already started; a stopped server cannot start again")
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": self._poll_interval},
            name=self._name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and every open connection. Safe to call twice."""
        thread, self._thread = self._thread, None
        self._stopped = True
        if thread is not None:
            # Only after serve_forever has run: shutdown() waits for it to acknowledge.
            self.shutdown()
        self.server_close()
        self._close_connections()
        if thread is not None:
            thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- address

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        """`http://host:port`, with a wildcard address replaced by loopback so that a client can use it."""
        host = str(self.server_address[0])
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    # ---- open connections

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def _close_connections(self) -> None:
        # Handler threads on keep-alive connections would otherwise go on serving after stop().
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no access log, and `reply()` for a whole answer with its length."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body would wait for the client's delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        # One line per request on stderr would drown the test output, the demo's and the probes' logs.
        return

    def reply(
        self, status: int, body: bytes, content_type: str, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
