"""What one benchmark run is asked to do, and our settings profile for it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

PROFILE: Final[dict[str, Any]] = {
    "linger_ms": 100,
    "max_age_ms": 1000,
    "tick_interval_ms": 50,
}
"""Our settings where they differ from the defaults: a group is due 100 ms after its last event
(not 1 s) and at most 1 s after its first (not 5 s), and the ticker looks every 50 ms (not 250),
so the tail of a run waits less; everything else is the product's defaults."""


@dataclass(frozen=True)
class Options:
    """The stream, the worker count, the optional runs and the deadlines."""

    stream: str = "wide"
    events: int = 100_000
    workers: int = 2
    seed: int = 7
    timeout_s: float = 900.0
    """Deadline of each measured run, publishing excluded."""
    payload_bytes: int = 0
    """Pad each write's `data` to about this many bytes; 0 leaves records small."""
    publish_batch: int = 1000
    warmup_events: int = 300
    latency_s: float = 10.0
    """How long the latency run publishes at half our peak rate; 0 skips it."""
    bundle_failures: str = "first"
    """The emulator's `bundle_failures`: a refused bundle reports its `first` failing operation
    (the default, as the documentation's example) or `all` of them."""
    memory: bool = False
    memory_small: int = 10_000
    memory_large: int = 200_000
    memory_payloads: tuple[int, ...] = (1024, 51_200)
    json_path: Path | None = None
