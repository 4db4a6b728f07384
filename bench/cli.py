"""`clinia-ingest bench`: our pipeline side by side with one Celery task per event.

Progress goes to stderr, the tables and target lines to stdout, and `--json FILE` writes the
figures for scripts. Exit status: 0 whatever the figures; 1 when something broke (a run lost
events or left another Registry than the one-by-one oracle's, a process did not start, a deadline
passed), with the reason on stderr; 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from bench.options import Options
from bench.shapes import SHAPES

DEFAULTS = Options()

EPILOG = f"""\
Every run: both designs on the same stream (under different source keys), K workers each (one
pool process per worker), started and warmed before the clock starts; the emulator in its own
process (synchronous answers), a private redis-server on a free loopback port. Each run's
Registry is compared with the events applied one by one before its figures are printed, and
its failures (ours: dead letters) must be exactly the events that fail one by one.
After ours, a latency run publishes at half ours' peak rate for --latency-s seconds (0 skips it).

--memory adds the memory runs (long: fresh workers drain a backlog of --memory-small and one of
--memory-large events, at each of --memory-payloads bytes per event; 200,000 events of 50 KB are
10 GB in Redis: a pair that does not fit in the memory available is skipped, saying so).

exit status: 0 whatever the figures; 1 something broke (the reason on stderr); 2 usage error.
Defaults: {DEFAULTS.events} events, {DEFAULTS.workers} workers, a deadline of
{DEFAULTS.timeout_s:.0f} s per run."""


def build_parser(prog: str = "clinia-ingest bench") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Measure our pipeline against one Celery task per event, side by side.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # fmt: off
    add = parser.add_argument
    add("--stream", choices=sorted(SHAPES), default=DEFAULTS.stream,
        help="wide: thousands of entities; hot: tens of entities with long chains; fanin: every "
             "relationship to one office, from 10,000 groups; faulty: wide with 2.5%% of events "
             f"that fail on their own (default {DEFAULTS.stream})")
    add("--events", type=_at_least(10), default=DEFAULTS.events,
        help=f"events in the measured stream (default {DEFAULTS.events})")
    add("--workers", type=_at_least(1), default=DEFAULTS.workers,
        help=f"worker processes of each design (default {DEFAULTS.workers})")
    add("--seed", type=int, default=DEFAULTS.seed, help=f"the stream's seed ({DEFAULTS.seed})")
    add("--payload-bytes", type=_at_least(0), default=DEFAULTS.payload_bytes,
        help="pad each write's data to about this many bytes (default: no padding)")
    add("--timeout-s", type=float, default=DEFAULTS.timeout_s,
        help=f"deadline of each run, in seconds (default {DEFAULTS.timeout_s:.0f})")
    add("--publish-batch", type=_at_least(1), default=DEFAULTS.publish_batch,
        help=f"events per publish call (default {DEFAULTS.publish_batch})")
    add("--warmup-events", type=_at_least(10), default=DEFAULTS.warmup_events,
        help=f"events that warm each design's workers (default {DEFAULTS.warmup_events})")
    add("--latency-s", type=float, default=DEFAULTS.latency_s,
        help=f"seconds of the latency run; 0 skips it (default {DEFAULTS.latency_s:.0f})")
    add("--bundle-failures", choices=["first", "all"], default=DEFAULTS.bundle_failures,
        help="a refused bundle reports its first failing operation, or all of them (the "
             f"emulator's switch; default {DEFAULTS.bundle_failures})")
    add("--memory", action="store_true",
        help="add the memory runs (long; see below)")
    add("--memory-small", type=_at_least(10), default=DEFAULTS.memory_small,
        help=f"the small backlog of the memory runs (default {DEFAULTS.memory_small})")
    add("--memory-large", type=_at_least(10), default=DEFAULTS.memory_large,
        help=f"the large backlog of the memory runs (default {DEFAULTS.memory_large})")
    add("--memory-payloads", type=_payloads, default=DEFAULTS.memory_payloads,
        help="event sizes of the memory runs, in bytes, comma-separated (default "
             + ",".join(map(str, DEFAULTS.memory_payloads)) + ")")
    add("--json", type=Path, default=None, metavar="FILE",
        help="also write the figures to FILE as JSON")
    # fmt: on
    return parser


def parse_options(argv: Sequence[str] | None, prog: str = "clinia-ingest bench") -> Options:
    """The options the command line asks for (argparse exits 2 on a usage error)."""
    args = build_parser(prog).parse_args(argv)
    return Options(
        stream=args.stream,
        events=args.events,
        workers=args.workers,
        seed=args.seed,
        timeout_s=args.timeout_s,
        payload_bytes=args.payload_bytes,
        publish_batch=args.publish_batch,
        warmup_events=args.warmup_events,
        latency_s=args.latency_s,
        bundle_failures=args.bundle_failures,
        memory=args.memory,
        memory_small=args.memory_small,
        memory_large=args.memory_large,
        memory_payloads=args.memory_payloads,
        json_path=args.json,
    )


def main(
    argv: Sequence[str] | None = None,
    out: Callable[[str], None] | None = None,
    err: Callable[[str], None] | None = None,
) -> int:
    """Run the benchmark; the exit status. `out` takes the report's lines, `err` progress."""
    from bench.benchmark import run_benchmark
    from bench.report import render
    from bench.report_json import to_json

    write_out = out or _line_to(sys.stdout)
    write_err = err or _line_to(sys.stderr)
    options = parse_options(argv)
    try:
        report = run_benchmark(options, write_err)
    except RuntimeError as exc:  # BenchError, StackError, ConsumingError: something broke
        write_err(f"bench: {exc}")
        return 1
    for line in render(report):
        write_out(line)
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(to_json(report), indent=2) + "\n", "utf-8")
        write_err(f"bench: figures written to {options.json_path}")
    return 0


def _line_to(stream: TextIO) -> Callable[[str], None]:
    def write(line: str) -> None:
        stream.write(f"{line}\n")
        stream.flush()

    return write


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def _payloads(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 1024,51200, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected one or more sizes of at least 1 byte")
    return values


if __name__ == "__main__":
    sys.exit(main())
