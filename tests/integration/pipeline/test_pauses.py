"""Source pauses against the emulator: a 429 holds every worker of the source until Retry-After,
a refused key pauses without dead-lettering anything, and both resume by themselves."""

from __future__ import annotations

import time
from typing import Any

import pytest

from worker.pipeline import flush, run_due
from worker.results import backlog, event_status
from worker.store.keys import SourceKeys
from worker.store.pauses import Pause, PauseStore

from .checks import check_against_oracle, run_until
from .conftest import KEY, SOURCE, Harness, HarnessFactory

pytestmark = pytest.mark.integration


def offices(*ids: str) -> list[dict[str, Any]]:
    return [
        {"eventId": f"ev-{i}", "sourceKey": SOURCE, "target": "resource", "action": "UPSERT",
         "type": "office", "id": i, "data": {"name": f"Office {i}"}}
        for i in ids
    ]  # fmt: skip


def bundle_statuses(harness: Harness) -> list[int]:
    return [r["status"] for r in harness.requests() if r["route"] == "bundle"]


def pause_of(harness: Harness) -> Pause | None:
    return PauseStore(harness.deps.store.client).get(SOURCE)


def set_accepted_key(harness: Harness, key: str) -> None:
    with harness.admin() as admin:
        admin.patch("/_emulator/config", json={"api_key": key}).raise_for_status()


def test_pauses_429_holds_every_worker_until_retry_after_then_everything_lands(
    harness_factory: HarnessFactory,
) -> None:
    harness = harness_factory(pause_base_ms=50, pause_cap_ms=5000)
    effect = {"kind": "status", "status": 429, "retry_after": "1"}
    harness.add_fault({"route": "bundle", "first": 1, "effect": effect})
    harness.publish(offices("o1"))

    before = harness.deps.now_ms()
    flush(harness.deps, SOURCE, ["office:o1"])

    view = backlog(harness.deps).sources[SOURCE]
    assert view.paused is not None
    assert view.paused.kind == "throttled"
    assert before + 1000 <= view.paused.until_ms <= harness.deps.now_ms() + 1000
    assert view.to_dict()["paused"]["reason"] == "RateLimitedError 429 RESOURCE_EXHAUSTED"
    client = harness.deps.store.client
    assert client.hget(SourceKeys(SOURCE).stats, "pauses") == "1"

    harness.publish(offices("o2"))
    second = flush(harness.deps, SOURCE, ["office:o2"])  # as from another worker
    assert second.released == 1
    assert bundle_statuses(harness) == [429]

    until = view.paused.until_ms
    while harness.deps.now_ms() < until - 50:  # the ticker hands out nothing of the source
        run_due(harness.deps)
        assert bundle_statuses(harness) == [429]
        time.sleep(0.01)  # bounded by the pause's end, asserted above to be about 1 s away

    harness.drain(deadline_s=10)

    assert bundle_statuses(harness)[0] == 429
    assert set(bundle_statuses(harness)[1:]) == {200}
    assert {event_status(harness.deps, e).status for e in ("ev-o1", "ev-o2")} == {"applied"}
    assert pause_of(harness) is None, "the probe's success ended the pause"
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())


def test_pauses_refused_key_pauses_without_dead_letters_and_resumes_by_itself(
    harness_factory: HarnessFactory,
) -> None:
    harness = harness_factory(pause_base_ms=100, pause_cap_ms=400)
    set_accepted_key(harness, "a-key-the-worker-does-not-have")
    harness.publish(offices("o1", "o2", "o3"))

    def probed_twice() -> bool:
        pause = pause_of(harness)
        return pause is not None and pause.strikes >= 2

    run_until(harness, probed_twice)

    pause = pause_of(harness)
    assert pause is not None
    assert pause.kind == "auth"
    assert "a-key" not in pause.reason
    assert KEY not in pause.reason
    assert set(bundle_statuses(harness)) == {401}
    statuses = {event_status(harness.deps, f"ev-o{i}").status for i in (1, 2, 3)}
    assert "dead_lettered" not in statuses
    current = backlog(harness.deps)
    assert current.parked == 0
    assert current.total > 0
    assert harness.deps.store.client.xlen(SourceKeys(SOURCE).dlq) == 0

    set_accepted_key(harness, KEY)
    harness.drain(deadline_s=15)

    assert bundle_statuses(harness)[-1] == 200
    statuses = {event_status(harness.deps, f"ev-o{i}").status for i in (1, 2, 3)}
    assert statuses == {"applied"}
    assert pause_of(harness) is None
    assert backlog(harness.deps).sources[SOURCE].paused is None
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())
