"""`clinia-ingest`: one console script whose subcommands each import only what they need.

Here: the top-level parser, the commands handed whole to another parser (`worker`, `emulator`,
`bench`), `demo`, and what every subcommand shares (exit codes, `UsageError`, settings, the
store). The rest live by theme: `publish_cli`, `status_cli` (status, backlog, metrics) and
`dlq_cli` (dlq, abandon).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from worker.settings import IngestSettings
    from worker.store import Store

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNAVAILABLE: Final = 3

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

    bench = commands.add_parser(
        "bench",
        help="measure our pipeline against one Celery task per event (see `bench --help`)",
        add_help=False,
    )
    # Its options are declared by bench.cli, imported only when this subcommand runs.
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="see `bench --help`")

    from worker import dlq_cli, parked_cli, publish_cli, status_cli

    publish_cli.add_commands(commands)
    status_cli.add_commands(commands)
    dlq_cli.add_commands(commands)
    parked_cli.add_commands(commands)
    return parser


def _positive_int(text: str) -> int:
    """An argparse type: a whole number, at least 1."""
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


def _run_bench(arguments: Sequence[str]) -> int:
    """The benchmark (`bench/`, shipped beside the worker); its own parser takes the options."""
    from bench.cli import main as bench_main

    return bench_main(arguments)


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


# -- shared by the subcommands ------------------------------------------------------------


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


def _out(line: str) -> None:
    sys.stdout.write(f"{line}\n")


# -- entry point ----------------------------------------------------------------------------


_PASSTHROUGH: dict[str, Callable[[Sequence[str]], int]] = {
    "worker": _run_worker,
    "emulator": _run_emulator,
    "bench": _run_bench,
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
    # Under `python -m worker.cli` this file runs as `__main__`, a copy apart from `worker.cli`,
    # which the subcommand modules import: run that one, so the `UsageError` they raise is the
    # class `main` catches.
    from worker.cli import main as package_main

    sys.exit(package_main())
