"""Bundle sizes end to end: a Registry that refuses large bundles as a whole (413, no receipts)
makes the source's bundles shrink, everything still lands, and after `shrink_recovery_ms` (on the
pipeline's injected clock) the bundles grow back to `max_bundle_ops`."""

from __future__ import annotations

from typing import Any

import pytest

from worker.deadletters import list_dead_letters
from worker.flow.deps import wall_clock_ms

from .checks import check_against_oracle
from .conftest import SOURCE, Harness, HarnessFactory

pytestmark = pytest.mark.integration

MAX_OPS = 8
RECOVERY_MS = 60_000


def offices(first: int, count: int) -> list[dict[str, Any]]:
    return [
        {"eventId": f"ev-o{i}", "sourceKey": SOURCE, "target": "resource", "action": "UPSERT",
         "type": "office", "id": f"o{i}", "data": {"name": f"Office {i}"}}
        for i in range(first, first + count)
    ]  # fmt: skip


def bundles_sent(harness: Harness, since: int = 0) -> list[tuple[int, int]]:
    """(status, operations) of each bundle request after the first `since` ones."""
    sent = [(r["status"], r["opCount"]) for r in harness.requests() if r["route"] == "bundle"]
    return sent[since:]


def test_shrinking_after_a_refusal_smaller_bundles_land_then_grow_back(
    harness_factory: HarnessFactory,
) -> None:
    # bundles one after another: the exact sequence of requests is what this test reads
    harness = harness_factory(
        max_bundle_ops=MAX_OPS, shrink_recovery_ms=RECOVERY_MS, send_concurrency=1
    )
    offset = [0]
    harness.deps.now_ms = lambda: wall_clock_ms() + offset[0]
    harness.add_fault(
        {"id": "too-big", "route": "bundle", "min_ops": 5,
         "effect": {"kind": "status", "status": 413}}
    )  # fmt: skip

    # Given 20 events, planned at the configured cap before anything was refused
    harness.publish(offices(1, 20))
    harness.drain(deadline_s=30)

    # Then the first bundle refused as a whole halves the cap; the second, planned in the same
    # plan, is bisected too but halves nothing more
    assert bundles_sent(harness) == [
        (413, 8), (200, 4), (200, 4),
        (413, 8), (200, 4), (200, 4),
        (200, 4),
    ]  # fmt: skip
    state = harness.deps.store.sizing(SOURCE)
    assert state is not None
    assert state.cap == MAX_OPS // 2
    before = len(bundles_sent(harness))

    # When more events come, the fault still in place, they leave in bundles of the shrunk cap
    harness.publish(offices(21, 10))
    harness.drain(deadline_s=30)
    assert bundles_sent(harness, before) == [(200, 4), (200, 4), (200, 2)]
    before = len(bundles_sent(harness))

    # When the Registry takes large bundles again and the recovery time has passed
    with harness.admin() as admin:
        admin.delete("/_emulator/faults/too-big").raise_for_status()
    offset[0] += RECOVERY_MS
    harness.publish(offices(31, 10))
    harness.drain(deadline_s=30)

    # Then the bundles are back to the configured cap
    assert bundles_sent(harness, before) == [(200, 8), (200, 2)]
    assert list_dead_letters(harness.deps) == []
    _, statuses = check_against_oracle(
        harness.deps, harness.registry, SOURCE, harness.stored_events()
    )
    assert len(statuses) == 40
    assert {s.status for s in statuses.values()} == {"applied"}
