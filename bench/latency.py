"""Latency from publish to final outcome, at half our measured peak rate.

Throughput says how fast a backlog drains; a producer also wants its event applied soon after it
published it. On warm workers, the benchmark publishes a fresh stream of the same shape at half
the peak rate ours just reached, steadily, in small batches every 100 ms, for a bounded time;
then waits until it is drained, checks it against the oracle, and reads each event's times from
Redis (`ingest:{sk}:ev:<eventId>`, fields `pub` and `fin`, in milliseconds). The target: p99 at
most linger + 1 s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from bench.designs import Crew, publish_in_batches
from bench.runs import check_oracle, wait_drained
from bench.shapes import make_stream
from bench.stack import BenchError, Stack
from bench.stream import Event
from worker.store.keys import SourceKeys

BATCH_INTERVAL_S: Final = 0.1
READ_CHUNK: Final = 1000
TAG: Final = "latency"


@dataclass(frozen=True)
class Latency:
    """Publish-to-outcome times of one steady run, in milliseconds."""

    events: int
    rate_per_s: float
    """The rate asked for (half our peak)."""
    achieved_per_s: float
    """The rate the publisher kept up."""
    p50_ms: float
    p99_ms: float
    max_ms: float


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value at or above `share` of them.

    Raises:
        ValueError: no values, or a share outside (0, 1].
    """
    if not values:
        raise ValueError("values: none")
    if not 0 < share <= 1:
        raise ValueError("share: must be in (0, 1]")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def latency_run(stack: Stack, team: Crew, peak_per_s: float) -> Latency:
    """Publish at half `peak_per_s` for `latency_s` seconds on warm, consuming workers."""
    options = stack.options
    rate = max(1.0, peak_per_s / 2)
    count = min(options.events, max(10, int(rate * options.latency_s)))
    stream = make_stream(options.stream, tag=TAG, events=count, seed=options.seed + 2,
                         payload_bytes=options.payload_bytes)  # fmt: skip
    batch = max(1, round(rate * BATCH_INTERVAL_S))
    stack.progress(f"latency: {count} events at {rate:.0f} events/s (half our peak), "
                   f"{batch} per {1000 * BATCH_INTERVAL_S:.0f} ms ...")  # fmt: skip
    assigned: dict[str, str] = {}
    started = time.monotonic()
    for k, start in enumerate(range(0, count, batch)):
        delay = started + k * BATCH_INTERVAL_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing a steady producer, not waiting on a condition
        assigned.update(publish_in_batches(stack, stream.events[start : start + batch]))
    publishing_s = time.monotonic() - started
    wait_drained(stack, team)
    team.design.check_failures(stack, stream)
    check_oracle(stack, "latency run", stream, assigned)
    times = outcome_times_ms(stack, stream.events)
    result = Latency(
        events=count,
        rate_per_s=rate,
        achieved_per_s=count / publishing_s if publishing_s > 0 else 0.0,
        p50_ms=percentile(times, 0.50),
        p99_ms=percentile(times, 0.99),
        max_ms=max(times),
    )
    stack.progress(f"  p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms")
    return result


def outcome_times_ms(stack: Stack, events: Sequence[Event]) -> list[float]:
    """Each event's time from publish to final outcome (`fin - pub`), in milliseconds.

    Raises:
        BenchError: an event without both times (not finished, or not published).
    """
    out: list[float] = []
    for start in range(0, len(events), READ_CHUNK):
        chunk = events[start : start + READ_CHUNK]
        pipe = stack.client.pipeline(transaction=False)
        for event in chunk:
            pipe.hmget(SourceKeys(event["sourceKey"]).event(event["eventId"]), "pub", "fin")
        for event, (pub, fin) in zip(chunk, pipe.execute(), strict=True):
            if pub is None or fin is None:
                raise BenchError(f"event {event['eventId']} has no publish or finish time")
            out.append(float(fin) - float(pub))
    return out
