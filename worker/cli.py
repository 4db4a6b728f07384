"""`clinia-ingest`: one console script whose subcommands each import only what they need."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Final, TextIO

if TYPE_CHECKING:
    from worker.settings import IngestSettings
    from worker.store import Store

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNAVAILABLE: Final = 3
DEFAULT_BATCH_SIZE: Final = 500
BAR_WIDTH: Final = 30
MAX_PORT: Final = 65535

EPILOG = """\
exit codes: 0 success; 1 some events refused (publish) or event unknown (status);
2 usage or settings error; 3 Redis unreachable.
Settings come from the environment (INGEST_*, CLINIA_*); see the README."""


class UsageError(Exception):
    """A command cannot run as asked; the message names the argument and the reason."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clinia-ingest",
        description="Ingest change events into the Clinia Registry, or run a local emulator of it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run the end-to-end demo against a local emulator")
    demo.set_defaults(run=_run_demo)

    emulator = commands.add_parser(
        "emulator", help="serve a local emulator of the Registry API", add_help=False
    )
    # Its options are declared by emulator.server, imported only when this subcommand runs, so
    # the other subcommands never load uvicorn and Starlette.
    emulator.add_argument("emulator_args", nargs=argparse.REMAINDER, help="see `emulator --help`")

    worker = commands.add_parser(
        "worker",
        help="run a Celery worker (with the ticker); arguments go to `celery worker`",
        add_help=False,
    )
    worker.add_argument("celery_args", nargs=argparse.REMAINDER, help="e.g. -c 4 --loglevel INFO")

    publish = commands.add_parser("publish", help="publish change events from a JSON Lines file")
    publish.add_argument("file", metavar="FILE", help="JSON Lines, one event per line; - for stdin")
    publish.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULT_BATCH_SIZE,
        help=f"events per publish call (default {DEFAULT_BATCH_SIZE})",
    )
    atomic_help = "each batch is one atomic publish batch: if one event fails, all of it does"
    publish.add_argument("--atomic", action="store_true", help=atomic_help)
    mode_help = "bundle (default) or bulk (backfills)"
    publish.add_argument("--mode", choices=["bundle", "bulk"], default="bundle", help=mode_help)
    publish.set_defaults(run=_run_publish)

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
    metrics.add_argument("--port", type=_positive_int, help="port (default INGEST_METRICS_PORT)")
    metrics.set_defaults(run=_run_metrics)

    from worker.dlq_cli import add_commands

    add_commands(commands)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _run_emulator(arguments: Sequence[str]) -> int:
    from emulator.server import add_arguments, run_from_args

    parser = argparse.ArgumentParser(
        prog="clinia-ingest emulator", description="Serve a local emulator of the Registry API."
    )
    add_arguments(parser)
    code: int = run_from_args(parser.parse_args(arguments))
    return code


def _run_demo(args: argparse.Namespace) -> int:
    from worker.demo import run_demo

    return run_demo()


def _run_worker(celery_args: Sequence[str]) -> int:
    """Run a Celery worker for our app; Celery parses the arguments and exits the process."""
    from worker.celery_app import app
    from worker.settings import SettingsError

    try:
        _ = app.ingest_settings  # read now, so a bad variable is one clear line, not a traceback
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    app.worker_main(["worker", *celery_args])


# -- settings and dependencies ------------------------------------------------------------


def _settings() -> IngestSettings:
    from worker.settings import read_settings

    try:
        return read_settings()
    except ValueError as exc:  # SettingsError; its message names the variable
        raise UsageError(str(exc)) from None


def _store(settings: IngestSettings) -> Store:
    """The Redis store alone: publishing and reading need no Registry client and no API key."""
    from worker.logging import configure_cli_logging, secrets_of
    from worker.producer import open_store

    configure_cli_logging(secrets_of(settings))
    return open_store(settings)


