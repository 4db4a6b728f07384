"""The coalescing table, row by row, against a one-by-one oracle of a single entity.

The oracle below applies events one at a time to a tiny model of one entity (it exists or not; a
payload may be invalid; a relationship's ends may be missing), independently of the coalescer.
Each row test checks the operations the table sends, then that the coalesced run (merged
operation, receipt, fates, unmerge on refusal) ends in the same state with the same outcome per
event, from every starting state. `docs/coalescing.md` names these tests row by row.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from api_client.models import Action, ErrorType, ReceiptStatus
from worker.domain.coalesce import (
    RULES,
    CoalesceMode,
    Decision,
    Fate,
    Role,
    coalesce_actions,
    fates_for,
    is_transient,
    merged_action,
    meta_carried,
    pair_rule,
)

C, U, D = Action.CREATE, Action.UPSERT, Action.DELETE
SUPERSEDE, STRICT = CoalesceMode.SUPERSEDE, CoalesceMode.STRICT
DOC = Path(__file__).resolve().parents[3] / "docs" / "coalescing.md"


@dataclass(frozen=True)
class Step:
    """One event: its action and whether its own payload is valid."""

    action: Action
    valid: bool = True


@dataclass(frozen=True)
class World:
    """One entity: does it exist, which event's payload it holds, do a relationship's ends exist."""

    exists: bool
    holds: int | None = None
    ends_exist: bool = True


Outcome = tuple[str, ErrorType | None]


def apply_one(world: World, step: Step, index: int) -> tuple[World, Outcome]:
    """The Registry, one operation at a time (validation first, then state)."""
    if step.action is not D and not step.valid:
        return world, ("FAILED", ErrorType.INVALID_ARGUMENT)
    if step.action is not D and not world.ends_exist:
        return world, ("FAILED", ErrorType.NOT_FOUND)
    if step.action is C and world.exists:
        return world, ("FAILED", ErrorType.ALREADY_EXISTS)
    if step.action is D:
        if not world.exists:
            return world, ("FAILED", ErrorType.NOT_FOUND)
        return World(False, None, world.ends_exist), ("APPLIED", None)
    return World(True, index, world.ends_exist), ("APPLIED", None)


def one_by_one(world: World, steps: list[Step]) -> tuple[World, list[Outcome]]:
    outcomes = []
    for index, step in enumerate(steps):
        world, outcome = apply_one(world, step, index)
        outcomes.append(outcome)
    return world, outcomes


def coalesced(
    world: World, steps: list[Step], mode: CoalesceMode
) -> tuple[World, list[Fate], list[ErrorType | None], list[Action]]:
    """Send the table's operations, read fates, and replay unmerged events one op each."""
    fates: list[Fate] = [Fate.CANCELLED] * len(steps)
    errors: list[ErrorType | None] = [None] * len(steps)
    sent: list[Action] = []
    start = 0
    for segment in coalesce_actions([s.action for s in steps], mode=mode):
        indices = list(range(start, start + len(segment.actions)))
        start += len(indices)
        carrier = indices[-1]
        sent.append(segment.action)
        op = Step(segment.action, steps[carrier].valid)
        after, (status, error) = apply_one(world, op, carrier)
        receipt = ReceiptStatus.SUCCESS if status == "APPLIED" else ReceiptStatus.FAILURE
        segment_fates = fates_for(segment.roles, receipt, error)
        if all(f is Fate.UNMERGED for f in segment_fates):
            assert after == world, "a refused operation must leave the state untouched"
            for index in indices:
                world, (status, error) = apply_one(world, steps[index], index)
                receipt = ReceiptStatus.SUCCESS if status == "APPLIED" else ReceiptStatus.FAILURE
                (fates[index],) = fates_for([Role.CARRIER], receipt, error)
                errors[index] = error
            continue
        world = after
        for index, fate in zip(indices, segment_fates, strict=True):
            fates[index] = fate
            errors[index] = error if fate is Fate.FAILED else None
    return world, fates, errors, sent


def same_outcome(expected: Outcome, fate: Fate, error: ErrorType | None) -> bool:
    status, expected_error = expected
    if status == "APPLIED":
        return fate in (Fate.APPLIED, Fate.COALESCED)
    return fate is Fate.FAILED and error == expected_error


