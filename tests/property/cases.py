"""Strategies for whole test cases: a scenario with the caps it is planned under."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from tests.property.oracle import batch_bytes, units
from tests.property.streams import Draw, Scenario, scenarios
from worker.domain.plan import PlanCaps


@dataclass(frozen=True)
class Case:
    """A scenario and caps under which every operation and atomic batch fits one bundle."""

    scenario: Scenario
    caps: PlanCaps


@st.composite
def cases(
    draw: Draw,
    *,
    invalid: bool = True,
    meta_always: bool = False,
    operations: tuple[int, ...] = (1, 2, 3, 5, 500),
    min_steps: int = 1,
) -> Case:
    """Caps small enough to split often (few operations, a byte cap just above the largest unit).

    An atomic batch larger than a bundle is refused at publish, so the scenario's batches are
    kept within `max_operations`, and the byte cap within reach of the largest unit.
    """
    max_operations = draw(st.sampled_from(operations))
    scenario = draw(
        scenarios(
            min_steps=min_steps,
            max_batch=min(3, max_operations),
            invalid=invalid,
            meta_always=meta_always,
        )
    )
    largest = max(batch_bytes(unit) for unit in units(scenario.events))
    max_bytes = draw(st.one_of(st.integers(largest, largest + 600), st.just(PlanCaps().max_bytes)))
    caps = PlanCaps(
        max_operations=max_operations,
        max_bytes=max_bytes,
        isolate_expected_failures=draw(st.booleans()),
    )
    return Case(scenario, caps)