# -- publish ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineError:
    """One refused line: where, which event, which field and why (never the value)."""

    line: int
    event_id: str | None
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: event {self.event_id or '?'}: {self.field}: {self.reason}"


@dataclass
class PublishTally:
    """What a publish run did so far."""

    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    last_line: int = 0


class Progress:
    """A one-line progress bar on a terminal; silent elsewhere. No dependency."""

    def __init__(self, stream: TextIO, total_bytes: int | None, *, enabled: bool) -> None:
        self.stream = stream
        self.total_bytes = total_bytes
        self.enabled = enabled
        self._drawn = False

    def update(self, done_bytes: int, events: int) -> None:
        """Redraw the bar: bytes read against the file size, or just the count for a pipe."""
        if not self.enabled:
            return
        if self.total_bytes:
            fraction = min(1.0, done_bytes / self.total_bytes)
            filled = int(fraction * BAR_WIDTH)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            self.stream.write(f"\r[{bar}] {fraction:4.0%} {events} events")
        else:
            self.stream.write(f"\r{events} events")
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        """End the bar's line so later output starts on a fresh one."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def read_lines(stream: IO[bytes]) -> Iterator[tuple[int, int, dict[str, Any] | LineError]]:
    """(line number, bytes read so far, event or error) for every non-blank line."""
    done = 0
    for number, raw in enumerate(stream, start=1):
        done += len(raw)
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            reason = f"invalid JSON: {getattr(exc, 'msg', None) or type(exc).__name__}"
            yield number, done, LineError(number, None, "line", reason)
            continue
        if not isinstance(value, dict):
            reason = f"expected a JSON object, got {type(value).__name__}"
            yield number, done, LineError(number, None, "line", reason)
            continue
        yield number, done, value


def publish_stream(
    stream: IO[bytes],
    publish: Callable[[list[dict[str, Any]]], Any],
    *,
    batch_size: int,
    on_error: Callable[[LineError], None],
    progress: Progress,
    tally: PublishTally | None = None,
) -> PublishTally:
    """Publish the events of a JSON Lines stream in batches; report each refused line.

    `tally` (updated as batches go in) tells how far it got when a batch raises.
    """
    tally = PublishTally() if tally is None else tally
    batch: list[tuple[int, dict[str, Any]]] = []

    def flush_batch() -> None:
        if not batch:
            return
        report = publish([event for _, event in batch])
        for error in report.errors:
            line, event = batch[error.index]
            given = event.get("eventId")
            event_id = error.event_id or (given if isinstance(given, str) and given else None)
            on_error(LineError(line, event_id, error.field or "event", error.reason))
        tally.refused += len(report.errors)
        tally.duplicates += len(report.duplicates)
        tally.accepted += len(report.accepted)
        tally.last_line = batch[-1][0]
        batch.clear()

    done, events = 0, 0
    for number, done, item in read_lines(stream):
        if isinstance(item, LineError):
            tally.refused += 1
            on_error(item)
            continue
        batch.append((number, item))
        events += 1
        if len(batch) >= batch_size:
            flush_batch()
            progress.update(done, events)
    flush_batch()
    progress.update(done, events)
    progress.finish()
    return tally


def _run_publish(args: argparse.Namespace) -> int:
    import redis

    settings = _settings()
    stream, total = _open_input(args.file)
    try:
        store = _store(settings)
        from worker.publisher import publish

        def publish_batch(events: list[dict[str, Any]]) -> Any:
            return publish(store, events, atomic=args.atomic, mode=args.mode)

        progress = Progress(sys.stderr, total, enabled=sys.stderr.isatty())
        tally = PublishTally()
        try:
            publish_stream(
                stream, publish_batch, batch_size=args.batch_size, on_error=_report_error,
                progress=progress, tally=tally,
            )  # fmt: skip
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            progress.finish()
            sys.stderr.write(
                f"clinia-ingest: Redis unreachable ({type(exc).__name__}); events up to line "
                f"{tally.last_line} may be in, run again: duplicates are skipped\n"
            )
            return EXIT_UNAVAILABLE
    finally:
        stream.close()
    _out(
        f"published {tally.accepted} events ({tally.duplicates} duplicates), "
        f"refused {tally.refused}"
    )
    return EXIT_REFUSED if tally.refused else EXIT_OK


def _report_error(error: LineError) -> None:
    sys.stderr.write(f"{error}\n")


def _open_input(name: str) -> tuple[IO[bytes], int | None]:
    """The byte stream to read and its size when known (for the progress bar)."""
    if name == "-":
        return sys.stdin.buffer, None
    try:
        stream = open(name, "rb")  # noqa: SIM115 (closed by the caller)
    except OSError as exc:
        raise UsageError(f"FILE: cannot read {name}: {exc.strerror}") from None
    try:
        size: int | None = os.fstat(stream.fileno()).st_size
    except OSError:
        size = None
    return stream, size


# -- status and backlog -----------------------------------------------------------------------


def _run_status(args: argparse.Namespace) -> int:
    settings = _settings()
    from worker.results import event_status

    status = event_status(_store(settings), args.event_id)
    described = status.to_dict()
    if args.json:
        _out(json.dumps(described, sort_keys=True))
    else:
        for key, value in described.items():
            if value is not None:
                _out(f"{key}: {value}")
    return EXIT_REFUSED if status.status == "unknown" else EXIT_OK


def _run_backlog(args: argparse.Namespace) -> int:
    settings = _settings()
    from worker.results import backlog

    found = backlog(_store(settings))
    if args.json:
        _out(json.dumps(found.to_dict(), sort_keys=True))
        return EXIT_OK
    _out(str(found.total))
    for source, counts in sorted(found.to_dict().get("sources", {}).items()):
        parts = " ".join(f"{key}={value}" for key, value in sorted(counts.items()))
        _out(f"  {source}: {parts}")
    return EXIT_OK


def _run_metrics(args: argparse.Namespace) -> int:
    import logging

    from worker.logging import configure_cli_logging, secrets_of
    from worker.metrics import serve_until_signalled
    from worker.producer import open_store

    settings = _settings()
    configure_cli_logging(secrets_of(settings), level=logging.INFO)
    port = args.port or settings.metrics_port
    if port > MAX_PORT:
        raise UsageError(f"--port: must be at most {MAX_PORT}, got {port}")
    try:
        serve_until_signalled(open_store(settings), args.host, port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{port}: {exc.strerror or exc}") from None
    return EXIT_OK


def _out(line: str) -> None:
    sys.stdout.write(f"{line}\n")


# -- entry point ----------------------------------------------------------------------------


_PASSTHROUGH: dict[str, Callable[[Sequence[str]], int]] = {
    "worker": _run_worker,
    "emulator": _run_emulator,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    run: Callable[[], int]
    if arguments[:1] and arguments[0] in _PASSTHROUGH:
        # Everything after `worker` is Celery's, and after `emulator` the emulator's parser's,
        # options included: the top-level parser would claim them.
        command = arguments[0]
        passthrough = _PASSTHROUGH[command]

        def run() -> int:
            return passthrough(arguments[1:])

    else:
        args = _build_parser().parse_args(arguments)
        command = str(args.command)

        def run() -> int:
            code: int = args.run(args)
            return code

    try:
        code = run()
    except UsageError as exc:
        sys.stderr.write(f"clinia-ingest {command}: {exc}\n")
        return EXIT_USAGE
    except _unavailable_errors() as exc:
        sys.stderr.write(f"clinia-ingest {command}: Redis unreachable: {exc}\n")
        return EXIT_UNAVAILABLE
    return code


def _unavailable_errors() -> tuple[type[BaseException], ...]:
    if "redis" not in sys.modules:  # nothing imported redis, so nothing can have raised it
        return ()
    import redis

    return (redis.ConnectionError, redis.TimeoutError)


if __name__ == "__main__":
    sys.exit(main())
