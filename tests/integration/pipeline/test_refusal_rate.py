"""A source that refuses often sends the rest of a refused bundle as bulk requests, and goes back
to plain bundles once its refusal rate has dropped (docs/pipeline.md, "Refusals").

The benchmark's faulty stream (the wide stream with 2.5% of events failing on their own: CREATEs
of ids that exist, DELETEs of missing ids, relationships to a missing end, data off the profile)
is drained through real Redis and the emulator over HTTP, under both ways a Registry may report a
refused bundle. Either way the Registry ends as the one-by-one oracle's and exactly the events
that fail alone are dead-lettered; when refusals name their first failure only, the rest of the
large refused bundles went as bulk requests; when they name every failure, nothing did (the rest
of such a refusal holds no unreported failure). Then clean traffic brings the rate down, and a
bundle with two failures is refused twice in a row as a bundle again. A rest that holds an event
of an atomic batch stays a bundle (bulk requests are not atomic).
"""

from __future__ import annotations

import collections
from typing import Any

import pytest

from bench.shapes import make_stream
from emulator.config import BundleFailures, EmulatorConfig
from worker.deadletters import DlqFilter, list_dead_letters
from worker.store.refusals import RefusalStats

from .checks import check_against_oracle
from .conftest import Harness, HarnessFactory

pytestmark = pytest.mark.integration

BULK_ROUTES = frozenset({"resources_bulk", "relationships_bulk"})
SETTINGS: dict[str, Any] = {"bulk_poll_first_ms": 20, "refusal_halflife_ops": 400,
                            "foresight": False}  # fmt: skip
"""Fast bulk polls; a short half-life, so a few hundred clean operations bring the rate down;
no foresight, so that the failures land in bundles beside other operations (what this module
tests is what a refusal costs then; tests/integration/pipeline/test_foresight.py tests the
placement that avoids it)."""


def _provider(source: str, n: int, action: str, id_: str) -> dict[str, Any]:
    event: dict[str, Any] = {"eventId": f"late-{n}", "sourceKey": source, "target": "resource",
                             "action": action, "type": "provider", "id": id_}  # fmt: skip
    if action != "DELETE":
        event["data"] = {"name": f"Provider {id_}"}
    return event


def _routes(harness: Harness, after: int = 0) -> collections.Counter[str]:
    return collections.Counter(
        str(r.get("route")) for r in harness.requests()[after:] if r.get("route")
    )


def _faulty(harness: Harness) -> tuple[str, frozenset[str]]:
    """Publish one source of the benchmark's faulty stream; its source and failing events."""
    stream = make_stream("faulty", tag="rr", events=4000)
    source = stream.sources[0]
    events = [e for e in stream.events if e["sourceKey"] == source]
    for start in range(0, len(events), 1000):
        harness.publish(events[start : start + 1000])
    failing = frozenset(e["eventId"] for e in events) & stream.failing
    return source, failing


