"""Foresight: what planning expects to be refused, from what the source's answers said exists."""

from __future__ import annotations

import pytest

from api_client.models import Action, ErrorType
from tests.unit.domain.factories import SOURCE, rel, res
from worker.domain.foresight import (
    Foresight,
    ForesightCounts,
    ForesightPolicy,
    KeyState,
    Prior,
)
from worker.domain.keys import RelationshipKey, ResourceKey, key_of
from worker.domain.plan import Plan, PlanCaps, plan_bundles

P1 = ResourceKey(SOURCE, "provider", "p1")
O1 = ResourceKey(SOURCE, "office", "o1")
LINK = RelationshipKey(SOURCE, "works-at", "office", "o1", "provider", "p1")


def trusting(known: dict[str, str] | None = None, *, share: bool = True) -> Foresight:
    """Foresight over `known` with both kinds of expectation trusted."""
    return Foresight(known=known or {}, isolate_known=True, isolate_guess=True, share=share)


def test_a_resource_generation_says_whether_it_exists() -> None:
    sight = Foresight(known={str(P1): "3", str(O1): "2"})
    assert sight.state(P1) is KeyState.EXISTS
    assert sight.state(O1) is KeyState.ABSENT
    assert sight.state(ResourceKey(SOURCE, "provider", "p2")) is KeyState.UNSEEN


def test_a_held_key_is_taken_as_its_unfinished_operation_leaves_it() -> None:
    sight = Foresight(known={str(P1): "3"}, held={str(P1): "DELETE", str(O1): "UPSERT"})
    assert sight.state(P1) is KeyState.ABSENT
    assert sight.state(O1) is KeyState.EXISTS


def test_a_relationship_exists_only_while_its_ends_are_the_ones_it_was_written_with() -> None:
    both = {str(O1): "1", str(P1): "3"}
    assert Foresight(known={**both, str(LINK): "1:3"}).state(LINK) is KeyState.EXISTS
    # the provider was deleted and created again since (generation 5): the link went with it
    recreated = {str(O1): "1", str(P1): "5", str(LINK): "1:3"}
    assert Foresight(known=recreated).state(LINK) is KeyState.ABSENT
    # an end deleted or created by an unfinished bundle takes it away too
    assert (
        Foresight(known={**both, str(LINK): "1:3"}, held={str(P1): "CREATE"}).state(LINK)
        is KeyState.ABSENT
    )
    assert Foresight(known={**both, str(LINK): "-"}).state(LINK) is KeyState.ABSENT
    assert Foresight(known=both).state(LINK) is KeyState.UNSEEN


def test_a_held_relationship_whose_end_is_deleted_or_created_too_is_unsure() -> None:
    # Given a link written by one unfinished bundle and its provider created by another: the
    # provider may have been deleted after the link was written (taking it away) or before
    both = {str(O1): "1", str(P1): "3", str(LINK): "1:3"}
    for end_action in ("CREATE", "DELETE"):
        sight = Foresight(known=both, held={str(LINK): "UPSERT", str(P1): end_action})
        # Then nothing is expected of a CREATE of it (it was refused ALREADY_EXISTS before)
        assert sight.state(LINK) is KeyState.UNSURE
        assert sight.expect(LINK, Action.CREATE, KeyState.UNSURE, ()) is None
        assert sight.expect(LINK, Action.DELETE, KeyState.UNSURE, ()) is None
    # a held DELETE of the link leaves it absent whatever its ends do
    held = {str(LINK): "DELETE", str(P1): "CREATE"}
    assert Foresight(known=both, held=held).state(LINK) is KeyState.ABSENT
    # ends only written (UPSERT) leave the held link as its bundle leaves it
    held = {str(LINK): "UPSERT", str(P1): "UPSERT"}
    assert Foresight(known=both, held=held).state(LINK) is KeyState.EXISTS


