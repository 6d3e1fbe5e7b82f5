"""The command line's grammar: every command, option, default and help text, and the small
parsers that turn option text into values. `connector.cli` parses with it and dispatches."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connector import __version__
from connector.endpoints import ENDPOINT_KEYS

CONFIG_HELP = "the configuration file (YAML)"


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _non_negative(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text} must not be negative")
        return value

    return parse


class _DefaultsShown(argparse.HelpFormatter):
    """Appends "(default X)" to an option's help unless the text already says its default.

    None and False defaults (required options, flags) have nothing worth showing.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default is not None and action.default is not False
        if shown and action.default is not argparse.SUPPRESS and "default" not in text:
            text += " (default %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    # Subparsers are built with the parent's class, so every command gets the formatter.
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _DefaultsShown)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="optikpi-connector",
        description="Feed Avro Kafka topics into the OptiKPI Data Pipeline Ingest API.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default=None,
        help="overrides log_level from the configuration (default info)",
    )
    parser.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        default="auto",
        help="auto: JSON when stderr is not a terminal, console otherwise",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="consume the mapped topics until SIGTERM/SIGINT, then drain and commit")
    run.add_argument("--config", required=True, type=Path, metavar="FILE", help=CONFIG_HELP)

    check = sub.add_parser("check", help="validate the configuration and every mapping against its schema")
    check.add_argument("--config", required=True, type=Path, metavar="FILE", help=CONFIG_HELP)
    check.add_argument("--offline", action="store_true", help="do not contact Kafka, the registry or the API")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    _add_kafka_timeout(check)

    send = sub.add_parser(
        "send", help="upload a JSON-lines file to one endpoint (validate, batch, sign, retry)"
    )
    send.add_argument("endpoint", choices=ENDPOINT_KEYS, metavar="ENDPOINT", help=", ".join(ENDPOINT_KEYS))
    send.add_argument("file", type=Path, metavar="FILE.jsonl", help="one JSON record per line")
    send.add_argument("--config", required=True, type=Path, metavar="FILE", help=CONFIG_HELP)
    send.add_argument(
        "--max-elapsed",
        type=_non_negative(float),
        default=300.0,
        metavar="S",
        help="give up when one request has failed for this many seconds, and exit 3; 0 retries forever"
        " (overrides retry.max_elapsed_s)",
    )

    endpoints = sub.add_parser("endpoints", help="the record model of each endpoint: fields, types, required")
    endpoints.add_argument(
        "name",
        nargs="?",
        metavar="NAME",
        help="one endpoint (" + ", ".join(ENDPOINT_KEYS) + "); all if left out",
    )
    endpoints.add_argument("--markdown", action="store_true", help="print Markdown, as in docs/endpoints.md")

    sandbox = sub.add_parser("sandbox", help="run a local emulator of the ingest API")
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sandbox.add_argument("--port", type=_non_negative(int), default=8088, help="0: a free port")
    sandbox.add_argument("--token", default=None, help="expected auth token (default: the demo token)")
    sandbox.add_argument("--account-id", default=None, help="expected account id (default: the demo one)")
    sandbox.add_argument("--workspace-id", default=None, help="expected workspace id (default: the demo one)")
    sandbox.add_argument(
        "--rate-limit-scale",
        type=_non_negative(float),
        default=1.0,
        help="multiply every endpoint's rate limit; 0 turns limiting off",
    )
    sandbox.add_argument(
        "--fail-rate", type=_fraction, default=0.0, help="share of requests answered 500/503"
    )
    sandbox.add_argument(
        "--throttle-rate", type=_fraction, default=0.0, help="share of requests answered 429"
    )
    sandbox.add_argument("--latency-ms", type=_non_negative(int), default=0, help="added to every answer")
    sandbox.add_argument(
        "--drop-rate",
        type=_fraction,
        default=0.0,
        help="share of requests whose connection is closed without an answer",
    )
    sandbox.add_argument(
        "--slow-rate", type=_fraction, default=0.0, help="share of requests answered --slow-ms later"
    )
    sandbox.add_argument(
        "--slow-ms", type=_non_negative(int), default=0, help="extra latency of the slow requests"
    )
    sandbox.add_argument(
        "--max-body-bytes", type=_non_negative(int), default=1_000_000, help="larger requests get 413"
    )
    sandbox.add_argument(
        "--store", type=Path, default=None, metavar="FILE.jsonl", help="append accepted records to this file"
    )
    sandbox.add_argument("--seed", type=int, default=None, help="seed for fault injection (default: random)")

    _add_dlq_parser(sub)

    produce = sub.add_parser("produce-sample", help="write realistic Avro sample events to the mapped topics")
    produce.add_argument("--config", required=True, type=Path, metavar="FILE", help=CONFIG_HELP)
    produce.add_argument("--count", required=True, type=_non_negative(int), help="events per topic")
    produce.add_argument("--poison-rate", type=_fraction, default=0.0, help="share of poison records")
    produce.add_argument("--seed", type=int, default=7, help="seed for the generated values")
    _add_kafka_timeout(produce)

    demo = sub.add_parser(
        "demo", help="everything on this machine: broker, sandbox, sample events, connector"
    )
    demo.add_argument("--count", type=_non_negative(int), default=2000, help="events per topic")
    demo.add_argument("--poison-rate", type=_fraction, default=0.01, help="share of poison records")
    demo.add_argument(
        "--timeout", type=_non_negative(float), default=180.0, help="give up after this many seconds"
    )
    demo.add_argument("--workdir", type=Path, default=Path(".demo"), help="broker log and generated config")
    demo.add_argument(
        "--keep-running", action="store_true", help="leave the stack up afterwards, as dev-stack does"
    )

    stack = sub.add_parser(
        "dev-stack", help="broker, schema registry and sandbox API on this machine until Ctrl-C, no Docker"
    )
    stack.add_argument("--workdir", type=Path, default=Path(".dev-stack"), help="config.yaml, broker log")
    for part in ("broker", "registry", "api"):
        stack.add_argument(f"--{part}-port", type=_port, default=0, metavar="PORT", help="0: a free port")
    return parser


