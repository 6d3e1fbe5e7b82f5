"""A broker of a test's own that the test can freeze (SIGSTOP) and thaw (SIGCONT): the embedded
broker keeps its data only in memory, so "unreachable" is a frozen process, not a restarted one.
Freezing the session's broker would stall every other test."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from connector.devtools.embedded_broker import EmbeddedBroker
from connector.errors import KafkaPortError
from connector.kafka.admin import KafkaAdmin
from connector.kafka.config import admin_config
from tests.support.e2e import wait_until


def _answers(bootstrap: str) -> bool:
    try:
        KafkaAdmin(admin_config(bootstrap, {})).list_topics(2.0)
    except KafkaPortError:
        return False
    return True


@contextmanager
def own_broker(log_file: Path) -> Iterator[EmbeddedBroker]:
    embedded = EmbeddedBroker(log_file=log_file).start(timeout_s=30.0)
    try:
        wait_until(lambda: _answers(embedded.bootstrap_servers), 30.0, "the broker's metadata", 0.2)
        yield embedded
    finally:
        thaw(embedded)  # a frozen process cannot act on SIGTERM
        embedded.stop()


def _signal(broker: EmbeddedBroker, sig: signal.Signals) -> None:
    pid = broker.pid
    assert pid is not None
    os.killpg(pid, sig)  # its own process group (start_new_session): every process of it


def freeze(broker: EmbeddedBroker) -> None:
    _signal(broker, signal.SIGSTOP)


def thaw(broker: EmbeddedBroker) -> None:
    if broker.running:
        _signal(broker, signal.SIGCONT)
