"""A record cut in calls, end to end: a worker dies between the calls that settle a refused
bundle's failure and the call that sends the rest again; recovery reads the bundle back and
records it again. The failure stays dead-lettered once and is not sent again; the rest lands."""

from __future__ import annotations

from typing import Any

import pytest

from worker.pipeline import flush
from worker.results import backlog, event_status
from worker.store.keys import SourceKeys

from .checks import check_against_oracle, run_until
from .conftest import SOURCE, Harness, HarnessFactory

pytestmark = pytest.mark.integration


def office(eid: str, id_: str, action: str = "UPSERT", name: str = "Office") -> dict[str, Any]:
    return {"eventId": eid, "sourceKey": SOURCE, "target": "resource", "action": action,
            "type": "office", "id": id_, "data": {"name": name}, "group": "batch"}  # fmt: skip


class CrashError(Exception):
    """The worker dies between two calls of a record."""


def die_before_the_last_record_call(harness: Harness) -> None:
    """The next record stops after its settle.lua calls, once."""
    store = harness.deps.store
    run = store._run
    last = store._scripts.record.sha

    def dying(script: Any, source: str, *args: str) -> Any:
        if script.sha == last:
            store._run = run  # type: ignore[method-assign]
            raise CrashError
        return run(script, source, *args)

    store._run = dying  # type: ignore[method-assign]


def bundle_requests_naming(harness: Harness, id_: str) -> int:
    return sum(1 for r in harness.requests() if r["route"] == "bundle" and id_ in r["ids"])


def test_a_crash_between_record_calls_then_recovery_letters_once_and_sends_the_rest(
    harness_factory: HarnessFactory,
) -> None:
    harness = harness_factory(
        foresight=False,  # the failure must cancel its neighbours: nothing places it apart
        record_chunk=2,
        http_deadline_s=0.2,
        claim_ttl_ms=300,
        readback_interval_ms=20,
        readback_settle_ms=300,
    )
    harness.publish([office("ev-old", "o3", name="Old office")])
    harness.drain(deadline_s=20)
    # a CREATE of an office that exists fails alone; the bundle's six UPSERTs are cancelled
    harness.publish(
        [office(f"ev-{i}", f"o{i}") for i in (1, 2, 4)]
        + [office("ev-dup", "o3", action="CREATE", name="New office")]
        + [office(f"ev-{i}", f"o{i}") for i in (5, 6, 7)]
    )
    die_before_the_last_record_call(harness)

    with pytest.raises(CrashError):
        flush(harness.deps, SOURCE, ["batch"])

    names = SourceKeys(SOURCE)
    client = harness.deps.store.client
    assert event_status(harness.deps, "ev-dup").status == "dead_lettered"  # settled: final
    assert event_status(harness.deps, "ev-1").status == "in_flight"
    assert client.xlen(names.dlq) == 1
    assert backlog(harness.deps).in_flight == 6
    assert bundle_requests_naming(harness, "o3") == 2  # the first landing, the refused bundle

    # the claim expires; recovery reads back (nothing applied), and once settled sends the rest
    run_until(harness, lambda: backlog(harness.deps).total == 0, deadline_s=20)

    assert client.xlen(names.dlq) == 1
    assert bundle_requests_naming(harness, "o3") == 2  # the failure was not sent again
    statuses = {e: event_status(harness.deps, e).status for e in ("ev-1", "ev-7", "ev-dup")}
    assert statuses == {"ev-1": "applied", "ev-7": "applied", "ev-dup": "dead_lettered"}
    assert client.hget(names.stats, "inflight") == "0"
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())
