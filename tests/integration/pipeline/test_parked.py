"""Bundles that used to be parked for good: a 404 on the write route pauses the source, refusals
without receipts are resolved by reading the Registry back, and what is still parked (refused
again after a resend) is released by an operator's `parked retry` or `parked abandon`, after
which the events behind it on the same entities go through in order."""

from __future__ import annotations

import json
from typing import Any

import pytest

from worker.cli import EXIT_OK, main
from worker.results import backlog, event_status
from worker.store.keys import SourceKeys
from worker.store.pauses import PauseStore

from .checks import check_against_oracle, run_until
from .conftest import KEY, SOURCE, Harness, HarnessFactory

pytestmark = pytest.mark.integration

READ_BACK: dict[str, Any] = {"readback_interval_ms": 20, "readback_settle_ms": 150}
"""A read-back that settles quickly: a request the fault refused is never applied later."""


def office(event_id: str, office_id: str, name: str) -> dict[str, Any]:
    return {"eventId": event_id, "sourceKey": SOURCE, "target": "resource", "action": "UPSERT",
            "type": "office", "id": office_id, "data": {"name": name}}  # fmt: skip


def refuse(harness: Harness, status: int, *, first: int, apply_first: bool = False) -> None:
    effect = {"kind": "status", "status": status, "apply_first": apply_first}
    harness.add_fault({"route": "bundle", "first": first, "effect": effect})


def bundle_statuses(harness: Harness) -> list[int]:
    return [r["status"] for r in harness.requests() if r["route"] == "bundle"]


def parked_ids(harness: Harness) -> list[str]:
    return [str(m) for m in harness.deps.store.client.zrange(SourceKeys(SOURCE).parked, 0, -1)]


def test_parked_404_on_the_write_route_pauses_the_source_and_parks_nothing(
    harness_factory: HarnessFactory,
) -> None:
    # Given a Registry that answers the bundle route 404 twice (a base URL with a wrong path)
    harness = harness_factory(pause_base_ms=50, pause_cap_ms=200)
    refuse(harness, 404, first=2)
    harness.publish([office("a1", "o1", "One"), office("a2", "o2", "Two")])

    # When the pipeline runs until the Registry answered 404
    run_until(harness, lambda: 404 in bundle_statuses(harness))

    # Then the source is paused like for a refused key, and no bundle is parked
    pause = PauseStore(harness.deps.store.client).get(SOURCE)
    assert pause is not None
    assert (pause.kind, pause.reason) == ("config", "NotFoundError 404 NOT_FOUND")
    assert parked_ids(harness) == []
    assert backlog(harness.deps).parked == 0

    # And once the route answers again the source resumes and everything lands, once
    harness.drain(deadline_s=20)
    assert bundle_statuses(harness).count(404) == 2
    assert PauseStore(harness.deps.store.client).get(SOURCE) is None
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())


@pytest.mark.parametrize("status", [409, 501])
def test_parked_refusal_without_receipts_is_read_back_and_sent_again(
    harness_factory: HarnessFactory, status: int
) -> None:
    # Given a bundle the Registry refuses once as a whole, naming no operation
    harness = harness_factory(**READ_BACK)
    refuse(harness, status, first=1)
    harness.publish([office("a1", "o1", "One"), office("a2", "o2", "Two")])
    run_until(harness, lambda: status in bundle_statuses(harness))

    # When a later event on the same entity comes meanwhile
    harness.publish([office("a3", "o1", "One again")])
    harness.drain(deadline_s=20)

    # Then the bundle was read back (not applied) and sent again, never parked, in order
    assert parked_ids(harness) == []
    assert harness.registry.snapshot(SOURCE)  # something landed
    assert event_status(harness.deps, "a3").status == "applied"
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())


def test_parked_refusal_applied_anyway_is_read_back_as_applied_and_not_sent_twice(
    harness_factory: HarnessFactory,
) -> None:
    # Given a bundle the Registry applies, then answers 409 without receipts
    harness = harness_factory(**READ_BACK)
    refuse(harness, 409, first=1, apply_first=True)
    harness.publish([office("a1", "o1", "One"), office("a2", "o2", "Two")])

    # When the pipeline drains
    harness.drain(deadline_s=20)

    # Then the read-back finds it applied: recorded, one bundle request, nothing parked
    assert bundle_statuses(harness) == [409]
    assert parked_ids(harness) == []
    assert {event_status(harness.deps, e).status for e in ("a1", "a2")} == {"applied"}
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())


