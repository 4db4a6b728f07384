"""`clinia-ingest parked list | retry | abandon`: the way out of a parked bundle.

A parked bundle keeps its holds, so every later event on its entities waits behind it. `retry`
puts its events back in the ready log to be sent again, `abandon` dead-letters them (reason
PARKED); either releases its holds, and the events behind it go on in order (`worker.abandon`).

Exit codes as for the other subcommands: 0 done; 1 a bundle not parked, unknown or busy;
2 usage; 3 Redis unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Final

from worker import cli

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
DEFAULT_LIMIT: Final = 50


def add_commands(commands: Any) -> None:
    """Register `parked` on the top-level subparsers."""
    parked = commands.add_parser(
        "parked", help="list parked bundles, send their events again, or dead-letter them"
    )
    actions = parked.add_subparsers(dest="parked_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="parked bundles, oldest first (no payload)")
    _common(listing)
    listing.add_argument(
        "--offset", type=_not_negative, default=0, help="skip the first N (paging)"
    )
    listing.set_defaults(run=_run_list)

    for action, text in (
        ("retry", "put a parked bundle's events back in the ready log, to be sent again"),
        ("abandon", "dead-letter a parked bundle's events (reason PARKED)"),
    ):
        sub = actions.add_parser(action, help=text)
        sub.add_argument("ids", nargs="*", metavar="BUNDLE_ID", help="bundle (or task) ids")
        sub.add_argument(
            "--all", action="store_true", help="every parked bundle (of --source), up to --limit"
        )
        sub.add_argument("--dry-run", action="store_true", help="say what would be done")
        _common(sub)
        sub.set_defaults(run=_run_resolve, action=action)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", action="append", default=[], help="only this source")
    parser.add_argument(
        "--limit",
        type=cli._positive_int,
        default=DEFAULT_LIMIT,
        help=f"at most N ({DEFAULT_LIMIT})",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def _not_negative(value: str) -> int:
    number = int(value) if value.isdigit() else -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {value!r}")
    return number


def _run_list(args: argparse.Namespace) -> int:
    from worker.abandon import list_parked

    store = cli._store(cli._settings())
    page = list_parked(store, sources=args.source, limit=args.limit, offset=args.offset)
    if args.json:
        found = {
            "total": page.total,
            "offset": args.offset,
            "parked": [p.to_dict() for p in page.items],
        }
        cli._out(json.dumps(found, sort_keys=True))
        return EXIT_OK
    for p in page.items:
        task = f" task={p.task_id}" if p.task_id else ""
        cli._out(
            f"{p.source} {p.bundle_id} {p.state} events={p.events} blocked={p.blocked}"
            f"{task} parkedAtMs={p.parked_at_ms}: {p.error}"
        )
    left = page.total - args.offset - len(page.items)
    if left > 0:
        cli._out(f"{left} more (--offset {args.offset + len(page.items)})")
    return EXIT_OK


def _run_resolve(args: argparse.Namespace) -> int:
    from worker import abandon

    if bool(args.ids) == bool(args.all):
        raise cli.UsageError(f"parked {args.action}: name BUNDLE_IDs or --all, not both")
    store = cli._store(cli._settings())
    ids = list(args.ids)
    if args.all:
        page = abandon.list_parked(store, sources=args.source, limit=args.limit)
        ids = [p.bundle_id for p in page.items]
    results = [
        abandon.resolve_parked(store, ident, args.action, dry_run=args.dry_run) for ident in ids
    ]
    if args.json:
        cli._out(json.dumps([r.to_dict() for r in results], sort_keys=True))
    for r in results:
        if args.json:
            break
        if r.done:
            letters = f", {r.dead_letters} dead-lettered" if r.dead_letters else ""
            cli._out(f"{r.code} {r.bundle_id} ({r.source}): {r.events} events{letters}")
        else:
            sys.stderr.write(f"clinia-ingest parked {args.action}: {r.code}: {r.detail}\n")
    return EXIT_OK if all(r.done for r in results) else EXIT_REFUSED