def test_an_upsert_held_behind_a_reset_takes_the_relationships_of_its_entity_away() -> None:
    both = {str(O1): "1", str(P1): "3", str(LINK): "1:3"}
    # an UPSERT of p1 behind an unfinished DELETE or CREATE of it: the link goes with p1
    assert Foresight(known=both, held={str(P1): "UPSERT+"}).state(LINK) is KeyState.ABSENT
    assert Foresight(known=both, held={str(P1): "UPSERT+"}).state(P1) is KeyState.EXISTS
    # a plain UPSERT leaves the link as it was written
    assert Foresight(known=both, held={str(P1): "UPSERT"}).state(LINK) is KeyState.EXISTS


def test_a_key_held_by_an_expected_failure_is_taken_as_it_was_before_it() -> None:
    both = {str(O1): "1", str(P1): "3", str(LINK): "1:3"}
    sight = Foresight(known=both, held={str(P1): "?CREATE", str(LINK): "?DELETE"})
    assert sight.state(P1) is KeyState.EXISTS
    assert sight.state(LINK) is KeyState.EXISTS
    assert Foresight(held={str(P1): "?DELETE"}).state(P1) is KeyState.UNSEEN


def test_an_unreadable_value_counts_as_never_seen() -> None:
    assert Foresight(known={str(P1): "x"}).state(P1) is KeyState.UNSEEN
    assert Foresight(known={str(LINK): "1"}).state(LINK) is KeyState.UNSEEN


@pytest.mark.parametrize(
    ("action", "state", "ends", "expected"),
    [
        (Action.CREATE, KeyState.EXISTS, (), (Prior.KNOWN, ErrorType.ALREADY_EXISTS)),
        (Action.CREATE, KeyState.UNSEEN, (), None),
        (Action.UPSERT, KeyState.EXISTS, (), None),
        (Action.UPSERT, KeyState.ABSENT, (), None),
        (Action.DELETE, KeyState.ABSENT, (), (Prior.KNOWN, ErrorType.NOT_FOUND)),
        (Action.DELETE, KeyState.UNSEEN, (), (Prior.GUESS, ErrorType.NOT_FOUND)),
        (Action.DELETE, KeyState.EXISTS, (), None),
        (
            Action.UPSERT,
            KeyState.UNSEEN,
            (KeyState.EXISTS, KeyState.ABSENT),
            (Prior.KNOWN, ErrorType.FAILED_PRECONDITION),
        ),
        (
            Action.CREATE,
            KeyState.UNSEEN,
            (KeyState.UNSEEN, KeyState.EXISTS),
            (Prior.GUESS, ErrorType.FAILED_PRECONDITION),
        ),
        (
            Action.DELETE,
            KeyState.UNSEEN,
            (KeyState.ABSENT, KeyState.EXISTS),
            (Prior.KNOWN, ErrorType.NOT_FOUND),
        ),
        (Action.UPSERT, KeyState.UNSEEN, (KeyState.EXISTS, KeyState.EXISTS), None),
    ],
)
def test_expectations(
    action: Action,
    state: KeyState,
    ends: tuple[KeyState, ...],
    expected: tuple[Prior, ErrorType] | None,
) -> None:
    key = LINK if ends else P1
    found = Foresight().expect(key, action, state, ends)
    assert (None if found is None else (found.prior, found.error)) == expected


def test_known_starts_sure_and_guess_stops_after_a_few_applied_guesses() -> None:
    policy = ForesightPolicy(min_precision=0.2)
    fresh = ForesightCounts()
    assert fresh.precision(Prior.KNOWN) == 1.0
    assert fresh.precision(Prior.GUESS) == 0.5
    assert fresh.isolates(Prior.KNOWN, policy)
    assert fresh.isolates(Prior.GUESS, policy)
    assert ForesightCounts(guess_misses=3.0).isolates(Prior.GUESS, policy)  # 1/5
    assert not ForesightCounts(guess_misses=4.0).isolates(Prior.GUESS, policy)  # 1/6
    assert ForesightCounts(guess_hits=2.0, guess_misses=4.0).isolates(Prior.GUESS, policy)
    wrong = ForesightCounts(known_hits=0.0, known_misses=5.0)
    assert not wrong.isolates(Prior.KNOWN, policy)
    assert not ForesightCounts().isolates(Prior.KNOWN, ForesightPolicy(enabled=False))


def test_policy_refuses_a_precision_out_of_range() -> None:
    with pytest.raises(ValueError, match="min_precision"):
        ForesightPolicy(min_precision=0)


