"""An outcome unknown is resolved by reading the entities back, never by blind resending.

Each test provokes a lost answer on a bundle holding CREATEs (an explicit id and a worker-assigned
one) and DELETEs, plus a relationship, in synchronous and asynchronous mode, and then checks the
final Registry against the one-by-one oracle: same records, an outcome for every event, no
operation applied twice (the emulator's write log), nothing dead-lettered that should not be.
"""

from __future__ import annotations

import time
from typing import Any, cast

import httpx
import pytest

from emulator.auth import API_KEY_HEADER
from emulator.config import EmulatorConfig, SourceMode
from worker.flow.recover import recover
from worker.pipeline import flush, run_due
from worker.results import backlog, event_status
from worker.store.keys import SourceKeys

from .checks import check_against_oracle
from .conftest import KEY, SOURCE, Harness, HarnessFactory
from .oracle import one_by_one

pytestmark = pytest.mark.integration

READ_TIMEOUT = {"http_read_timeout_s": 0.3, "http_deadline_s": 2}


def _event(eid: str, **fields: Any) -> dict[str, Any]:
    return {"eventId": eid, "sourceKey": SOURCE, **fields}


def existing() -> list[dict[str, Any]]:
    """What is in the Registry before the ambiguous bundle: two offices and a provider."""
    return [
        _event("ev-d1", target="resource", action="UPSERT", type="office", id="d1",
               data={"name": "Old office 1"}),
        _event("ev-d2", target="resource", action="UPSERT", type="office", id="d2",
               data={"name": "Old office 2"}),
        _event("ev-p1", target="resource", action="UPSERT", type="provider", id="p1",
               data={"name": "Provider 1"}),
    ]  # fmt: skip


def changes() -> list[dict[str, Any]]:
    """CREATEs (an explicit id, a worker-assigned one) and DELETEs, in one group."""
    return [
        _event("ev-c1", target="resource", action="CREATE", type="office", id="c1",
               data={"name": "New office"}, group="batch"),
        _event("ev-c2", target="resource", action="CREATE", type="provider", ref="new-provider",
               data={"name": "New provider"}, group="batch"),
        _event("ev-x1", target="resource", action="DELETE", type="office", id="d1",
               group="batch"),
        _event("ev-x2", target="resource", action="DELETE", type="office", id="d2",
               group="batch"),
        _event("ev-r1", target="relationship", action="CREATE", type="provider-office",
               **{"from": {"type": "office", "id": "c1"}, "to": {"type": "provider", "id": "p1"}},
               data={"description": "Works at"}, group="batch"),
    ]  # fmt: skip


MODES = [
    pytest.param(EmulatorConfig(mode=SourceMode.SYNC), id="sync"),
    pytest.param(EmulatorConfig(mode=SourceMode.ASYNC, task_pending_polls=0), id="async"),
]


def _bundle_requests(harness: Harness) -> list[dict[str, Any]]:
    return [r for r in harness.requests() if r["route"] == "bundle"]


def _prepare(harness: Harness) -> int:
    """Publish and land what exists before; the number of bundle requests that took."""
    harness.publish(existing())
    harness.drain(deadline_s=20)
    return len(_bundle_requests(harness))


def _read_backs(harness: Harness) -> int:
    """How many times the batch's bundle was read back and kept `sending`."""
    names = SourceKeys(SOURCE)
    bundle = event_status(harness.deps, "ev-c1").bundle_id
    assert bundle
    return int(harness.deps.store.client.hget(names.bundle(bundle), "rb") or 0)


def _die_mid_request(harness: Harness) -> None:
    """Flush the batch in a worker that dies once its bundle is `sending`."""
    client = harness.deps.client
    original = client.submit_bundle_body

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("worker killed mid-request")

    client.submit_bundle_body = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        flush(harness.deps, SOURCE, ["batch"])
    client.submit_bundle_body = original  # type: ignore[method-assign]


def _no_dead_letters(harness: Harness) -> None:
    assert harness.deps.store.client.xlen(SourceKeys(SOURCE).dlq) == 0


@pytest.mark.parametrize("config", MODES)
def test_readback_answer_lost_but_applied_late_is_recorded_without_resending(
    harness_factory: HarnessFactory, config: EmulatorConfig
):
    # the emulator holds the bundle 1 s before applying it; the client gives up after 0.3 s
    harness = harness_factory(
        config, readback_interval_ms=50, readback_settle_ms=30_000, **READ_TIMEOUT
    )
    before = _prepare(harness)
    harness.add_fault(
        {"route": "bundle", "times": 1, "effect": {"kind": "latency", "seconds": 1.0}}
    )
    harness.publish(changes())

    harness.drain(deadline_s=20)

    assert len(_bundle_requests(harness)) == before + 1  # never sent again
    assert _read_backs(harness) >= 1  # read back before it had landed, and again until it had
    shrunk = harness.deps.store.sizing(SOURCE)  # a timeout halves the source's bundles
    assert shrunk is not None
    assert shrunk.cap == len(changes()) // 2
    _no_dead_letters(harness)
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())


