"""`python -m emulator`: the same as `clinia-ingest emulator`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from emulator.server import add_arguments, run_from_args


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the emulator's options and serve until interrupted; the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m emulator", description="Run a local emulator of the Clinia Registry API."
    )
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