def superseded_invalid(steps: list[Step], fates: list[Fate]) -> bool:
    """The documented exception: a COALESCED event whose own payload was invalid."""
    return any(f is Fate.COALESCED and not s.valid for s, f in zip(steps, fates, strict=True))


STARTS = [
    World(exists=False),
    World(exists=True, holds=-1),
    World(exists=False, ends_exist=False),  # a relationship whose end is missing
]


def check_equivalence(actions: list[Action], mode: CoalesceMode) -> int:
    """Every start and validity combination: same state, same outcome per event."""
    checked = 0
    for start, validity in itertools.product(
        STARTS, itertools.product([True, False], repeat=len(actions))
    ):
        steps = [Step(a, v) for a, v in zip(actions, validity, strict=True)]
        expected_world, expected = one_by_one(start, steps)
        world, fates, errors, _ = coalesced(start, steps, mode)
        assert world == expected_world, (start, steps)
        if mode is SUPERSEDE and superseded_invalid(steps, fates):
            continue  # the documented exception, checked on its own below
        for outcome, fate, error in zip(expected, fates, errors, strict=True):
            assert same_outcome(outcome, fate, error), (start, steps, expected, fates)
        checked += 1
    return checked


def sent_ops(actions: list[Action], mode: CoalesceMode = SUPERSEDE) -> list[tuple[Action, int]]:
    return [(s.action, len(s.actions)) for s in coalesce_actions(actions, mode=mode)]


def happy(start: World, actions: list[Action]) -> tuple[list[Fate], list[Action]]:
    _, fates, _, sent = coalesced(start, [Step(a) for a in actions], SUPERSEDE)
    return fates, sent


ABSENT, PRESENT = World(exists=False), World(exists=True, holds=-1)


# --- one test per row of docs/coalescing.md -------------------------------------------------


@pytest.mark.parametrize("mode", [SUPERSEDE, STRICT])
def test_coalesce_create_then_create_splits_and_the_second_fails_already_exists(mode):
    assert sent_ops([C, C], mode) == [(C, 1), (C, 1)]
    assert pair_rule(C, C).expected_error is ErrorType.ALREADY_EXISTS
    fates, _ = happy(ABSENT, [C, C])
    assert fates == [Fate.APPLIED, Fate.FAILED]
    assert check_equivalence([C, C], mode) > 0


def test_coalesce_create_then_upsert_merges_into_a_create_of_the_latest_payload():
    assert sent_ops([C, U]) == [(C, 2)]
    assert happy(ABSENT, [C, U]) == ([Fate.COALESCED, Fate.APPLIED], [C])
    # Refused (the entity existed): unmerged, the CREATE fails alone, the UPSERT applies alone.
    _, fates, errors, sent = coalesced(PRESENT, [Step(C), Step(U)], SUPERSEDE)
    assert sent == [C]
    assert fates == [Fate.FAILED, Fate.APPLIED]
    assert errors == [ErrorType.ALREADY_EXISTS, None]
    assert check_equivalence([C, U], SUPERSEDE) > 0


def test_coalesce_create_then_delete_splits_into_successive_bundles():
    assert sent_ops([C, D]) == [(C, 1), (D, 1)]
    assert happy(ABSENT, [C, D])[0] == [Fate.APPLIED, Fate.APPLIED]
    _, fates, errors, _ = coalesced(PRESENT, [Step(C), Step(D)], SUPERSEDE)
    assert fates == [Fate.FAILED, Fate.APPLIED]
    assert errors[0] is ErrorType.ALREADY_EXISTS
    assert check_equivalence([C, D], SUPERSEDE) > 0


def test_coalesce_upsert_then_create_splits_and_the_create_fails_already_exists():
    assert sent_ops([U, C]) == [(U, 1), (C, 1)]
    assert pair_rule(U, C).expected_error is ErrorType.ALREADY_EXISTS
    assert happy(ABSENT, [U, C])[0] == [Fate.APPLIED, Fate.FAILED]
    assert check_equivalence([U, C], SUPERSEDE) > 0