def _port(text: str) -> int:
    value = int(_non_negative(int)(text))
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port (0-65535)")
    return value


def _time_bound(text: str) -> datetime:
    from connector.dlq.read import parse_time_bound

    try:
        return parse_time_bound(text, datetime.now(UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        value = _non_negative(kind)(text)
        if not 0 < value < float("inf"):  # also refuses nan
            raise argparse.ArgumentTypeError(f"{text} must be a number greater than 0")
        return value

    return parse


def _add_kafka_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=_positive(float),
        default=10.0,
        metavar="S",
        help="how long to wait for Kafka before giving up",
    )


def _add_dlq_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    from connector.errors import Stage

    common = _Parser(add_help=False)
    common.add_argument("--config", required=True, type=Path, metavar="FILE", help=CONFIG_HELP)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument(
        "--timeout",
        type=_positive(float),
        default=10.0,
        metavar="S",
        help="how long to wait for Kafka, and for a silent partition, before giving up",
    )
    filters = _Parser(add_help=False)
    filters.add_argument(
        "--stage", action="append", type=str.upper, choices=[s.value for s in Stage], help="repeatable"
    )
    filters.add_argument(
        "--endpoint", action="append", choices=ENDPOINT_KEYS, metavar="ENDPOINT", help="repeatable"
    )
    filters.add_argument("--topic", action="append", metavar="TOPIC", help="original topic; repeatable")
    filters.add_argument(
        "--since",
        type=_time_bound,
        metavar="WHEN",
        help="failed at or after: 2h, 30m, 7d or an ISO 8601 time",
    )
    filters.add_argument("--until", type=_time_bound, metavar="WHEN", help="failed at or before")
    filters.add_argument("--limit", type=_positive(int), metavar="N", help="at most N records, in DLQ order")

    dlq = sub.add_parser("dlq", help="inspect and replay the dead-letter topic")
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    actions.add_parser("list", parents=[common, filters], help="one row per dead-lettered record")
    show = actions.add_parser("show", parents=[common], help="headers and decoded value of one record")
    show.add_argument(
        "position", metavar="PARTITION:OFFSET", help="or just OFFSET when the topic has one partition"
    )
    actions.add_parser("stats", parents=[common, filters], help="counts by stage, reason, endpoint and topic")
    replay = actions.add_parser(
        "replay", parents=[common, filters], help="re-publish records to their original topic"
    )
    replay.add_argument("--to", metavar="TOPIC", help="publish here instead of the original topic")
    replay.add_argument("--dry-run", action="store_true", help="print what would be sent; send nothing")
    replay.add_argument(
        "--rate", type=_positive(float), default=100.0, metavar="N", help="records per second"
    )
    replay.add_argument("--yes", action="store_true", help="do not ask for confirmation")