@pytest.fixture
def parked_behind(
    harness_factory: HarnessFactory, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> tuple[Harness, str]:
    """A bundle refused 501 again after its read-back and resend: parked, with an event on the
    same entity blocked behind it; the CLI pointed at this Redis. The harness and the bundle."""
    harness = harness_factory(**READ_BACK)
    monkeypatch.setenv("INGEST_REDIS_URL", redis_url)
    monkeypatch.setenv("CLINIA_API_KEY", KEY)
    refuse(harness, 501, first=2)
    harness.publish([office("a1", "o1", "One"), office("a2", "o2", "Two")])
    run_until(harness, lambda: bool(parked_ids(harness)))
    harness.publish([office("a3", "o1", "One again"), office("a4", "o3", "Three")])
    run_until(harness, lambda: event_status(harness.deps, "a4").status == "applied")
    run_until(harness, lambda: backlog(harness.deps).to_dict()["blocked"] == 1)
    assert event_status(harness.deps, "a3").status == "pending"
    current = backlog(harness.deps)
    assert (current.parked, current.to_dict()["parkedEvents"]) == (1, 2)
    assert current.in_flight == 0
    assert current.total == 3  # two parked events and one blocked behind them
    (bundle_id,) = parked_ids(harness)
    return harness, bundle_id


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    assert main(list(argv)) == EXIT_OK
    return json.loads(capsys.readouterr().out)


def test_parked_retry_sends_the_events_again_and_the_ones_behind_follow_in_order(
    parked_behind: tuple[Harness, str], capsys: pytest.CaptureFixture[str]
) -> None:
    harness, bundle_id = parked_behind

    # When an operator lists parked bundles, tries a dry run, then retries it
    listed = cli_json(capsys, "parked", "list", "--source", SOURCE, "--json")
    assert [(p["bundleId"], p["events"], p["blocked"]) for p in listed["parked"]] == [
        (bundle_id, 2, 1)
    ]
    assert "501" in listed["parked"][0]["error"]
    dry = cli_json(capsys, "parked", "retry", bundle_id, "--dry-run", "--json")
    assert [r["code"] for r in dry] == ["would-retry"]
    assert parked_ids(harness) == [bundle_id]
    done = cli_json(capsys, "parked", "retry", bundle_id, "--json")
    assert [(r["code"], r["events"]) for r in done] == [("retried", 2)]

    # Then its events are sent again, the blocked event after them, and nothing is parked
    assert parked_ids(harness) == []
    harness.drain(deadline_s=20)
    statuses = {e: event_status(harness.deps, e).status for e in ("a1", "a2", "a3")}
    assert statuses == {"a1": "coalesced", "a2": "applied", "a3": "applied"}  # a1 before a3
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())
    assert cli_json(capsys, "parked", "list", "--json")["parked"] == []


def test_parked_abandon_dead_letters_the_events_and_the_ones_behind_proceed(
    parked_behind: tuple[Harness, str], capsys: pytest.CaptureFixture[str]
) -> None:
    harness, bundle_id = parked_behind

    # When an operator abandons every parked bundle of the source
    done = cli_json(capsys, "parked", "abandon", "--all", "--source", SOURCE, "--json")

    # Then its events are dead-lettered with the reason PARKED and the event behind it lands
    assert [(r["bundleId"], r["code"], r["events"]) for r in done] == [(bundle_id, "abandoned", 2)]
    harness.drain(deadline_s=20)
    for event_id in ("a1", "a2"):
        status = event_status(harness.deps, event_id)
        assert status.status == "dead_lettered"
        assert status.reason == "PARKED"
        assert isinstance(status.error, dict)
        assert status.error["type"] == "PARKED"
    assert event_status(harness.deps, "a3").status == "applied"
    kept = [e for e in harness.stored_events() if e.event_id not in ("a1", "a2")]
    check_against_oracle(harness.deps, harness.registry, SOURCE, kept)
    assert backlog(harness.deps).total == 0