def test_coalesce_upsert_then_upsert_merges_into_the_latest_upsert():
    assert sent_ops([U, U]) == [(U, 2)]
    assert happy(ABSENT, [U, U]) == ([Fate.COALESCED, Fate.APPLIED], [U])
    # Refused (the latest payload is invalid): unmerged, the first applies alone.
    world, fates, errors, _ = coalesced(ABSENT, [Step(U), Step(U, valid=False)], SUPERSEDE)
    assert fates == [Fate.APPLIED, Fate.FAILED]
    assert errors[1] is ErrorType.INVALID_ARGUMENT
    assert world.holds == 0
    assert check_equivalence([U, U], SUPERSEDE) > 0


def test_coalesce_upsert_then_delete_merges_into_the_delete():
    assert sent_ops([U, D]) == [(D, 2)]
    assert happy(PRESENT, [U, D]) == ([Fate.COALESCED, Fate.APPLIED], [D])
    # Refused (the entity was absent, NOT_FOUND): unmerged, the UPSERT creates, the DELETE removes.
    world, fates, _, _ = coalesced(ABSENT, [Step(U), Step(D)], SUPERSEDE)
    assert fates == [Fate.APPLIED, Fate.APPLIED]
    assert not world.exists
    assert check_equivalence([U, D], SUPERSEDE) > 0


def test_coalesce_delete_then_create_splits_into_successive_bundles():
    assert sent_ops([D, C]) == [(D, 1), (C, 1)]
    assert happy(PRESENT, [D, C])[0] == [Fate.APPLIED, Fate.APPLIED]
    _, fates, errors, _ = coalesced(ABSENT, [Step(D), Step(C)], SUPERSEDE)
    assert fates == [Fate.FAILED, Fate.APPLIED]
    assert errors[0] is ErrorType.NOT_FOUND
    assert check_equivalence([D, C], SUPERSEDE) > 0


def test_coalesce_delete_then_upsert_splits_into_successive_bundles():
    assert sent_ops([D, U]) == [(D, 1), (U, 1)]
    assert happy(PRESENT, [D, U])[0] == [Fate.APPLIED, Fate.APPLIED]
    assert check_equivalence([D, U], SUPERSEDE) > 0


def test_coalesce_delete_then_delete_splits_and_the_second_fails_not_found():
    assert sent_ops([D, D]) == [(D, 1), (D, 1)]
    assert pair_rule(D, D).expected_error is ErrorType.NOT_FOUND
    fates, _ = happy(PRESENT, [D, D])
    assert fates == [Fate.APPLIED, Fate.FAILED]
    assert check_equivalence([D, D], SUPERSEDE) > 0


# --- the table as a whole -------------------------------------------------------------------


@pytest.mark.parametrize("mode", [SUPERSEDE, STRICT])
@pytest.mark.parametrize("length", [1, 2, 3, 4])
def test_coalesce_every_chain_is_equivalent_to_one_by_one(mode, length):
    checked = 0
    for actions in itertools.product([C, U, D], repeat=length):
        checked += check_equivalence(list(actions), mode)
    assert checked > 0


def test_coalesce_strict_mode_never_merges_and_has_no_exception():
    for actions in itertools.product([C, U, D], repeat=3):
        assert all(n == 1 for _, n in sent_ops(list(actions), STRICT))
        validities = itertools.product([True, False], repeat=3)
        for start, validity in itertools.product(STARTS, validities):
            steps = [Step(a, v) for a, v in zip(actions, validity, strict=True)]
            _, fates, _, _ = coalesced(start, steps, STRICT)
            assert not superseded_invalid(steps, fates)


def test_coalesce_supersede_exception_is_only_a_superseded_invalid_payload():
    # U(invalid) then U(valid): alone, the first would fail; merged, it is COALESCED.
    steps = [Step(U, valid=False), Step(U)]
    world, expected = one_by_one(ABSENT, steps)
    got_world, fates, _, _ = coalesced(ABSENT, steps, SUPERSEDE)
    assert got_world == world, "the state is the same even then"
    assert expected[0] == ("FAILED", ErrorType.INVALID_ARGUMENT)
    assert fates == [Fate.COALESCED, Fate.APPLIED]


