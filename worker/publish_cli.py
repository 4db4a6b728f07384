"""`clinia-ingest publish FILE`: JSON Lines published in batches, each refused line on stderr.

Exit codes: 0 every event went in; 1 some were refused; 2 usage or settings; 3 Redis unreachable
or refusing writes for now: out of memory, read-only... (the message says up to which line events
may be in; running again skips the duplicates).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Final, TextIO

from worker import cli

DEFAULT_BATCH_SIZE: Final = 500
BAR_WIDTH: Final = 30


def add_commands(commands: Any) -> None:
    """Register `publish` on the top-level subparsers."""
    publish = commands.add_parser("publish", help="publish change events from a JSON Lines file")
    publish.add_argument("file", metavar="FILE", help="JSON Lines, one event per line; - for stdin")
    publish.add_argument(
        "--batch-size",
        type=cli._positive_int,
        default=DEFAULT_BATCH_SIZE,
        help=f"events per publish call (default {DEFAULT_BATCH_SIZE})",
    )
    atomic_help = "each batch is one atomic publish batch: if one event fails, all of it does"
    publish.add_argument("--atomic", action="store_true", help=atomic_help)
    mode_help = "bundle (default) or bulk (backfills)"
    publish.add_argument("--mode", choices=["bundle", "bulk"], default="bundle", help=mode_help)
    publish.set_defaults(run=_run_publish)


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

    settings = cli._settings()
    stream, total = _open_input(args.file)
    try:
        store = cli._store(settings)
        from worker.publisher import PublishIncompleteError, publish

        def publish_batch(events: list[dict[str, Any]]) -> Any:
            return publish(store, events, atomic=args.atomic, mode=args.mode)

        progress = Progress(sys.stderr, total, enabled=sys.stderr.isatty())
        tally = PublishTally()
        try:
            publish_stream(
                stream, publish_batch, batch_size=args.batch_size, on_error=_report_error,
                progress=progress, tally=tally,
            )  # fmt: skip
        except (redis.ConnectionError, redis.TimeoutError, PublishIncompleteError) as exc:
            progress.finish()
            what = str(exc) if isinstance(exc, PublishIncompleteError) else type(exc).__name__
            sys.stderr.write(
                f"clinia-ingest: Redis unreachable or refusing writes ({what}); events up to line "
                f"{tally.last_line} may be in, run again: duplicates are skipped\n"
            )
            return cli.EXIT_UNAVAILABLE
    finally:
        stream.close()
    cli._out(
        f"published {tally.accepted} events ({tally.duplicates} duplicates), "
        f"refused {tally.refused}"
    )
    return cli.EXIT_REFUSED if tally.refused else cli.EXIT_OK


def _report_error(error: LineError) -> None:
    sys.stderr.write(f"{error}\n")


def _open_input(name: str) -> tuple[IO[bytes], int | None]:
    """The byte stream to read and its size when known (for the progress bar)."""
    if name == "-":
        return sys.stdin.buffer, None
    try:
        stream = open(name, "rb")  # noqa: SIM115 (closed by the caller)
    except OSError as exc:
        raise cli.UsageError(f"FILE: cannot read {name}: {exc.strerror}") from None
    try:
        size: int | None = os.fstat(stream.fileno()).st_size
    except OSError:
        size = None
    return stream, size