def _bundles_of(plan: Plan) -> list[list[str]]:
    return [[e for op in b.ops for e in op.event_ids] for b in plan.bundles]


def test_operations_expected_to_fail_share_bundles_of_their_own_kind() -> None:
    known = {str(P1): "1"}
    events = [
        res("UPSERT", "office", "o1", eid="a"),
        res("CREATE", "provider", "p1", eid="b"),  # p1 exists: refused ALREADY_EXISTS
        res("UPSERT", "provider", "p1", eid="c"),  # applies one by one: must not merge into b
        res("UPSERT", "provider", "p2", eid="d"),
        res("DELETE", "provider", "p9", eid="e"),  # never seen: a guess
    ]
    plan = plan_bundles(events, foresight=trusting(known))
    bundles = _bundles_of(plan)
    assert ["b", "e"] in bundles
    assert next(i for i, b in enumerate(bundles) if "c" in b) > bundles.index(["b", "e"])
    apart = next(b for b in plan.bundles if b.event_ids == ("b", "e"))
    assert not apart.isolated
    assert [op.prior for op in apart.ops] == [Prior.KNOWN, Prior.GUESS]
    assert apart.ops[0].expected_error is ErrorType.ALREADY_EXISTS
    assert [b for b in bundles if "a" in b] == [["a", "d"]]


def test_without_a_registry_that_names_every_failure_each_goes_alone() -> None:
    known = {str(P1): "1"}
    events = [
        res("UPSERT", "office", "o1", eid="a"),
        res("CREATE", "provider", "p1", eid="b"),
        res("DELETE", "provider", "p9", eid="c"),
    ]
    plan = plan_bundles(events, foresight=trusting(known, share=False))
    assert _bundles_of(plan) == [["a"], ["b"], ["c"]]
    assert [b.isolated for b in plan.bundles] == [False, True, True]


def test_the_table_still_isolates_what_it_expects_to_fail() -> None:
    events = [
        res("CREATE", "provider", "p3", eid="a"),
        res("CREATE", "provider", "p3", eid="b"),  # the table: ALREADY_EXISTS
        res("DELETE", "provider", "p9", eid="c"),
    ]
    plan = plan_bundles(events, foresight=trusting())
    alone = next(b for b in plan.bundles if "b" in b.event_ids)
    assert alone.isolated
    assert alone.event_ids == ("b",)


def test_an_untrusted_kind_is_marked_but_not_set_apart() -> None:
    events = [res("UPSERT", "provider", "p2", eid="a"), res("DELETE", "provider", "p9", eid="b")]
    plan = plan_bundles(events, foresight=Foresight(isolate_known=True, isolate_guess=False))
    assert _bundles_of(plan) == [["a", "b"]]
    (op,) = [op for op in plan.ops if op.event_ids == ("b",)]
    assert op.prior is Prior.GUESS
    assert op.expected_error is None
    trusted = plan_bundles(events, foresight=trusting())
    assert _bundles_of(trusted) == [["a"], ["b"]]


def test_an_end_written_earlier_in_the_round_counts_as_that_write_leaves_it() -> None:
    events = [
        res("UPSERT", "provider", "p1", eid="a"),
        rel("CREATE", frm=("office", "o1"), to=("provider", "p1"), eid="b"),
        res("DELETE", "office", "o2", eid="c"),
        rel("UPSERT", frm=("office", "o2"), to=("provider", "p1"), eid="d"),
    ]
    known = {str(O1): "1", str(ResourceKey(SOURCE, "office", "o2")): "1"}
    plan = plan_bundles(events, foresight=trusting(known))
    priors = {op.event_ids: op.prior for op in plan.ops}
    assert priors[("b",)] is None  # o1 known, p1 written just before
    assert priors[("d",)] is Prior.KNOWN  # o2 deleted just before
    assert priors[("c",)] is None