def test_coalesce_table_covers_every_pair_once():
    assert set(RULES) == set(itertools.product([C, U, D], repeat=2))
    merges = {pair for pair, rule in RULES.items() if rule.decision is Decision.MERGE}
    assert merges == {(C, U), (U, U), (U, D)}


def test_coalesce_merged_action_follows_the_table_and_strict_merges_nothing():
    assert merged_action(C, U, mode=SUPERSEDE) is C
    assert merged_action(U, D, mode=SUPERSEDE) is D
    assert merged_action(D, U, mode=SUPERSEDE) is None
    assert merged_action(U, U, mode=STRICT) is None


def test_coalesce_chains_keep_merging_through_the_table():
    assert sent_ops([C, U, U, U]) == [(C, 4)]
    assert sent_ops([U, U, D]) == [(D, 3)]
    assert sent_ops([C, U, D]) == [(C, 2), (D, 1)]
    assert sent_ops([D, U, U, D, D]) == [(D, 1), (D, 3), (D, 1)]


@pytest.mark.parametrize(
    ("roles", "status", "error", "expected"),
    [
        (
            [Role.SUPERSEDED, Role.CARRIER],
            ReceiptStatus.SUCCESS,
            None,
            (Fate.COALESCED, Fate.APPLIED),
        ),
        ([Role.CARRIER], ReceiptStatus.FAILURE, ErrorType.NOT_FOUND, (Fate.FAILED,)),
        (
            [Role.SUPERSEDED, Role.CARRIER],
            ReceiptStatus.FAILURE,
            ErrorType.INVALID_ARGUMENT,
            (Fate.UNMERGED, Fate.UNMERGED),
        ),
        (
            [Role.SUPERSEDED, Role.CARRIER],
            ReceiptStatus.CANCELLED,
            None,
            (Fate.CANCELLED, Fate.CANCELLED),
        ),
        ([Role.CARRIER], ReceiptStatus.FAILURE, ErrorType.INTERNAL, (Fate.RETRY,)),
        ([Role.CARRIER], ReceiptStatus.FAILURE, ErrorType.UNAUTHENTICATED, (Fate.RETRY,)),
        ([Role.CARRIER], ReceiptStatus.FAILURE, "SOMETHING_NEW", (Fate.FAILED,)),
        ([Role.CARRIER], ReceiptStatus.FAILURE, None, (Fate.FAILED,)),
    ],
)
def test_fates_for_reads_one_receipt_into_each_event_fate(roles, status, error, expected):
    assert fates_for(roles, status, error) == expected


@pytest.mark.parametrize("status", [ReceiptStatus.PENDING, "LATER"])
def test_fates_for_refuses_a_receipt_that_is_not_terminal(status):
    with pytest.raises(ValueError, match="not a terminal"):
        fates_for([Role.CARRIER], status, None)


def test_is_transient_never_retries_a_data_error():
    assert not is_transient(ErrorType.ALREADY_EXISTS)
    assert is_transient(ErrorType.UNAVAILABLE)


@pytest.mark.parametrize(
    ("superseded", "carrier", "carried"),
    [
        ([None, {}], None, True),
        ([{"createdAt": "t"}], {"createdAt": "u", "updatedAt": "v"}, True),
        ([{"createdAt": "t"}], None, False),
        ([None, {"createdAt": "t", "updatedAt": "v"}], {"createdAt": "u"}, False),
        ([{"identifier": []}], {"createdAt": "u"}, False),
    ],
    ids=["none", "carrier-names-more", "dropped", "updated-at-dropped", "identifier-dropped"],
)
def test_meta_carried_only_when_the_carrier_names_every_superseded_field(
    superseded, carrier, carried
):
    assert meta_carried(superseded, carrier) is carried


def test_coalesce_doc_names_an_existing_test_for_every_row():
    text = DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"`(test_coalesce_[a-z_]+)`", text))
    defined = {name for name in globals() if name.startswith("test_coalesce_")}
    assert named, "the doc names no test"
    assert named <= defined, named - defined
    for pending, new in RULES:
        prefix = f"test_coalesce_{pending.lower()}_then_{new.lower()}_"
        assert any(name.startswith(prefix) for name in named), prefix
