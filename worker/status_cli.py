"""`clinia-ingest status | backlog | metrics`: what the pipeline holds, read from Redis alone.

None of them needs the Registry or its key. `status` exits 1 for an event it does not know.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Final

from worker import cli

MAX_PORT: Final = 65535


def add_commands(commands: Any) -> None:
    """Register `status`, `backlog` and `metrics` on the top-level subparsers."""
    status = commands.add_parser("status", help="show what became of one event")
    status.add_argument("event_id", metavar="EVENT_ID")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(run=_run_status)

    backlog = commands.add_parser(
        "backlog", help="print the work left (0 when nothing is pending, in flight or due)"
    )
    backlog.add_argument("--json", action="store_true", help="print JSON, per source")
    backlog.set_defaults(run=_run_backlog)

    metrics = commands.add_parser(
        "metrics", help="serve the backlog as Prometheus metrics, read from Redis at each scrape"
    )
    metrics.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    metrics.add_argument(
        "--port", type=cli._positive_int, help="port (default INGEST_METRICS_PORT)"
    )
    metrics.set_defaults(run=_run_metrics)


def _run_status(args: argparse.Namespace) -> int:
    settings = cli._settings()
    from worker.results import event_status

    status = event_status(cli._store(settings), args.event_id)
    described = status.to_dict()
    if args.json:
        cli._out(json.dumps(described, sort_keys=True))
    else:
        for key, value in described.items():
            if value is not None:
                cli._out(f"{key}: {value}")
    return cli.EXIT_REFUSED if status.status == "unknown" else cli.EXIT_OK


def _run_backlog(args: argparse.Namespace) -> int:
    settings = cli._settings()
    from worker.results import backlog

    found = backlog(cli._store(settings))
    if args.json:
        cli._out(json.dumps(found.to_dict(), sort_keys=True))
        return cli.EXIT_OK
    cli._out(str(found.total))
    for source, counts in sorted(found.to_dict().get("sources", {}).items()):
        parts = " ".join(f"{key}={value}" for key, value in sorted(counts.items()))
        cli._out(f"  {source}: {parts}")
    return cli.EXIT_OK


def _run_metrics(args: argparse.Namespace) -> int:
    import logging

    from worker.logging import configure_cli_logging, secrets_of
    from worker.metrics import serve_until_signalled
    from worker.producer import open_store

    settings = cli._settings()
    configure_cli_logging(secrets_of(settings), level=logging.INFO)
    port = args.port or settings.metrics_port
    if port > MAX_PORT:
        raise cli.UsageError(f"--port: must be at most {MAX_PORT}, got {port}")
    try:
        serve_until_signalled(open_store(settings), args.host, port)
    except OSError as exc:
        raise cli.UsageError(
            f"cannot listen on {args.host}:{port}: {exc.strerror or exc}"
        ) from None
    return cli.EXIT_OK
