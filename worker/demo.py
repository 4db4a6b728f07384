"""`clinia-ingest demo`: the most complete end-to-end path that exists, run against the emulator."""

from __future__ import annotations

NOT_BUILT_YET = """\
Not built yet: the Registry client, the emulator, the coalescing core and the pipeline.
This demo grows with them; today it only checks that the package installs and starts."""


def run_demo() -> int:
    """Run the demo and return the process exit code."""
    print(NOT_BUILT_YET)  # noqa: T201 - the demo speaks to a person on the terminal
    return 0
