"""Invariant 2 and the caps: no plan carries two operations on one id or passes a cap.

Checked on the request bytes each bundle sends (`dump_json`), independently of `validate_plan`
(which must accept the plan too), under caps down to one operation per bundle and a byte cap just
above the largest operation. Under caps that some operations cannot meet, those (and only those)
are rejected: each event is carried by one operation or rejected, never both, never lost.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from tests.property.cases import Case, cases
from tests.property.driver import check_accounting, check_bundles
from tests.property.oracle import EMPTY_BUNDLE, batch_bytes
from tests.property.streams import Scenario, publish, scenarios
from worker.domain.coalesce import CoalesceMode
from worker.domain.plan import Plan, PlanCaps, plan_bundles
from worker.domain.plan_check import validate_plan

MODES = st.sampled_from([CoalesceMode.SUPERSEDE, CoalesceMode.STRICT])


def _rejected_correctly(plan: Plan, caps: PlanCaps) -> None:
    """Every rejected operation or atomic batch is one that no bundle under `caps` can carry."""
    for rejection in plan.rejected:
        members = list(rejection.events)
        if members[0].event.atomic_batch is None:
            # One operation: it sends the latest event's payload (CREATE, UPSERT and DELETE
            # are all six letters, so the merged action does not change the size).
            needed, count = batch_bytes([members[-1].event]), 1
        else:
            needed, count = batch_bytes([p.event for p in members]), len(members)
        assert needed > caps.max_bytes or count > caps.max_operations, rejection.reason


@given(case=cases(operations=(1, 2, 3, 4, 500)), mode=MODES, data=st.data())
def test_plan_bundles_keeps_one_operation_per_id_within_the_caps(
    case: Case, mode: CoalesceMode, data: st.DataObject
) -> None:
    events = case.scenario.events
    no_merge = data.draw(st.sets(st.sampled_from([e.event_id for e in events])))
    plan = plan_bundles(events, caps=case.caps, mode=mode, no_merge=no_merge)
    assert not plan.rejected  # every operation and batch fits these caps
    check_bundles(plan, case.caps)
    check_accounting(plan, events)
    validate_plan(plan, case.caps)


@given(
    scenario=scenarios(max_steps=14),
    mode=MODES,
    max_operations=st.integers(1, 4),
    spare_bytes=st.integers(1, 700),
)
def test_plan_bundles_rejects_only_what_no_bundle_can_carry(
    scenario: Scenario, mode: CoalesceMode, max_operations: int, spare_bytes: int
) -> None:
    caps = PlanCaps(max_operations, EMPTY_BUNDLE + spare_bytes)
    plan = plan_bundles(scenario.events, caps=caps, mode=mode)
    check_accounting(plan, scenario.events)
    _rejected_correctly(plan, caps)


def _office(event_id: str, action: str, name_length: int = 0) -> dict[str, object]:
    raw: dict[str, object] = {
        "eventId": event_id,
        "sourceKey": "src",
        "target": "resource",
        "action": action,
        "type": "office",
        "id": "o1",
    }
    if action != "DELETE":
        raw["data"] = {"name": "x" * name_length}
    return raw


TOO_BIG_BETWEEN = Scenario(
    start=(),
    events=publish(
        [_office("e0", "DELETE"), _office("e1", "CREATE", 300), _office("e2", "DELETE")]
    ),
    invalid=frozenset(),
)
"""DELETE o1, a CREATE o1 too big for any bundle, DELETE o1: the DELETEs need two bundles."""


@example(
    scenario=TOO_BIG_BETWEEN,
    mode=CoalesceMode.SUPERSEDE,
    max_operations=4,
    spare_bytes=300 - EMPTY_BUNDLE,
    isolate=True,
)
@given(
    scenario=scenarios(max_steps=14),
    mode=MODES,
    max_operations=st.integers(1, 4),
    spare_bytes=st.integers(1, 700),
    isolate=st.booleans(),
)
def test_plan_bundles_keeps_order_and_unique_ids_around_a_rejected_operation(
    scenario: Scenario, mode: CoalesceMode, max_operations: int, spare_bytes: int, isolate: bool
) -> None:
    caps = PlanCaps(max_operations, EMPTY_BUNDLE + spare_bytes, isolate)
    plan = plan_bundles(scenario.events, caps=caps, mode=mode)
    check_bundles(plan, caps)
    validate_plan(plan, caps)