def test_a_relationship_recreated_after_its_end_is_deleted_and_created_again_is_no_conflict() -> (
    None
):
    known = {str(O1): "1", str(P1): "1", str(LINK): "1:1"}
    events = [
        res("DELETE", "provider", "p1", eid="a"),
        res("CREATE", "provider", "p1", eid="b"),
        rel("CREATE", frm=("office", "o1"), to=("provider", "p1"), eid="c"),
    ]
    plan = plan_bundles(events, foresight=trusting(known))
    assert all(op.prior is None for op in plan.ops)
    assert not any(b.isolated for b in plan.bundles)
    assert key_of(events[2]) == LINK


def test_a_create_of_an_end_expected_to_be_refused_leaves_its_relationships_known() -> None:
    # Given p1 and its link known to exist, and in one round a CREATE of p1, then of the link
    known = {str(O1): "1", str(P1): "1", str(LINK): "1:1"}
    events = [
        res("CREATE", "provider", "p1", eid="a"),
        rel("CREATE", frm=("office", "o1"), to=("provider", "p1"), eid="b"),
    ]
    plan = plan_bundles(events, foresight=trusting(known, share=False))
    # Then both are expected refused ALREADY_EXISTS: the refused CREATE of p1 resets nothing
    priors = {op.event_ids: (op.prior, op.expected_error) for op in plan.ops}
    assert priors == {
        ("a",): (Prior.KNOWN, ErrorType.ALREADY_EXISTS),
        ("b",): (Prior.KNOWN, ErrorType.ALREADY_EXISTS),
    }
    # the same when the table expects the CREATE refused (an UPSERT of p1 just before it)
    events = [res("UPSERT", "provider", "p1", eid="u"), *events]
    plan = plan_bundles(events, foresight=trusting(known, share=False))
    priors = {op.event_ids: (op.prior, op.expected_error) for op in plan.ops}
    assert priors[("a",)] == (None, ErrorType.ALREADY_EXISTS)
    assert priors[("b",)] == (Prior.KNOWN, ErrorType.ALREADY_EXISTS)


def test_without_foresight_nothing_is_expected() -> None:
    events = [res("DELETE", "provider", "p9", eid="a"), res("UPSERT", "provider", "p2", eid="b")]
    plan = plan_bundles(events, caps=PlanCaps())
    assert all(op.prior is None for op in plan.ops)
    assert _bundles_of(plan) == [["a", "b"]]


def test_while_guesses_are_new_a_few_go_alone_and_the_rest_share_a_bundle_apart() -> None:
    events = [
        res("UPSERT", "provider", "p1", eid="a"),
        res("DELETE", "provider", "p7", eid="b"),
        res("DELETE", "provider", "p8", eid="c"),
        res("DELETE", "provider", "p9", eid="d"),
    ]
    sight = Foresight(isolate_known=True, isolate_guess=True, guesses_alone=1)
    plan = plan_bundles(events, foresight=sight)
    assert sorted(_bundles_of(plan)) == [["a"], ["b"], ["c", "d"]]
    shared = next(b for b in plan.bundles if b.event_ids == ("c", "d"))
    assert not shared.isolated
    assert all(op.expected_error is ErrorType.NOT_FOUND for op in shared.ops)


def test_guesses_go_alone_once_answers_have_judged_them() -> None:
    policy = ForesightPolicy(evidence=4.0, probes=16)
    assert ForesightCounts(guess_hits=1.0, guess_misses=2.0).guesses_alone(policy) == 16
    assert ForesightCounts(guess_hits=3.0, guess_misses=1.0).guesses_alone(policy) is None


def test_an_upsert_and_delete_merge_only_on_an_entity_not_known_absent() -> None:
    events = [res("UPSERT", "provider", "p1", eid="u"), res("DELETE", "provider", "p1", eid="d")]
    merged = plan_bundles(events, foresight=trusting({str(P1): "1"}))
    assert [op.event_ids for op in merged.ops] == [("u", "d")]
    for known in ({str(P1): "2"}, {}):  # known absent; never seen, with guesses trusted
        apart = plan_bundles(events, foresight=trusting(known))
        assert [op.event_ids for op in apart.ops] == [("u",), ("d",)]
    untrusted = Foresight(isolate_known=True, isolate_guess=False)
    assert [op.event_ids for op in plan_bundles(events, foresight=untrusted).ops] == [("u", "d")]
