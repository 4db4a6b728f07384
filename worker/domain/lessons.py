"""Lessons: what one recorded answer teaches foresight (`domain.foresight`).

Each operation whose answer is certain says something about its entity: applied, a CREATE or an
UPSERT leaves it existing and a DELETE absent; refused ALREADY_EXISTS, it exists; a DELETE
refused NOT_FOUND, it is absent. A relationship written proves its ends exist too (the store
records them with it). An operation planned with an expectation (`PlannedOp.prior`) counts a
hit when it was refused on its own and a miss when it applied: the source's precision per kind.
Cancelled or retried operations teach nothing yet: they are judged when they are sent again.
Pure: no Redis, no Celery, no HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from api_client.models import Action, ErrorType
from worker.domain.coalesce import Fate
from worker.domain.foresight import Prior
from worker.domain.keys import EntityKey
from worker.domain.ops import PlannedOp
from worker.domain.outcomes import EventOutcome, Outcomes, refused_on_its_own

__all__ = ["Learned", "Lesson", "lesson_of"]


class Learned(Enum):
    """What an answer says of one entity."""

    EXISTS = "exists"
    ABSENT = "absent"


@dataclass(frozen=True)
class Lesson:
    """One answer's facts, in the order the Registry ran them, and its hits and misses."""

    facts: tuple[tuple[Learned, EntityKey], ...] = ()
    known_hits: int = 0
    known_misses: int = 0
    guess_hits: int = 0
    guess_misses: int = 0

    @property
    def empty(self) -> bool:
        """Nothing to store."""
        return not self.facts and not self.tallied

    @property
    def tallied(self) -> int:
        """How many expectations the answer judged."""
        return self.known_hits + self.known_misses + self.guess_hits + self.guess_misses


def _fact(op: PlannedOp, outcome: EventOutcome, refused: bool) -> Learned | None:
    if outcome.fate is Fate.APPLIED:
        return Learned.ABSENT if op.action is Action.DELETE else Learned.EXISTS
    if not refused or outcome.error is None:
        return None
    if outcome.error.type == ErrorType.ALREADY_EXISTS and op.action is Action.CREATE:
        return Learned.EXISTS
    if outcome.error.type == ErrorType.NOT_FOUND and op.action is Action.DELETE:
        return Learned.ABSENT
    return None


def lesson_of(ops: Sequence[PlannedOp], outcomes: Outcomes) -> Lesson:
    """The facts and tallies of one answer over `ops` (resources first, as they ran)."""
    facts: list[tuple[Learned, EntityKey]] = []
    tally = {(Prior.KNOWN, True): 0, (Prior.KNOWN, False): 0,
             (Prior.GUESS, True): 0, (Prior.GUESS, False): 0}  # fmt: skip
    for op in ops:
        try:
            outcome = outcomes.of(op.carrier.event_id)
        except KeyError:
            continue
        refused = refused_on_its_own(outcome)
        fact = _fact(op, outcome, refused)
        if fact is not None:
            facts.append((fact, op.key))
        if op.prior is not None and (refused or outcome.fate is Fate.APPLIED):
            tally[(op.prior, refused)] += 1
    return Lesson(
        facts=tuple(facts),
        known_hits=tally[(Prior.KNOWN, True)],
        known_misses=tally[(Prior.KNOWN, False)],
        guess_hits=tally[(Prior.GUESS, True)],
        guess_misses=tally[(Prior.GUESS, False)],
    )
