"""Invariants 3 and 4 across groups: flushing buffers in any order keeps one-by-one equivalence.

Events are published in calls into per-group buffers (`place_events`); at random moments a random
buffer flushes with its `flush_set` closure, whose events (in publish order) are driven through
the planner to the emulator's state. Whatever buffer flushes first, and whichever groups the
events name, the final state and every outcome are those of applying the published events one by
one. A batch refused at publish (its entities pending in several buffers) never happened.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.property.buffers import Buffers, calls_of, flush_groups, publish_call
from tests.property.cases import Case, cases
from tests.property.compare import assert_same_outcomes
from tests.property.driver import drive, submitter
from tests.property.oracle import one_by_one, registry_with
from worker.domain.coalesce import CoalesceMode
from worker.domain.events import ChangeEvent
from worker.domain.grouping import Placement
from worker.domain.outcomes import EventOutcome

MODES = st.sampled_from([CoalesceMode.SUPERSEDE, CoalesceMode.STRICT])


@given(case=cases(), mode=MODES, data=st.data())
def test_flush_set_in_any_order_matches_one_by_one_application(
    case: Case, mode: CoalesceMode, data: st.DataObject
) -> None:
    scenario = case.scenario
    position = {e.event_id: index for index, e in enumerate(scenario.events)}
    registry = registry_with(scenario.start)
    submit = submitter(registry)
    buffers: Buffers = {}
    published: list[ChangeEvent] = []
    final: dict[str, EventOutcome] = {}

    def flush(group: str, max_groups: int) -> None:
        groups = flush_groups(buffers, group, max_groups)
        if groups is None:
            return
        events = sorted(
            (e for g in groups for e in buffers.pop(g)), key=lambda e: position[e.event_id]
        )
        run = drive(events, submit, mode=mode, caps=case.caps)
        assert not final.keys() & run.final.keys()
        final.update(run.final)

    cuts = data.draw(st.lists(st.booleans(), min_size=len(scenario.events)))
    for call in calls_of(scenario.events, cuts):
        placements = publish_call(buffers, call)
        published += [e for e, p in zip(call, placements, strict=True) if isinstance(p, Placement)]
        for _ in range(data.draw(st.integers(0, 2))):
            if buffers:
                flush(data.draw(st.sampled_from(sorted(buffers))), data.draw(st.integers(1, 4)))
    while buffers:
        flush(next(iter(buffers)), len(buffers))
    oracle, expected = one_by_one(registry_with(scenario.start), published)
    assert registry.snapshot() == oracle.snapshot()
    assert sorted(final) == sorted(e.event_id for e in published)
    assert_same_outcomes(published, expected, final, mode=mode, invalid=scenario.invalid)
