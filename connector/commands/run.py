"""`run`: the connector as a service: wire it, serve health and metrics, stop cleanly on a signal."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

from connector import __version__
from connector.config.settings import Settings
from connector.errors import WorkerPoolError
from connector.pipeline.wiring import build_connector
from connector.runtime.allocator import keep_heap_for_batches
from connector.runtime.logs import get_logger

log = get_logger(__name__)


def install_signal_handlers(stop: Callable[[], None]) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received; stopping", signal=signal.Signals(signum).name)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_connector(settings: Settings) -> int:
    from connector.kafka.admin import kafka_version
    from connector.runtime.server import HealthServer

    keep_heap_for_batches()
    log.info(
        "starting optikpi-connector",
        version=__version__,
        kafka=kafka_version(),
        config=settings.source,
        topics=[m.topic for m in settings.mappings],
    )
    try:
        connector = build_connector(settings)
    except WorkerPoolError as exc:
        log.error("the transform worker processes did not start", error=str(exc))
        return 1
    server = None
    if settings.server.port:
        server = HealthServer(
            connector.health, connector.metrics, settings.server.host, settings.server.port
        ).start()
        log.info("health server listening", port=server.port)
    install_signal_handlers(connector.pipeline.request_stop)
    try:
        return connector.pipeline.run()
    finally:
        connector.close()
        if server is not None:
            server.stop()
