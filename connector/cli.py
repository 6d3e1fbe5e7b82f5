"""Command line: parse, load the configuration once, call a command. Nothing else lives here.

Exit codes: 0 success; 1 runtime failure (or, for `send`, records rejected or invalid);
2 bad usage or bad configuration, always as one line per problem and never a traceback;
3 `send` gave up after --max-elapsed seconds of failures, with one line saying what was not sent.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector import __version__
from connector.endpoints import ENDPOINT_KEYS
from connector.errors import ConfigError, ExitCode
from connector.runtime import stopping

if TYPE_CHECKING:  # the configuration's imports are heavy: a SIGTERM must find the handler first
    from connector.config.settings import Settings

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


def main(argv: Sequence[str] | None = None) -> int:
    restore_signals = stopping.install_early()
    try:
        return _main(argv)
    except stopping.StopRequested as exc:
        from connector.runtime.logs import get_logger

        # Nothing ran yet that needs draining, and no group was joined that needs leaving.
        get_logger(__name__).info(stopping.EARLY_STOP_EVENT, signal=exc.signal_name)
        return ExitCode.OK
    finally:
        restore_signals()


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "run":
        stopping.not_a_service()
    from connector.runtime import logs

    # The demo prints its own summary; per-record dead-letter warnings would bury it.
    quiet = {"demo": "error", "dev-stack": "warning"}
    level = args.log_level or quiet.get(args.command, "info")
    json_logs = None if args.log_format == "auto" else args.log_format == "json"
    logs.configure(level, json_logs)
    try:
        return _dispatch(args, json_logs)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"configuration error: {line}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception as exc:
        # Bad input never ends in a traceback; a bug shows one only when asked for (--log-level debug).
        if level == "debug":
            raise
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return ExitCode.FAILURE


def _dispatch(args: argparse.Namespace, json_logs: bool | None) -> int:
    from connector.runtime import logs

    if args.command == "sandbox":
        from connector.devtools.sandbox.server import (
            DEMO_ACCOUNT_ID,
            DEMO_TOKEN,
            DEMO_WORKSPACE_ID,
            SandboxOptions,
            run_sandbox,
        )

        logs.register_secret(args.token)
        return run_sandbox(
            SandboxOptions(
                host=args.host,
                port=args.port,
                token=args.token or DEMO_TOKEN,
                account_id=args.account_id or DEMO_ACCOUNT_ID,
                workspace_id=args.workspace_id or DEMO_WORKSPACE_ID,
                rate_limit_scale=args.rate_limit_scale,
                fail_rate=args.fail_rate,
                throttle_rate=args.throttle_rate,
                latency_ms=args.latency_ms,
                drop_rate=args.drop_rate,
                slow_rate=args.slow_rate,
                slow_ms=args.slow_ms,
                max_body_bytes=args.max_body_bytes,
                store=args.store,
                seed=args.seed,
            )
        )
    if args.command == "demo":
        from connector.devtools.demo import run_demo

        return run_demo(
            count=args.count,
            poison_rate=args.poison_rate,
            timeout_s=args.timeout,
            workdir=args.workdir,
            keep_running=args.keep_running,
        )
    if args.command == "endpoints":
        from connector.commands.endpoints import run_endpoints

        return run_endpoints(args.name, args.markdown)
    if args.command == "dev-stack":
        from connector.devtools.devstack import run_dev_stack

        return run_dev_stack(args.workdir, args.broker_port, args.registry_port, args.api_port)

    from connector.config.loader import load_settings

    settings = load_settings(args.config, args.command)
    for dest in settings.destinations.values():
        if dest.auth_token is not None:
            logs.register_secret(dest.auth_token.get_secret_value())
    if args.log_level is None and settings.log_level != "info":
        logs.configure(settings.log_level, json_logs)

    if args.command == "send":
        return _send(args, settings)
    if args.command == "dlq":
        return _dlq(args, settings)
    if args.command == "run":
        from connector.commands.run import run_connector

        return run_connector(settings)
    if args.command == "check":
        from connector.commands.check import run_check

        return run_check(settings, offline=args.offline, as_json=args.json, timeout_s=args.timeout)
    if args.command == "produce-sample":
        from connector.devtools.produce import run_produce_sample

        return run_produce_sample(
            settings, count=args.count, poison_rate=args.poison_rate, seed=args.seed, timeout_s=args.timeout
        )
    raise AssertionError(f"unhandled command {args.command}")


def _dlq(args: argparse.Namespace, settings: Settings) -> int:
    from connector.dlq.command import DlqRequest, run_dlq
    from connector.dlq.read import Filters

    action: str = args.dlq_command
    request = DlqRequest(
        action=action,
        as_json=args.json,
        timeout_s=args.timeout,
        position=getattr(args, "position", None),
        to=getattr(args, "to", None),
        dry_run=getattr(args, "dry_run", False),
        rate=getattr(args, "rate", 100.0),
        yes=getattr(args, "yes", False),
    )
    if action != "show":
        request = replace(
            request,
            filters=Filters(
                stages=frozenset(args.stage or ()),
                endpoints=frozenset(args.endpoint or ()),
                topics=frozenset(args.topic or ()),
                since=args.since,
                until=args.until,
                limit=args.limit,
            ),
        )
    return run_dlq(settings, request)


def _send(args: argparse.Namespace, settings: Settings) -> int:
    from connector.commands.send import gave_up_line, send_file, summary
    from connector.errors import CredentialsError, TokenFileError
    from connector.ingest.client import IngestClient
    from connector.runtime.metrics import Metrics

    path: Path = args.file
    if not path.is_file():
        print(f"error: {path}: no such file", file=sys.stderr)
        return ExitCode.USAGE
    destination = settings.optikpi
    assert destination is not None
    retry = settings.retry.model_copy(update={"max_elapsed_s": args.max_elapsed})
    metrics = Metrics()  # the progress line and the summary read the client's counters
    try:
        client = IngestClient(destination, retry, settings.batching, metrics=metrics)
    except TokenFileError as exc:
        print(f"configuration error: optikpi.auth_token_file: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        report = send_file(
            args.endpoint, path, settings, client, sys.stdout, metrics=metrics, progress=sys.stderr
        )
    except CredentialsError as exc:
        key = "optikpi.base_url" if exc.wrong_base_url else "optikpi.auth_token"
        print(f"configuration error: {key}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except TokenFileError as exc:
        print(f"configuration error: optikpi.auth_token_file: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except UnicodeDecodeError:
        print(f"error: {path}: not UTF-8 text", file=sys.stderr)
        return ExitCode.USAGE
    finally:
        client.close()
    print(summary(report, path))
    if report.gave_up is not None:
        print(gave_up_line(report, destination.base_url), file=sys.stderr)
    return report.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
