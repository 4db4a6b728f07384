"""What the worker-process tests share: publishing a stream, waiting for the drain, comparing the
emulator's records with the one-by-one oracle, and checking that nothing was written twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from bench.stream import normalized
from tests.integration.workers.conftest import Emulator, Workers
from tests.integration.workers.stream import oracle, writes_allowed
from tests.waiting import wait_for
from worker.deadletters import list_dead_letters
from worker.pipeline import Deps
from worker.publisher import publish
from worker.results import EventStatus, backlog, event_status

PUBLISH_BATCH = 1000
FINAL = frozenset({"applied", "coalesced"})

Entity = tuple[str, str, str, str]
"""(source, target, type, id) as the emulator's write log names what it wrote."""


def publish_all(
    deps: Deps, events: Sequence[dict[str, Any]], batch: int = PUBLISH_BATCH
) -> dict[str, str]:
    """Publish in calls of `batch`; every event must be accepted. The ids assigned to id-less
    CREATEs (event id -> id), which the oracle needs."""
    assigned: dict[str, str] = {}
    for start in range(0, len(events), batch):
        report = publish(deps, list(events[start : start + batch]))
        assert report.errors == [], report.errors[:3]
        assigned.update(report.assigned_ids)
    return assigned


def wait_drained(
    deps: Deps,
    workers: Workers,
    timeout_s: float,
    detail: Callable[[], object] | None = None,
) -> None:
    """Wait until the backlog is 0; on timeout, fail with it, `detail()` and the worker logs."""
    try:
        wait_for(lambda: backlog(deps).total == 0, timeout_s=timeout_s)
    except AssertionError:
        left = backlog(deps).to_dict()
        more = "" if detail is None else f"\n{detail()}"
        raise AssertionError(f"backlog not drained: {left}{more}\n{workers.logs()}") from None


def check_registry_matches_oracle(
    emulator: Emulator, events: Sequence[dict[str, Any]], sources: Sequence[str]
) -> None:
    """The emulator's records of each source equal what one-by-one application leaves."""
    expected = oracle(events)
    for source in sources:
        actual = normalized(
            {
                "resources": emulator.admin("GET", f"/sources/{source}/resources"),
                "relationships": emulator.admin("GET", f"/sources/{source}/relationships"),
            }
        )
        assert actual == expected[source], source


def entity_of(event: dict[str, Any]) -> Entity:
    source = event["sourceKey"]
    if event["target"] == "resource":
        return source, "resource", event["type"], event["id"]
    ends = event["from"], event["to"]
    rel_id = f"{ends[0]['type']}.{ends[0]['id']},{ends[1]['type']}.{ends[1]['id']}"
    return source, "relationship", event["type"], rel_id


def carrying_bundles(
    events: Sequence[dict[str, Any]], statuses: Sequence[EventStatus]
) -> dict[Entity, set[str]]:
    """Per entity, the bundles that carried one of its events, or a DELETE of one of its ends.

    A bundle holds at most one operation per entity and is applied at most once, so no entity
    can be written more often than this: a bundle applied twice writes twice with one carrier.
    """
    carriers: dict[Entity, set[str]] = {}
    links_of: dict[tuple[str, str, str], set[Entity]] = {}
    for event in events:
        if event["target"] == "relationship":
            for end in (event["from"], event["to"]):
                key = (event["sourceKey"], end["type"], end["id"])
                links_of.setdefault(key, set()).add(entity_of(event))
    for event, status in zip(events, statuses, strict=True):
        assert status.bundle_id is not None, status.to_dict()
        carriers.setdefault(entity_of(event), set()).add(status.bundle_id)
        if event["target"] == "resource" and event["action"] == "DELETE":
            for link in links_of.get((event["sourceKey"], event["type"], event["id"]), ()):
                carriers.setdefault(link, set()).add(status.bundle_id)
    return carriers


def check_outcome(
    deps: Deps, emulator: Emulator, events: Sequence[dict[str, Any]], sources: Sequence[str]
) -> list[EventStatus]:
    """Every event final, the Registry as the oracle, no dead letter, nothing written twice.

    `events` carry their ids (id-less CREATEs given the ids assigned at publish). The statuses.
    """
    statuses = [event_status(deps, event["eventId"]) for event in events]
    counts = Counter(status.status for status in statuses)
    assert set(counts) <= FINAL, counts
    assert list_dead_letters(deps) == []

    check_registry_matches_oracle(emulator, events, sources)

    writes = emulator.admin("GET", "/writes")
    written: Counter[Entity] = Counter(
        (w["source"], w["target"], w["type"], w["id"]) for w in writes
    )
    per_event = writes_allowed(events)
    assert {key: n for key, n in written.items() if n > per_event[key]} == {}
    carriers = carrying_bundles(events, statuses)
    twice = {key: n for key, n in written.items() if n > len(carriers.get(key, ()))}
    assert twice == {}, "written more often than bundles carried them"
    tasks_that_wrote = {w["taskId"] for w in writes if w["taskId"] is not None}
    assert tasks_that_wrote <= {s.task_id for s in statuses if s.task_id is not None}
    return statuses