@pytest.mark.parametrize("config", MODES)
def test_readback_answer_lost_and_not_applied_is_sent_again_after_the_settle_time(
    harness_factory: HarnessFactory, config: EmulatorConfig
):
    harness = harness_factory(config, readback_interval_ms=20, readback_settle_ms=300)
    before = _prepare(harness)
    harness.add_fault({"route": "bundle", "times": 1, "effect": {"kind": "drop"}})
    harness.publish(changes())

    harness.drain(deadline_s=20)

    lost, *resent = _bundle_requests(harness)[before:]
    assert lost["opCount"] == len(changes())
    # sent once again after the read-back, in smaller bundles (the timeout shrank them)
    assert sum(r["opCount"] for r in resent) == len(changes())
    assert max(r["opCount"] for r in resent) == len(changes()) // 2
    _no_dead_letters(harness)
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())


@pytest.mark.parametrize("config", MODES)
def test_readback_resent_create_and_delete_refused_as_already_done_count_as_applied(
    harness_factory: HarnessFactory, config: EmulatorConfig
):
    # the first request is lost unapplied; just before it is sent again, the same bundle lands
    # (the lost request arriving late): the resend meets ALREADY_EXISTS and NOT_FOUND
    harness = harness_factory(config, readback_interval_ms=20, readback_settle_ms=100)
    _prepare(harness)
    harness.add_fault({"route": "bundle", "times": 1, "effect": {"kind": "drop"}})
    client = harness.deps.client
    original = client.submit_bundle_body
    calls: list[bytes] = []

    def late_landing(source: str, body: bytes) -> Any:
        calls.append(body)
        if len(calls) == 2:
            answer = httpx.post(
                f"{harness.server.url}/sources/{source}/v1/bundle",
                content=body,
                headers={API_KEY_HEADER: KEY, "content-type": "application/json"},
            )
            assert answer.status_code in (200, 202), answer.text
            run_due(harness.deps)  # nothing else of the source moves meanwhile (holds kept)
        return original(source, body)

    client.submit_bundle_body = late_landing  # type: ignore[method-assign,assignment]
    harness.publish(changes())

    harness.drain(deadline_s=20)

    assert len(calls) >= 2
    _no_dead_letters(harness)
    statuses = {e: event_status(harness.deps, e).status for e in harness.published}
    assert set(statuses.values()) == {"applied"}, statuses
    events = harness.stored_events()
    assert harness.registry.snapshot(SOURCE) == one_by_one(SOURCE, events).state.snapshot()
    writes = [w for w in harness.registry.write_log() if w["source"] == SOURCE]
    keys = [(w["target"], w["type"], w["id"], w["action"]) for w in writes]
    assert len(keys) == len(set(keys))  # each CREATE and DELETE applied once


def test_readback_worker_dying_mid_request_is_read_back_after_its_claim_then_resent(
    harness_factory: HarnessFactory,
):
    harness = harness_factory(
        http_deadline_s=0.2, claim_ttl_ms=300, readback_interval_ms=20, readback_settle_ms=1500
    )
    before = _prepare(harness)
    harness.publish(changes())
    _die_mid_request(harness)
    assert event_status(harness.deps, "ev-c1").status == "in_flight"

    # the claim expires, recovery reads back: nothing there, and the settle time has not passed
    deadline = time.monotonic() + 10
    while _read_backs(harness) == 0:
        assert time.monotonic() < deadline, backlog(harness.deps).to_dict()
        run_due(harness.deps)
    assert len(_bundle_requests(harness)) == before  # not resent blindly
    assert backlog(harness.deps).in_flight == len(changes())

    harness.drain(deadline_s=20)

    assert len(_bundle_requests(harness)) == before + 1
    _no_dead_letters(harness)
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())


def test_readback_poison_keeps_what_applied_and_dead_letters_the_rest(
    harness_factory: HarnessFactory,
):
    harness = harness_factory(
        http_deadline_s=0.2, claim_ttl_ms=300, max_bundle_recoveries=2, readback_settle_ms=60_000
    )
    _prepare(harness)
    harness.publish(changes())
    _die_mid_request(harness)
    # the lost request had applied one operation (as if part of it were visible)
    landed = httpx.put(
        f"{harness.server.url}/sources/{SOURCE}/v1/resources/office/c1",
        json={"type": "office", "id": "c1", "data": {"name": "New office"}},
        headers={API_KEY_HEADER: KEY},
    )
    assert landed.status_code in (200, 201, 202), landed.text
    bundle = event_status(harness.deps, "ev-c1").bundle_id
    assert bundle
    store, now = harness.deps.store, harness.deps.now_ms()
    for taken_over in range(1, 3):  # two more workers took it over and died with it
        (claimed,) = store.claim(SOURCE, [bundle], now + taken_over * 1000, "recover")
        assert claimed.recoveries == taken_over
    harness.deps.now_ms = lambda: now + 10_000

    recovered = recover(harness.deps, SOURCE, [bundle])

    assert recovered.read_back == 1
    statuses = {e: event_status(harness.deps, e) for e in ("ev-c1", "ev-x1", "ev-r1")}
    assert statuses["ev-c1"].status == "applied"
    assert statuses["ev-x1"].status == "dead_lettered"
    assert statuses["ev-r1"].status == "dead_lettered"
    dlq = SourceKeys(SOURCE).dlq
    letters = cast(list[tuple[str, dict[str, str]]], store.client.xrange(dlq))
    assert {fields["eventId"] for _, fields in letters} == {"ev-c2", "ev-x1", "ev-x2", "ev-r1"}
    assert all('"POISON"' in fields["error"] for _, fields in letters)
    assert backlog(harness.deps).in_flight == 0  # locks released, nothing stuck