@pytest.mark.parametrize("failures", list(BundleFailures), ids=lambda f: f"failures-{f}")
def test_a_refusing_source_sends_the_rest_of_refused_bundles_as_bulk_and_comes_back(
    harness_factory: HarnessFactory, failures: BundleFailures
) -> None:
    config = EmulatorConfig(task_pending_polls=1, bundle_failures=failures)
    harness = harness_factory(config, **SETTINGS)
    source, failing = _faulty(harness)

    harness.drain(deadline_s=120)

    routes = _routes(harness)
    if failures is BundleFailures.FIRST:
        assert set(routes) >= BULK_ROUTES
    else:
        assert not BULK_ROUTES & set(routes)  # every failure named: the rest is clean
        assert RefusalStats(harness.deps.store.client).state(source).every
    letters = list_dead_letters(harness.deps, DlqFilter(sources=(source,)))
    assert sorted(str(letter.event_id) for letter in letters) == sorted(failing)

    # clean traffic: the rate decays
    seen = len(harness.requests())
    harness.publish([_provider(source, n, "UPSERT", f"calm-{n}") for n in range(1200)])
    harness.drain(deadline_s=60)
    state = RefusalStats(harness.deps.store.client).state(source)
    policy = harness.deps.settings.refusal_policy()
    assert state.rate * harness.deps.settings.max_bundle_ops < policy.bulk_expected

    # one bundle with two failures: refused as a bundle, twice in a row when only the first
    # failure is named; no bulk request
    tail = [_provider(source, 2000 + n, "UPSERT", f"tail-{n}") for n in range(300)]
    tail[100] = _provider(source, 5000, "DELETE", "never-1")
    tail[200] = _provider(source, 5001, "DELETE", "never-2")
    harness.publish(tail)
    harness.drain(deadline_s=60)

    late = _routes(harness, seen)
    assert not BULK_ROUTES & set(late)
    refusals = 2 if failures is BundleFailures.FIRST else 1
    assert late["bundle"] == 3 + refusals + 1  # the calm ones in 3 bundles; the tail's refusals
    # and then its rest, applied
    check_against_oracle(harness.deps, harness.registry, source, harness.stored_events(source))
    letters = list_dead_letters(harness.deps, DlqFilter(sources=(source,)))
    assert {"late-5000", "late-5001"} <= {str(letter.event_id) for letter in letters}


def test_with_bulk_for_the_rest_turned_off_every_refusal_is_a_bundle(
    harness_factory: HarnessFactory,
) -> None:
    config = EmulatorConfig(task_pending_polls=1, bundle_failures=BundleFailures.FIRST)
    harness = harness_factory(config, refusal_bulk=False, **SETTINGS)
    source, failing = _faulty(harness)

    harness.drain(deadline_s=120)

    assert not BULK_ROUTES & set(_routes(harness))
    check_against_oracle(harness.deps, harness.registry, source, harness.stored_events(source))
    letters = list_dead_letters(harness.deps, DlqFilter(sources=(source,)))
    assert sorted(str(letter.event_id) for letter in letters) == sorted(failing)


def _office(source: str, n: str, action: str, id_: str, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"eventId": f"o-{n}", "sourceKey": source, "target": "resource",
                             "action": action, "type": "office", "id": id_, **fields}  # fmt: skip
    if action != "DELETE":
        event["data"] = {"name": f"Office {id_}"}
    return event


@pytest.mark.parametrize("with_batch", [False, True], ids=["no-batch", "atomic-batch"])
def test_a_rest_holding_an_atomic_batch_stays_a_bundle(
    harness_factory: HarnessFactory, with_batch: bool
) -> None:
    # any refusal's rest would go bulk: trusted at once, the smallest expectation
    config = EmulatorConfig(task_pending_polls=1, bundle_failures=BundleFailures.FIRST)
    harness = harness_factory(
        config, refusal_min_failures=0, refusal_bulk_expected=0.001, **SETTINGS
    )
    source = "hospital-a"
    harness.publish([_office(source, "s1", "CREATE", "o1")])
    harness.drain(deadline_s=20)
    seen = len(harness.requests())
    batch = {"atomicBatch": "b1"} if with_batch else {}
    harness.publish([
        _office(source, "f1", "CREATE", "o1"),  # exists: refused
        _office(source, "f2", "UPSERT", "o2"),
        _office(source, "f3", "UPSERT", "o3", **batch),
        _office(source, "f4", "UPSERT", "o4", **batch),
        _office(source, "f5", "UPSERT", "o5"),
    ])  # fmt: skip

    harness.drain(deadline_s=20)

    routes = _routes(harness, seen)
    assert bool(BULK_ROUTES & set(routes)) is not with_batch
    check_against_oracle(harness.deps, harness.registry, source, harness.stored_events(source))
    letters = list_dead_letters(harness.deps, DlqFilter(sources=(source,)))
    assert [str(letter.event_id) for letter in letters] == ["o-f1"]
