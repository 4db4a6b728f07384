"""`clinia-ingest dlq list|show|replay|purge` and `clinia-ingest abandon`: the operator's tools.

Exit codes as for the other subcommands: 0 done; 1 something refused (an event unknown, a replay
refused or invalid, a task not abandoned); 2 usage; 3 Redis unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from worker import cli

if TYPE_CHECKING:
    from worker.deadletters import Correction, DlqFilter

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
DEFAULT_LIMIT: Final = 100


def add_commands(commands: Any) -> None:
    """Register `dlq` and `abandon` on the top-level subparsers."""
    dlq = commands.add_parser("dlq", help="list, show, replay or purge dead letters")
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="ids, stage, error type and message of entries")
    _filters(listing)
    listing.add_argument("--limit", type=cli._positive_int, default=DEFAULT_LIMIT, help="at most N")
    listing.set_defaults(run=_run_list)

    show = actions.add_parser("show", help="every entry of one event, with the stored event")
    show.add_argument("event_id", metavar="EVENT_ID")
    show.add_argument("--source", action="append", default=[], help="only this source")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(run=_run_show)

    replay = actions.add_parser("replay", help="publish dead-lettered events again (same ids)")
    _filters(replay)
    replay.add_argument("--data", metavar="FILE", help="a JSON object: the corrected `data`")
    replay.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="set a dotted field (VALUE read as JSON, else as text); repeatable",
    )
    replay.add_argument(
        "--unset", action="append", default=[], metavar="PATH", help="remove a dotted field"
    )
    replay.add_argument("--dry-run", action="store_true", help="validate, write nothing")
    _everything(replay)
    replay.set_defaults(run=_run_replay)

    purge = actions.add_parser("purge", help="remove entries (asks nothing)")
    _filters(purge)
    purge.add_argument("--dry-run", action="store_true", help="count, remove nothing")
    _everything(purge)
    purge.set_defaults(run=_run_purge)

    abandon = commands.add_parser(
        "abandon", help="dead-letter a STALE task's events (reason STALE) and release its locks"
    )
    abandon.add_argument("ident", metavar="TASK_ID", help="a task id or a bundle id")
    abandon.add_argument("--json", action="store_true", help="print JSON")
    abandon.set_defaults(run=_run_abandon)


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", action="append", default=[], help="only this source")
    parser.add_argument("--stage", choices=["publish", "flush", "record"], help="only this stage")
    parser.add_argument("--error-type", help="only this error type (e.g. INVALID_ARGUMENT)")
    parser.add_argument("--event-id", help="only this event")
    parser.add_argument("--since", type=_time_ms, help="failed at or after (ISO 8601 or ms)")
    parser.add_argument("--until", type=_time_ms, help="failed at or before (ISO 8601 or ms)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _everything(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--all",
        dest="everything",
        action="store_true",
        help="act on every entry of every stream (required when no filter is given)",
    )


def _require_scope(args: argparse.Namespace) -> None:
    """replay and purge act on every stream only when asked to with --all."""
    from worker.deadletters import DlqFilter

    if not args.everything and filter_of(args) == DlqFilter():
        raise cli.UsageError(
            f"dlq {args.dlq_command}: give a filter (--source, --stage, --error-type, "
            "--event-id, --since, --until) or --all to act on every dead letter"
        )


def _time_ms(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ISO 8601 or ms, got {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (Z or +hh:mm) in {text!r}")
    return int(moment.timestamp() * 1000)


def filter_of(args: argparse.Namespace) -> DlqFilter:
    """The filter the options name."""
    from worker.deadletters import DlqFilter

    return DlqFilter(
        sources=tuple(args.source),
        stage=args.stage,
        error_type=args.error_type,
        event_id=args.event_id,
        since_ms=args.since,
        until_ms=args.until,
    )


def correction_of(args: argparse.Namespace) -> Correction:
    """The correction `--data`, `--set` and `--unset` name.

    Raises:
        cli.UsageError: a file cannot be read or is not a JSON object, or a `--set` has no `=`.
    """
    from worker.deadletters import Correction

    data = None
    if args.data is not None:
        try:
            with open(args.data, encoding="utf-8") as stream:
                data = json.load(stream)
        except OSError as exc:
            raise cli.UsageError(f"--data: cannot read {args.data}: {exc.strerror}") from None
        except ValueError:
            raise cli.UsageError(f"--data: {args.data} is not JSON") from None
        if not isinstance(data, dict):
            raise cli.UsageError("--data: expected a JSON object (the event's data)")
    sets = []
    for item in args.sets:
        path, sep, value = item.partition("=")
        if not sep or not path:
            raise cli.UsageError(f"--set: expected PATH=VALUE, got {item!r}")
        try:
            parsed: Any = json.loads(value)
        except ValueError:
            parsed = value
        sets.append((path, parsed))
    return Correction(data=data, sets=tuple(sets), unsets=tuple(args.unset))


def _run_list(args: argparse.Namespace) -> int:
    from worker.deadletters import list_dead_letters

    found = list_dead_letters(cli._store(cli._settings()), filter_of(args), limit=args.limit)
    if args.json:
        cli._out(json.dumps([letter.summary() for letter in found], sort_keys=True))
        return EXIT_OK
    for letter in found:
        cli._out(
            f"{letter.source} {letter.entry_id} {letter.event_id or '?'} {letter.stage} "
            f"{letter.error_type}: {letter.message}"
        )
    return EXIT_OK


def _run_show(args: argparse.Namespace) -> int:
    from worker.deadletters import show

    found = show(cli._store(cli._settings()), args.event_id, sources=args.source)
    if args.json:
        cli._out(json.dumps([letter.to_dict() for letter in found], sort_keys=True))
    else:
        for letter in found:
            for key, value in letter.to_dict().items():
                if value is not None:
                    shown = json.dumps(value, sort_keys=True) if key == "event" else value
                    cli._out(f"{key}: {shown}")
            cli._out("")
    return EXIT_OK if found else EXIT_REFUSED


def _run_replay(args: argparse.Namespace) -> int:
    from worker.deadletters import replay

    correction = correction_of(args)
    _require_scope(args)
    items = replay(
        cli._store(cli._settings()), filter_of(args), correction=correction, dry_run=args.dry_run
    )
    ok = {"replayed", "superseded", "would-replay"}
    all_ok = True
    try:
        with _JsonList(args.json) as shown:
            for i in items:  # printed as each page is done: memory holds one page
                all_ok = all_ok and i.outcome in ok
                if args.json:
                    shown.add(i.to_dict())
                else:
                    detail = f": {i.detail}" if i.detail else ""
                    cli._out(f"{i.source} {i.event_id or '?'} {i.outcome}{detail}")
    except ValueError as exc:
        raise cli.UsageError(str(exc)) from None
    return EXIT_OK if all_ok else EXIT_REFUSED


def _run_purge(args: argparse.Namespace) -> int:
    from worker.deadletters import purge

    _require_scope(args)
    count = 0
    with _JsonList(args.json, head=f'{{"dryRun": {json.dumps(args.dry_run)}, "entries": ') as shown:
        for letter in purge(cli._store(cli._settings()), filter_of(args), dry_run=args.dry_run):
            count += 1
            if args.json:
                shown.add({"source": letter.source, "entryId": letter.entry_id})
        shown.tail = f', "count": {count}}}'
    if not args.json:
        verb = "would remove" if args.dry_run else "removed"
        cli._out(f"{verb} {count} entries")
    return EXIT_OK


class _JsonList:
    """A JSON list written an item at a time (inside `head` ... `tail` when given), so output
    of any length costs no memory; writes nothing unless `enabled`."""

    def __init__(self, enabled: bool, *, head: str = "") -> None:
        self.enabled = enabled
        self.head = head
        self.tail = ""
        self.items = 0

    def __enter__(self) -> _JsonList:
        return self

    def add(self, item: Any) -> None:
        opening = self.head + "[" if self.items == 0 else ", "
        sys.stdout.write(opening + json.dumps(item, sort_keys=True))
        self.items += 1

    def __exit__(self, kind: object, *_: object) -> None:
        if not self.enabled or kind is not None:
            return
        closing = "]" if self.items else self.head + "[]"
        sys.stdout.write(closing + self.tail + "\n")
        sys.stdout.flush()


def _run_abandon(args: argparse.Namespace) -> int:
    from worker.abandon import abandon

    result = abandon(cli._store(cli._settings()), args.ident)
    if args.json:
        cli._out(json.dumps(result.to_dict(), sort_keys=True))
    elif result.done:
        cli._out(
            f"abandoned {result.task_id or result.bundle_id} ({result.source}): "
            f"{result.dead_letters} events dead-lettered (STALE)"
        )
    else:
        sys.stderr.write(f"clinia-ingest abandon: {result.code}: {result.detail}\n")
    return EXIT_OK if result.done else EXIT_REFUSED
