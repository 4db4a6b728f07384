"""Lessons: the facts and tallies one recorded answer gives foresight."""

from __future__ import annotations

from api_client.models import ErrorBody, ErrorType
from tests.unit.domain.factories import SOURCE, rel, res
from worker.domain.coalesce import Fate
from worker.domain.foresight import Foresight, Prior
from worker.domain.keys import RelationshipKey, ResourceKey
from worker.domain.lessons import Learned, lesson_of
from worker.domain.outcomes import UNMERGED_WHEN_CANCELLED, EventOutcome, Outcomes
from worker.domain.plan import plan_bundles


def _error(kind: ErrorType) -> ErrorBody:
    return ErrorBody(code=400, type=kind, message="refused")


def _key(type_: str, id_: str) -> ResourceKey:
    return ResourceKey(SOURCE, type_, id_)


def test_applied_operations_teach_existence_in_the_order_they_ran() -> None:
    events = [
        res("UPSERT", "provider", "p1", eid="a"),
        res("DELETE", "provider", "p2", eid="b"),
        rel("CREATE", frm=("office", "o1"), to=("provider", "p1"), eid="c"),
    ]
    (bundle,) = plan_bundles(events).bundles
    outcomes = Outcomes(tuple(EventOutcome(e, Fate.APPLIED) for e in ("a", "b", "c")))
    lesson = lesson_of(bundle.ops, outcomes)
    link = RelationshipKey(SOURCE, "works-at", "office", "o1", "provider", "p1")
    assert lesson.facts == (
        (Learned.EXISTS, _key("provider", "p1")),
        (Learned.ABSENT, _key("provider", "p2")),
        (Learned.EXISTS, link),
    )
    assert lesson.tallied == 0


def test_refusals_teach_what_they_prove_and_judge_the_expectations() -> None:
    known = {str(_key("provider", "p1")): "1"}
    events = [
        res("CREATE", "provider", "p1", eid="a"),  # known to exist
        res("DELETE", "provider", "p9", eid="b"),  # never seen: a guess
        res("DELETE", "provider", "p8", eid="c"),  # never seen: a guess that applies
        rel("UPSERT", frm=("office", "o7"), to=("provider", "p1"), eid="d"),  # guess: o7 unseen
    ]
    plan = plan_bundles(events, foresight=Foresight(known=known))
    ops = plan.ops
    assert {op.event_ids[0]: op.prior for op in ops} == {
        "a": Prior.KNOWN,
        "b": Prior.GUESS,
        "c": Prior.GUESS,
        "d": Prior.GUESS,
    }
    outcomes = Outcomes(
        (
            EventOutcome("a", Fate.FAILED, error=_error(ErrorType.ALREADY_EXISTS)),
            EventOutcome("b", Fate.FAILED, error=_error(ErrorType.NOT_FOUND)),
            EventOutcome("c", Fate.APPLIED),
            EventOutcome("d", Fate.FAILED, error=_error(ErrorType.FAILED_PRECONDITION)),
        )
    )
    lesson = lesson_of(ops, outcomes)
    assert (Learned.EXISTS, _key("provider", "p1")) in lesson.facts
    assert (Learned.ABSENT, _key("provider", "p9")) in lesson.facts
    assert (Learned.ABSENT, _key("provider", "p8")) in lesson.facts
    assert len(lesson.facts) == 3  # a missing end does not say which end is missing
    assert (lesson.known_hits, lesson.known_misses) == (1, 0)
    assert (lesson.guess_hits, lesson.guess_misses) == (2, 1)


def test_cancelled_and_bound_operations_teach_nothing_yet() -> None:
    events = [res("DELETE", "provider", "p9", eid="a"), res("DELETE", "provider", "p8", eid="b")]
    plan = plan_bundles(events, foresight=Foresight())
    refusal = _error(ErrorType.NOT_FOUND)
    outcomes = Outcomes(
        (
            EventOutcome("a", Fate.CANCELLED),
            EventOutcome("b", Fate.FAILED, error=refusal, bound_to="x", reason="bound"),
        )
    )
    lesson = lesson_of(plan.ops, outcomes)
    assert lesson.empty
    unmerged = Outcomes(
        (
            EventOutcome("a", Fate.UNMERGED, error=refusal, reason=UNMERGED_WHEN_CANCELLED),
            EventOutcome("b", Fate.RETRY, error=refusal),
        )
    )
    assert lesson_of(plan.ops, unmerged).empty
