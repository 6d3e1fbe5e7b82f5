"""Command line: parse, load the configuration once, call a command. Nothing else lives here.

Exit codes: 0 success; 1 runtime failure (or, for `send`, records rejected or invalid);
2 bad usage or bad configuration, always as one line per problem and never a traceback;
3 `send` gave up after --max-elapsed seconds of failures, with one line saying what was not sent.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from connector.arguments import build_parser
from connector.errors import ConfigError, ExitCode
from connector.runtime import stopping

if TYPE_CHECKING:  # the configuration's imports are heavy: a SIGTERM must find the handler first
    from connector.config.settings import Settings


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
