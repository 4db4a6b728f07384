"""The failure-isolation glue: bisecting a refused bundle with a fake client, and the cap on
resubmissions of cancelled events with a fake store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from api_client import APIError, TransportError
from api_client.models import Action, BundleReceipts, BundleRequest, ErrorBody, TaskAccepted
from worker.domain.coalesce import Fate, Role
from worker.domain.events import ChangeEvent
from worker.domain.ops import PlannedEvent, PlannedOp, plan_op
from worker.domain.outcomes import EventOutcome, Outcomes
from worker.domain.plan import BundlePlan
from worker.flow.deps import Deps
from worker.flow.isolation import (
    bisect_outcomes,
    cap_cancelled,
    half_bundle,
    is_refused_whole,
    refusal_error,
)
from worker.settings import IngestSettings

from .builders import link, resource


def op(event: ChangeEvent, seq: int) -> PlannedOp:
    return plan_op((PlannedEvent(event, seq, Role.CARRIER),), Action(event.action.value))


def bundle_of(*events: ChangeEvent) -> BundlePlan:
    return half_bundle(tuple(op(e, i) for i, e in enumerate(events)), isolated=False)


def ids_of(request: BundleRequest) -> list[str]:
    ops = [*request.resource_operations, *request.relationship_operations]
    dumped = [o.model_dump(by_alias=True, exclude_none=True) for o in ops]
    return [str(next(v for k, v in d.items() if k != "action").get("id")) for d in dumped]


@dataclass
class FakeClient:
    """Refuses as a whole (400) every request holding `bad`; else a SUCCESS receipt per op."""

    bad: str = ""
    answer: Any = None
    sent: list[list[str]] = field(default_factory=list)

    def submit_bundle_body(self, source: str, body: bytes) -> Any:
        request = BundleRequest.model_validate_json(body)
        ids = ids_of(request)
        self.sent.append(ids)
        if isinstance(self.answer, Exception):
            raise self.answer
        if self.answer is not None:
            return self.answer
        if self.bad in ids:
            raise APIError("refused", status=400, error=ErrorBody(message="bad", type="INVALID"))
        receipt = {"status": "SUCCESS"}
        return BundleReceipts.model_validate(
            {
                "resourceOperationReceipts": [receipt] * len(request.resource_operations),
                "relationshipOperationReceipts": [receipt] * len(request.relationship_operations),
            }
        )


@dataclass
class FakeStore:
    attempts: dict[str, int] = field(default_factory=dict)

    def event_attempts(self, source: str, event_ids: Sequence[str]) -> dict[str, int]:
        return {e: self.attempts.get(e, 0) for e in event_ids}


def deps_of(client: Any = None, store: Any = None, **settings: Any) -> Deps:
    return Deps(
        settings=IngestSettings(**settings),
        store=cast(Any, store or FakeStore()),
        client=cast(Any, client or FakeClient()),
    )


REFUSED = APIError("refused", status=400)


def noop() -> None:
    """No claim to renew in these tests."""


def fates(outcomes: Outcomes) -> dict[str, Fate]:
    return {o.event_id: o.fate for o in outcomes.outcomes}


def test_refusal_error_keeps_the_http_status_type_and_details() -> None:
    body = ErrorBody(message="bad", type="INVALID", details=[ErrorBody(message="field x")])
    kept = refusal_error(APIError("refused", status=413, error=body))
    assert (kept.code, kept.type, kept.message, len(kept.details)) == (413, "INVALID", "bad", 1)
    assert refusal_error(APIError("no body", status=400)) == ErrorBody(code=400, message="no body")


@pytest.mark.parametrize(("status", "expected"), [(400, True), (413, True), (404, False)])
def test_is_refused_whole_only_for_400_and_413_of_a_bundle(status: int, expected: bool) -> None:
    plan = bundle_of(resource(id_="a"))
    assert is_refused_whole(APIError("x", status=status), plan) is expected
    assert is_refused_whole(APIError("x", status=400), object()) is False


def test_half_bundle_splits_resources_from_relationships_in_order() -> None:
    events = (resource(type_="office", id_="o1"), link(office="o1"), resource(id_="p1"))
    half = bundle_of(*events)
    assert [o.event_ids for o in half.resource_ops] == [
        (events[0].event_id,),
        (events[2].event_id,),
    ]
    assert [o.event_ids for o in half.relationship_ops] == [(events[1].event_id,)]
    assert half.size_bytes > 0


def test_bisect_outcomes_isolates_the_bad_operation() -> None:
    events = [resource(id_=f"p{n}") for n in range(1, 7)]
    client = FakeClient(bad="p5")
    renewals: list[int] = []
    bundle = bundle_of(*events)

    got = bisect_outcomes(
        deps_of(client), "src", bundle, REFUSED, keep_claim=lambda: renewals.append(1)
    )

    assert got.stopped == ""
    result = fates(got.outcomes)
    assert result == {e.event_id: Fate.APPLIED for e in events} | {events[4].event_id: Fate.FAILED}
    failed = next(o for o in got.outcomes.outcomes if o.fate is Fate.FAILED)
    assert failed.error is not None
    assert failed.error.code == 400
    assert failed.reason == "refused as a whole, alone"
    assert client.sent == [["p1", "p2", "p3"], ["p4", "p5", "p6"], ["p4"], ["p5", "p6"], ["p5"],
                           ["p6"]]  # fmt: skip
    assert got.requests == len(client.sent) == len(renewals)


def test_bisect_outcomes_fails_what_is_left_at_the_depth_cap() -> None:
    events = [resource(id_=f"p{n}") for n in range(1, 5)]
    client = FakeClient(bad="p4")
    got = bisect_outcomes(
        deps_of(client, max_bisect_depth=1), "src", bundle_of(*events), REFUSED,
        keep_claim=noop,
    )  # fmt: skip
    assert client.sent == [["p1", "p2"], ["p3", "p4"]]
    assert fates(got.outcomes) == {
        events[0].event_id: Fate.APPLIED, events[1].event_id: Fate.APPLIED,
        events[2].event_id: Fate.FAILED, events[3].event_id: Fate.FAILED,
    }  # fmt: skip
    assert {o.reason for o in got.outcomes.outcomes if o.fate is Fate.FAILED} == {
        "refused as a whole; bisection stopped at depth 1"
    }


def test_bisect_outcomes_alone_at_depth_zero_is_failed_without_a_request() -> None:
    event = resource(id_="p1")
    client = FakeClient(bad="p1")
    got = bisect_outcomes(
        deps_of(client), "src", bundle_of(event), REFUSED, keep_claim=lambda: None
    )
    assert client.sent == []
    assert fates(got.outcomes) == {event.event_id: Fate.FAILED}


@pytest.mark.parametrize(
    "answer",
    [
        TaskAccepted.model_validate({"taskId": "bd_x", "status": "ACCEPTED"}),
        TransportError("down"),
        APIError("conflict", status=409),
        APIError("gateway", status=502),
    ],
    ids=["accepted", "transport", "409", "502"],
)
def test_bisect_outcomes_stops_on_an_answer_it_cannot_record(answer: Any) -> None:
    client = FakeClient(answer=answer)
    events = [resource(id_="p1"), resource(id_="p2")]
    got = bisect_outcomes(
        deps_of(client), "src", bundle_of(*events), REFUSED, keep_claim=lambda: None
    )
    assert got.stopped
    assert got.outcomes.outcomes == ()
    assert len(client.sent) == 1


def test_bisect_outcomes_sends_nothing_after_a_half_comes_back_to_be_replanned() -> None:
    events = [resource(id_=f"p{n}") for n in range(1, 5)]
    cancelled = BundleReceipts.model_validate(
        {"resourceOperationReceipts": [{"status": "CANCELLED"}, {"status": "FAILURE"}]}
    )
    client = FakeClient(answer=cancelled)
    got = bisect_outcomes(
        deps_of(client), "src", bundle_of(*events), REFUSED, keep_claim=lambda: None
    )
    assert len(client.sent) == 1
    result = fates(got.outcomes)
    assert (result[events[2].event_id], result[events[3].event_id]) == (Fate.RETRY, Fate.RETRY)
    assert result[events[0].event_id] is Fate.CANCELLED


def test_cap_cancelled_fails_only_cancelled_events_at_the_cap() -> None:
    store = FakeStore({"e-at-cap": 2, "e-below": 1, "e-failed": 5})
    outcomes = Outcomes(
        (
            EventOutcome("e-at-cap", Fate.CANCELLED),
            EventOutcome("e-below", Fate.CANCELLED),
            EventOutcome("e-failed", Fate.APPLIED),
        )
    )
    got = cap_cancelled(deps_of(store=store, max_event_attempts=3), "src", outcomes)
    assert fates(got) == {
        "e-at-cap": Fate.FAILED, "e-below": Fate.CANCELLED, "e-failed": Fate.APPLIED,
    }  # fmt: skip
    assert got.outcomes[0].reason == (
        "cancelled by a neighbour's failure at submission 3; max_event_attempts (3) reached"
    )


def test_cap_cancelled_reads_nothing_without_cancelled_events() -> None:
    outcomes = Outcomes((EventOutcome("e1", Fate.APPLIED),))
    assert cap_cancelled(deps_of(store=object()), "src", outcomes) is outcomes
