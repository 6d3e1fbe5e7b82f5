"""`run`: the connector as a service: wire it, serve health and metrics, stop cleanly on a signal."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from connector import __version__
from connector.config.settings import Settings
from connector.errors import KafkaPortError, WorkerPoolError
from connector.pipeline.wiring import build_connector
from connector.runtime import stopping
from connector.runtime.allocator import keep_heap_for_batches
from connector.runtime.logs import get_logger

if TYPE_CHECKING:
    from connector.kafka.admin import KafkaAdmin

log = get_logger(__name__)


def install_signal_handlers(stop: Callable[[], None]) -> None:
    """SIGTERM and SIGINT drain the pipeline from now on (before, SIGTERM ends start-up: see
    connector.runtime.stopping)."""

    def handler(signum: int) -> None:
        log.info("signal received; stopping", signal=signal.Signals(signum).name)
        stop()

    stopping.hand_over(handler)


def warn_about_dead_letter_durability(admin: KafkaAdmin | None, settings: Settings) -> None:
    """Checked once at start, with the admin client the wiring built (none: nothing to ask): a
    dead-letter topic that one broker loss can empty."""
    from connector.commands.check import KAFKA_TIMEOUT_S, dead_letter_durability_warning

    dead_letter = settings.dead_letter
    if admin is None or settings.kafka is None or dead_letter is None:
        return
    try:
        found = admin.describe_topic(dead_letter.topic, KAFKA_TIMEOUT_S)
    except KafkaPortError as exc:
        log.warning("cannot describe the dead-letter topic", topic=dead_letter.topic, error=str(exc))
        return
    warning = None if found is None else dead_letter_durability_warning(found)
    if warning is not None:
        log.warning("dead-letter topic is not durable enough", topic=dead_letter.topic, problem=warning)


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
    warn_about_dead_letter_durability(connector.kafka_admin, settings)
    server = None
    try:
        if settings.server.port:
            server = HealthServer(
                connector.health, connector.metrics, settings.server.host, settings.server.port
            ).start()
            log.info("health server listening", port=server.port)
        install_signal_handlers(connector.pipeline.request_stop)
        return connector.pipeline.run()
    finally:
        connector.close()
        if server is not None:
            server.stop()
