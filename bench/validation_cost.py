"""What judging events against their profiles costs at publish, in CPU-microseconds per event.

`python -m bench.validation_cost [--events N] [--batch B] [--payload-bytes P]` generates the
benchmark's `wide` stream, publishes it through `worker.publisher.publish` into a private
redis-server in batches (as the benchmark does), once with pre-validation off and once on (the
seed profiles cached and compiled first, as in a warm worker), alternating, and prints this
process's CPU per event for each (medians), the CPU of the profile check inside publish (the
cache read included), and the CPU of `profile_problems` alone on the parsed events.
The emulator is not involved: with profiles cached, publish reads the Registry only when a
refusal must be confirmed, and this stream has none.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from unittest.mock import patch

import redis
from pydantic import SecretStr

from bench.shapes import make_stream
from emulator.profiles import default_profiles, default_relationship_definitions
from worker import publish_profiles, publisher
from worker.demo_stack import PrivateRedis
from worker.domain.events import ChangeEvent, parse_event
from worker.domain.profiles import ProfileBook, profile_problems, profile_version
from worker.publish_profiles import COMPILED
from worker.publisher import publish
from worker.settings import IngestSettings
from worker.store import Store
from worker.store.profiles import ProfileCache


def _cache_seed_profiles(client: redis.Redis, sources: Sequence[str]) -> None:
    bodies = {f"p:{k}": b for k, b in default_profiles().items()}
    bodies.update({f"r:{k}": b for k, b in default_relationship_definitions().items()})
    read = {
        n: (profile_version(b), json.dumps(b, separators=(",", ":"))) for n, b in bodies.items()
    }
    ProfileCache(client).write(
        dict.fromkeys(sources, read), {}, int(time.time() * 1000), ttl_ms=3_600_000
    )


def _cpu_us_per_event(run: Callable[[], Any], count: int) -> float:
    started = time.process_time()
    run()
    return (time.process_time() - started) * 1e6 / count


def _publish_all(store: Store, events: Sequence[dict[str, Any]], batch: int) -> None:
    for start in range(0, len(events), batch):
        report = publish(store, events[start : start + batch])
        if report.errors:
            raise SystemExit(f"unexpected refusals: {report.errors[:3]}")


def _book(source: str) -> ProfileBook:
    profiles = {k: COMPILED.compile("p", k, b) for k, b in default_profiles().items()}
    definitions = {
        k: COMPILED.compile("r", k, b) for k, b in default_relationship_definitions().items()
    }
    return ProfileBook(source, profiles, definitions)  # type: ignore[arg-type]


class _Timed:
    """`check_profiles` with the CPU it takes added up (publish calls it once per call)."""

    def __init__(self) -> None:
        self.cpu_s = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        started = time.process_time()
        try:
            publish_profiles.check_profiles(*args, **kwargs)
        finally:
            self.cpu_s += time.process_time() - started


def measure(
    events: int, batch: int, payload_bytes: int, seed: int = 7, rounds: int = 3
) -> dict[str, float]:
    """The figures: the median of `rounds` runs of each kind, alternated, each on a fresh stream
    of the same shape and seed under its own tag (so nothing is a duplicate)."""
    timed = _Timed()
    runs: dict[str, list[float]] = {"publish_off": [], "publish_on": [], "check": []}
    patched = patch.object(publisher, "check_profiles", timed)
    with tempfile.TemporaryDirectory() as directory, patched:
        server = PrivateRedis(Path(directory))
        try:
            client = redis.Redis.from_url(server.url, decode_responses=True)
            for run in range(2 * rounds):
                validation = run % 2 == 1
                settings = IngestSettings(
                    redis_url=SecretStr(server.url), profile_validation=validation
                )  # no API key: profiles come from the cache only
                stream = make_stream(
                    "wide", tag=f"v{run}", events=events, seed=seed, payload_bytes=payload_bytes
                )
                _cache_seed_profiles(client, stream.sources)
                store = Store(client, settings)
                _publish_all(store, [dict(e) for e in stream.events[:batch]], batch)  # warm
                rest = [dict(e) for e in stream.events[batch:]]
                timed.cpu_s = 0.0
                cost = _cpu_us_per_event(partial(_publish_all, store, rest, batch), len(rest))
                runs["publish_on" if validation else "publish_off"].append(cost)
                if validation:
                    runs["check"].append(timed.cpu_s * 1e6 / len(rest))
            judged = [
                e
                for e in (
                    parse_event(dict(raw), new_event_id=lambda: "x", now=datetime.now(UTC))
                    for raw in stream.events
                )
                if isinstance(e, ChangeEvent)
            ]
            books = {s: _book(s) for s in stream.sources}

            def judge() -> None:
                for event in judged:
                    profile_problems(event, books[event.source_key])

            validate_only = _cpu_us_per_event(judge, len(judged))
            client.close()
        finally:
            server.stop()
    figures = {name: statistics.median(values) for name, values in runs.items()}
    figures["validate_only"] = validate_only
    figures["check_share"] = figures["check"] / (figures["publish_on"] - figures["check"])
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.validation_cost", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--payload-bytes", type=int, default=0)
    args = parser.parse_args(argv)
    f = measure(args.events, args.batch, args.payload_bytes)
    sys.stdout.write(
        f"wide stream, {args.events} events, batches of {args.batch}, CPU-us per event:\n"
        f"  publish, pre-validation off            {f['publish_off']:8.1f}\n"
        f"  publish, pre-validation on             {f['publish_on']:8.1f}\n"
        f"    of which the profile check           {f['check']:8.1f}  "
        f"({f['check_share']:.1%} of the rest of publish)\n"
        f"  profile_problems alone (pure)          {f['validate_only']:8.1f}\n"
        "(medians of alternated runs; on a loaded machine the two publish figures move more\n"
        "than their difference: the profile check's own CPU is the figure to read)\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
