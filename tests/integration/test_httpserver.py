"""The shared http.server base (background thread, IPv6, quiet, complete stop) and the health server on it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from connector.runtime.health import Health, Reason
from connector.runtime.httpserver import BackgroundHTTPServer, QuietHandler
from connector.runtime.metrics import Metrics
from connector.runtime.server import HealthServer

pytestmark = pytest.mark.integration


class Hello(QuietHandler):
    def do_GET(self) -> None:
        self.reply(200, b"hello", "text/plain", headers=[("X-Path", self.path)])


@pytest.fixture
def server() -> Iterator[BackgroundHTTPServer]:
    with BackgroundHTTPServer("127.0.0.1", 0, Hello, name="test-http") as started:
        yield started


def _get_on(sock: socket.socket, path: str = "/") -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    answer = b""
    while not answer.endswith(b"hello"):
        chunk = sock.recv(4096)
        assert chunk, "connection closed mid-answer"
        answer += chunk
    return answer


def test_serves_from_a_named_daemon_thread_without_an_access_log(
    server: BackgroundHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = httpx.get(server.url + "/a?b=1")

    assert (answer.status_code, answer.text, answer.headers["x-path"]) == (200, "hello", "/a?b=1")
    assert answer.headers["content-length"] == "5"
    assert [t.daemon for t in threading.enumerate() if t.name == "test-http"] == [True]
    assert server.daemon_threads
    assert capsys.readouterr() == ("", "")


def test_keep_alive_connections_are_cut_by_stop() -> None:
    server = BackgroundHTTPServer("127.0.0.1", 0, Hello, name="test-http").start()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        assert _get_on(sock).startswith(b"HTTP/1.1 200 ")
        assert _get_on(sock).startswith(b"HTTP/1.1 200 ")  # the same connection, kept alive

        server.stop()

        # The handler thread waiting for the next request must not outlive the server.
        assert sock.recv(4096) == b""


def test_stop_is_safe_twice_and_before_start() -> None:
    never_started = BackgroundHTTPServer("127.0.0.1", 0, Hello, name="test-http")
    never_started.stop()
    server = BackgroundHTTPServer("127.0.0.1", 0, Hello, name="test-http").start()
    with pytest.raises(RuntimeError, match="already started"):
        server.start()
    server.stop()
    server.stop()
    with pytest.raises(RuntimeError, match="cannot start again"):
        server.start()


def test_the_port_can_be_bound_again_right_after_stop() -> None:
    with BackgroundHTTPServer("127.0.0.1", 0, Hello, name="test-http") as first:
        port = first.port
        # The server closes first, so its side of the connection lingers in TIME_WAIT.
        assert httpx.get(first.url, headers={"Connection": "close"}).text == "hello"
    with BackgroundHTTPServer("127.0.0.1", port, Hello, name="test-http") as second:
        assert httpx.get(second.url).text == "hello"


def test_a_wildcard_address_gives_a_loopback_url() -> None:
    with BackgroundHTTPServer("0.0.0.0", 0, Hello, name="test-http") as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert httpx.get(server.url).text == "hello"


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_a_host_with_a_colon_is_served_over_ipv6() -> None:
    with BackgroundHTTPServer("::1", 0, Hello, name="test-http") as server:
        assert server.address_family == socket.AF_INET6
        assert server.url == f"http://[::1]:{server.port}"
        assert httpx.get(server.url).text == "hello"


# ------------------------------------------------------------------------------------ health server


@pytest.fixture
def health_server() -> Iterator[tuple[HealthServer, Health, Metrics]]:
    health, metrics = Health(), Metrics()
    server = HealthServer(health, metrics, "127.0.0.1", 0).start()
    try:
        yield server, health, metrics
    finally:
        server.stop()


def test_health_server_answers_probes(health_server: tuple[HealthServer, Health, Metrics]) -> None:
    server, health, _ = health_server
    base = f"http://127.0.0.1:{server.port}"

    assert httpx.get(base + "/healthz").json() == {"alive": True}
    not_ready = httpx.get(base + "/readyz")
    assert not_ready.status_code == 503 and not_ready.json()["ready"] is False
    health.clear(Reason.STARTING)
    assert httpx.get(base + "/readyz?verbose=1").json() == {"ready": True, "reasons": {}}
    assert httpx.get(base + "/nope").status_code == 404


def test_metrics_scrape_has_no_created_series(health_server: tuple[HealthServer, Health, Metrics]) -> None:
    server, _, metrics = health_server
    metrics.requests.labels("deposit", "200").inc()
    metrics.request_seconds.labels("deposit").observe(0.2)
    metrics.records_accepted.labels("deposit").inc(3)

    scrape = httpx.get(f"http://127.0.0.1:{server.port}/metrics")

    assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'optikpi_ingest_requests_total{endpoint="deposit",status="200"} 1.0' in scrape.text
    assert 'optikpi_records_accepted_total{endpoint="deposit"} 3.0' in scrape.text
    assert "_created" not in scrape.text
