"""Foresight end to end: operations expected to fail travel alone, so a refusal cancels nobody
(docs/pipeline.md, "Foresight").

The benchmark's faulty stream (CREATEs of ids that exist, DELETEs of missing ids, relationships
to a missing end, among the wide stream's events) is drained twice through real Redis and the
emulator over HTTP, with foresight and without, under both ways a Registry may report a refused
bundle: both end in the one-by-one oracle's state with exactly the failing events dead-lettered,
and with foresight far fewer events are sent a second time (cancelled by a neighbour's refusal).
A source whose Registry held records before the pipeline saw them does not have its DELETEs of
those records isolated: the first guesses apply, and guessing stops.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.shapes import make_stream
from emulator.config import BundleFailures, EmulatorConfig
from worker.deadletters import DlqFilter, list_dead_letters
from worker.domain.foresight import Prior
from worker.store.keys import SourceKeys
from worker.store.refusals import decode_foresight_counts

from .checks import check_against_oracle
from .conftest import Harness, HarnessFactory

pytestmark = pytest.mark.integration

SETTINGS: dict[str, Any] = {"bulk_poll_first_ms": 20}


def _drain_faulty(harness: Harness, tag: str) -> tuple[str, int]:
    """One source of the faulty stream, drained; its source and the events sent again."""
    stream = make_stream("faulty", tag=tag, events=3000)
    source = stream.sources[0]
    events = [e for e in stream.events if e["sourceKey"] == source]
    for start in range(0, len(events), 500):
        harness.publish(events[start : start + 500])
    harness.drain(deadline_s=120)
    check_against_oracle(harness.deps, harness.registry, source, harness.stored_events(source))
    letters = list_dead_letters(harness.deps, DlqFilter(sources=(source,)))
    failing = frozenset(e["eventId"] for e in events) & stream.failing
    assert sorted(str(letter.event_id) for letter in letters) == sorted(failing)
    client = harness.deps.store.client
    return source, int(client.hget(SourceKeys(source).stats, "replanned") or 0)


@pytest.mark.parametrize("failures", list(BundleFailures), ids=lambda f: f"failures-{f}")
def test_failures_travel_alone_and_cancel_nobody(
    harness_factory: HarnessFactory, failures: BundleFailures
) -> None:
    config = EmulatorConfig(task_pending_polls=1, bundle_failures=failures)
    _, resent_blind = _drain_faulty(harness_factory(config, foresight=False, **SETTINGS), "fb")
    harness = harness_factory(config, **SETTINGS)
    source, resent = _drain_faulty(harness, "fs")

    assert resent_blind > 0
    assert resent * 4 < resent_blind, (resent, resent_blind)
    raw = harness.deps.store.client.hmget(SourceKeys(source).refusals, ["kh", "km", "gh", "gm"])
    counts = decode_foresight_counts(raw)
    assert counts.known_hits > 0
    assert counts.guess_hits > 0
    policy = harness.deps.settings.foresight_policy()
    assert counts.isolates(Prior.KNOWN, policy)
    assert counts.isolates(Prior.GUESS, policy)


def _provider(source: str, eid: str, action: str, id_: str) -> dict[str, Any]:
    event: dict[str, Any] = {"eventId": eid, "sourceKey": source, "target": "resource",
                             "action": action, "type": "provider", "id": id_}  # fmt: skip
    if action != "DELETE":
        event["data"] = {"name": f"Provider {id_}"}
    return event


def test_guesses_stop_where_the_registry_held_records_before(
    harness_factory: HarnessFactory,
) -> None:
    harness = harness_factory(**SETTINGS)
    policy = harness.deps.settings.foresight_policy()
    source = "clinic-a"
    harness.publish([_provider(source, f"old-{n}", "UPSERT", f"p{n}") for n in range(80)])
    harness.drain(deadline_s=30)
    # the pipeline starts on a Registry that already holds these records: it never saw them
    client = harness.deps.store.client
    client.delete(SourceKeys(source).known)

    def delete_some(first: int) -> list[dict[str, Any]]:
        seen = len(harness.requests())
        harness.publish(
            [_provider(source, f"new-{n}", "UPSERT", f"q{n}") for n in range(first, first + 40)]
            + [_provider(source, f"del-{n}", "DELETE", f"p{n}") for n in range(first, first + 40)]
        )
        harness.drain(deadline_s=30)
        return [r for r in harness.requests()[seen:] if r["route"] == "bundle"]

    # new guesses: a few probes go alone, the rest share one bundle apart
    first = delete_some(0)
    assert len(first) <= policy.probes + 2, [len(r["ids"]) for r in first]
    raw = client.hmget(SourceKeys(source).refusals, ["kh", "km", "gh", "gm"])
    counts = decode_foresight_counts(raw)
    assert counts.guess_misses > 39  # weighted: older answers count a little less
    assert not counts.isolates(Prior.GUESS, policy)

    # then guessing stops: the next DELETEs of records never seen go with the rest
    client.delete(SourceKeys(source).known)
    again = delete_some(40)
    assert len(again) == 1, [len(r["ids"]) for r in again]
    check_against_oracle(harness.deps, harness.registry, source, harness.stored_events(source))


def test_the_rest_of_a_refused_bundle_of_new_guesses_goes_each_alone_not_as_bulk(
    harness_factory: HarnessFactory,
) -> None:
    # Given a first-failure Registry, and a round of more DELETEs of never-seen providers than
    # new guesses may send alone: the others share one bundle apart
    harness = harness_factory(**SETTINGS)
    policy = harness.deps.settings.foresight_policy()
    source = "clinic-b"
    count = policy.probes + 10
    harness.publish([_provider(source, f"del-{n}", "DELETE", f"gone{n}") for n in range(count)])

    harness.drain(deadline_s=30)

    # Then the shared bundle is refused for its first DELETE, and the rest goes each alone:
    # every DELETE fails on its own, nothing goes as a bulk request (whose polls would hold
    # what follows): one request per DELETE, the shared bundle's first failure included
    writes = [r for r in harness.requests() if r["method"] != "GET"]  # not profile reads
    assert [r["route"] for r in writes if r["route"] != "bundle"] == []
    sizes = sorted((len(r["ids"]) for r in writes), reverse=True)
    assert sizes == [count - policy.probes] + [1] * (count - 1), sizes
    letters = list_dead_letters(harness.deps, DlqFilter(sources=(source,)))
    assert len(letters) == count
    check_against_oracle(harness.deps, harness.registry, source, harness.stored_events(source))
