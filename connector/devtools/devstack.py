"""`dev-stack`: what `run` needs, on this machine and without Docker, until Ctrl-C or SIGTERM.

The embedded Kafka-protocol broker (the `demo` extra), the Schema Registry stand-in and the sandbox
ingest API, the example topics and the dead-letter topic, and a working configuration for them
(the example mappings, the sandbox's credentials) in `<workdir>/connector.yaml`. `demo` starts the
same stack, and with `--keep-running` leaves it up the same way.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from connector.config.loader import parse_settings
from connector.config.settings import Settings
from connector.errors import ExitCode

CONFIG_FILE = "connector.yaml"
DLQ_TOPIC = "optikpi-connector.dlq"
TOPIC_PARTITIONS = 3
_MAPPINGS_FILE = Path(__file__).resolve().parent / "demo_mappings.yaml"  # examples/connector.yaml's


def stack_config(
    bootstrap: str,
    registry_url: str,
    api_url: str,
    token: str,
    account: str,
    workspace: str,
    *,
    group_id: str = "optikpi-connector",
    server_port: int = 0,
) -> dict[str, Any]:
    """A configuration for the local stack: the example mappings, short group timeouts."""
    mappings = yaml.safe_load(_MAPPINGS_FILE.read_text(encoding="utf-8"))["mappings"]
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_id": group_id,
            "properties": {
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 1000,
                "max.poll.interval.ms": 60000,
            },
        },
        "schema_registry": {"url": registry_url},
        "optikpi": {
            "base_url": api_url,
            "account_id": account,
            "workspace_id": workspace,
            "auth_token": token,
        },
        "batching": {"max_records": 500, "max_wait_ms": 200},
        "dead_letter": {"topic": DLQ_TOPIC},
        "server": {"port": server_port, "host": "127.0.0.1"},
        "shutdown_timeout_s": 10,
        "mappings": mappings,
    }


class LocalStack:
    """The broker, the registry stand-in and the sandbox API, started and stopped together."""

    def __init__(
        self, workdir: Path, broker_port: int = 0, registry_port: int = 0, api_port: int = 0
    ) -> None:
        self.workdir = workdir
        self._ports = (broker_port, registry_port, api_port)
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> LocalStack:
        from connector.devtools.embedded_broker import EmbeddedBroker
        from connector.devtools.registry_stub import RegistryStub
        from connector.devtools.sandbox.server import SandboxOptions, SandboxServer

        broker_port, registry_port, api_port = self._ports
        self.workdir.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as starting:
            self.broker = starting.enter_context(
                EmbeddedBroker(port=broker_port, log_file=self.workdir / "broker.log")
            )
            self.registry = starting.enter_context(RegistryStub(port=registry_port))
            self.api = starting.enter_context(
                SandboxServer(
                    SandboxOptions(port=api_port, rate_limit_scale=1.0, store=self.workdir / "accepted.jsonl")
                )
            )
            self._stack = starting.pop_all()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def config(self, *, group_id: str = "optikpi-connector", server_port: int = 0) -> dict[str, Any]:
        from connector.devtools.sandbox.server import DEMO_ACCOUNT_ID, DEMO_TOKEN, DEMO_WORKSPACE_ID

        return stack_config(
            self.broker.bootstrap_servers,
            self.registry.url,
            self.api.base_url,
            DEMO_TOKEN,
            DEMO_ACCOUNT_ID,
            DEMO_WORKSPACE_ID,
            group_id=group_id,
            server_port=server_port,
        )

    def create_topics(self, settings: Settings) -> None:
        """The mapped topics and the dead-letter topic (existing ones are left as they are)."""
        from connector.kafka.admin import KafkaAdmin
        from connector.kafka.config import admin_config

        assert settings.dead_letter is not None
        admin = KafkaAdmin(admin_config(self.broker.bootstrap_servers, {}))
        topics = [m.topic for m in settings.mappings] + [settings.dead_letter.topic]
        admin.create_topics(topics, TOPIC_PARTITIONS, 30.0)


def write_config(stack: LocalStack, path: Path) -> tuple[Settings, int]:
    """Write a working configuration for `stack` to `path`; returns it and its health port."""
    from connector.devtools.embedded_broker import free_port

    server_port = free_port()
    doc = stack.config(server_port=server_port)
    header = "# Written by optikpi-connector: the local stack's addresses and the sandbox's credentials.\n"
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return parse_settings(doc, "run", source=str(path), env={}), server_port


def print_next_steps(stack: LocalStack, config: Path, server_port: int) -> None:
    print(
        f"""
dev-stack is up:
  Kafka broker     {stack.broker.bootstrap_servers}
  schema registry  {stack.registry.url}
  sandbox API      {stack.api.base_url}
  configuration    {config}

Next, in another terminal:
  optikpi-connector produce-sample --config {config} --count 1000 --poison-rate 0.01
  optikpi-connector run --config {config}
  optikpi-connector dlq list --config {config}
  curl -s localhost:{server_port}/readyz
  curl -s localhost:{server_port}/metrics | grep '^optikpi_'
  curl -s {stack.api.root_url}/_sandbox/stats

Ctrl-C (or SIGTERM) stops the stack.""",
        flush=True,
    )


def serve_until_stopped(stack: LocalStack) -> int:
    """Block until SIGINT or SIGTERM (exit 0), or until the broker dies (exit 1)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            if not stack.broker.running:
                print(f"dev-stack: the broker exited; see {stack.workdir / 'broker.log'}", flush=True)
                return ExitCode.FAILURE
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("dev-stack: stopping ...", flush=True)
    return ExitCode.OK


def run_dev_stack(workdir: Path, broker_port: int = 0, registry_port: int = 0, api_port: int = 0) -> int:
    print(
        "dev-stack: starting the embedded Kafka broker, a schema registry and the sandbox API ...", flush=True
    )
    with LocalStack(workdir, broker_port, registry_port, api_port) as stack:
        config = workdir / CONFIG_FILE
        settings, server_port = write_config(stack, config)
        stack.create_topics(settings)
        print_next_steps(stack, config, server_port)
        code = serve_until_stopped(stack)
    print("dev-stack: stopped", flush=True)
    return code
