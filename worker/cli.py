"""`clinia-ingest`: one console script whose subcommands each import only what they need."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clinia-ingest",
        description="Ingest change events into the Clinia Registry, or run a local emulator of it.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run the end-to-end demo against a local emulator")
    demo.set_defaults(run=_run_demo)

    emulator = commands.add_parser("emulator", help="serve a local emulator of the Registry API")
    from emulator.server import add_arguments, run_from_args

    add_arguments(emulator)
    emulator.set_defaults(run=run_from_args)
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    from worker.demo import run_demo

    return run_demo()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = _build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
