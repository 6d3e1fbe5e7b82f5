"""A fault-injecting TCP proxy in front of a broker of a test's own, for faults the embedded broker
cannot make itself: Tansu accepts writes to a deleted topic (it creates it again) and ignores
`max.message.bytes`, so "the dead-letter topic is unwritable" has to happen on the wire.

The broker listens on one port and advertises the proxy's, so every client (bootstrap and every
connection after the metadata) goes through the proxy. The proxy forwards bytes both ways and reads
the header of each request a client sends (int32 size, int16 api_key, int16 api_version, int32
correlation_id, int16-length client_id). While it refuses a client id, a Produce request from that
client is not forwarded: the connection is closed instead, as a broker that went away would, so
the client's deliveries fail once their `message.timeout.ms` runs out.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from connector.devtools.embedded_broker import EmbeddedBroker
from connector.errors import KafkaPortError
from connector.kafka.admin import KafkaAdmin
from connector.kafka.config import admin_config
from tests.support.e2e import wait_until

PRODUCE = 0
_HEADER = struct.Struct(">hhih")  # api_key, api_version, correlation_id, client_id length
_SIZE = struct.Struct(">i")
_CHUNK = 65536


def request_client(frame: bytes) -> tuple[int, str | None]:
    """The api_key and client_id of one request (the bytes after its int32 size)."""
    api_key, _version, _correlation, length = _HEADER.unpack_from(frame)
    if length < 0:
        return api_key, None
    start = _HEADER.size
    return api_key, frame[start : start + length].decode("utf-8", "replace")


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    """`n` bytes, or None once the peer closed (or the proxy closed the socket)."""
    parts: list[bytes] = []
    while n:
        try:
            chunk = sock.recv(min(n, _CHUNK))
        except OSError:
            return None
        if not chunk:
            return None
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


class KafkaProxy:
    """Listens on 127.0.0.1:`port` (bound at once, so the broker can be told to advertise it) and
    forwards to the port `start()` is given; `refuse_produce(client_id)` starts a fault,
    `allow_produce()` ends it. `refused` counts the Produce requests it dropped."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._upstream = (host, 0)
        self._listener = socket.create_server((host, 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._refused_client: str | None = None
        self._sockets: set[socket.socket] = set()
        self._closed = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name="kafka-proxy", daemon=True)
        self.refused = 0
        self.produce_forwarded: dict[str, int] = {}

    @property
    def bootstrap_servers(self) -> str:
        return f"{self._host}:{self.port}"

    def refuse_produce(self, client_id: str) -> None:
        with self._lock:
            self._refused_client = client_id

    def allow_produce(self) -> None:
        with self._lock:
            self._refused_client = None

    def start(self, upstream_port: int) -> KafkaProxy:
        self._upstream = (self._host, upstream_port)
        self._acceptor.start()
        return self

    def close(self) -> None:
        self._closed.set()
        _shut(self._listener)  # shutdown wakes the accept() that close() alone would leave blocked
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)
        if self._acceptor.is_alive():
            self._acceptor.join(5.0)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self._upstream, timeout=5.0)
            except OSError:
                _shut(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._responses, args=(upstream, client), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        """Client to broker, one request frame at a time, so each one's header can be judged."""
        try:
            while True:
                size = _read_exactly(client, _SIZE.size)
                if size is None:
                    return
                body = _read_exactly(client, _SIZE.unpack(size)[0])
                if body is None:
                    return
                api_key, client_id = request_client(body)
                if api_key == PRODUCE:
                    with self._lock:
                        refused = client_id is not None and client_id == self._refused_client
                        if refused:
                            self.refused += 1
                        else:
                            name = client_id or ""
                            self.produce_forwarded[name] = self.produce_forwarded.get(name, 0) + 1
                    if refused:
                        return  # closes both ends below: the request never reaches the broker
                upstream.sendall(size + body)
        except OSError:
            return
        finally:
            self._drop(client, upstream)

    def _responses(self, upstream: socket.socket, client: socket.socket) -> None:
        try:
            while chunk := upstream.recv(_CHUNK):
                client.sendall(chunk)
        except OSError:
            return
        finally:
            self._drop(client, upstream)

    def _drop(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._sockets -= set(sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def _answers(bootstrap: str) -> bool:
    try:
        KafkaAdmin(admin_config(bootstrap, {})).list_topics(2.0)
    except KafkaPortError:
        return False
    return True


@contextmanager
def proxied_broker(log_file: Path) -> Iterator[tuple[EmbeddedBroker, KafkaProxy]]:
    """A broker of the test's own that advertises the proxy's port: use `proxy.bootstrap_servers`."""
    proxy = KafkaProxy()
    try:
        with EmbeddedBroker(log_file=log_file, advertised_port=proxy.port) as embedded:
            proxy.start(embedded.port)
            wait_until(lambda: _answers(proxy.bootstrap_servers), 30.0, "the broker through the proxy", 0.2)
            yield embedded, proxy
    finally:
        proxy.close()
