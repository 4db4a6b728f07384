"""Foresight: the refusals planning can expect from what the Registry's answers already said.

Why: a bundle is atomic, so one operation that fails on its own (a CREATE of an id that exists,
a DELETE of a missing one, a relationship to a missing end) cancels every operation beside it,
and a Registry that names only the first failure makes a bundle holding k of them cost k
refusals in a row, each a round trip and a re-planning of the rest. Operations expected to fail
are set apart instead: each in a bundle of its own, or, where the source's Registry names every
failure of a refused bundle, in bundles of their own kind (`plan.foreseen`). Their refusal
cancels nothing that would have applied, and the rest of the round's bundles apply at once.

What the pipeline knows (`ingest:{sk}:known`, updated with each recorded answer, see
`domain.lessons`): which resources exist (an applied CREATE or UPSERT, a CREATE refused
ALREADY_EXISTS, an applied relationship on them) and which do not (an applied DELETE, a DELETE
refused NOT_FOUND), as a generation per resource, odd while it exists; and per relationship the
generations of its ends when it was last written, so a resource deleted and created again takes
its old relationships out of what is known (the Registry deletes them with it). A key held by an
unfinished bundle is taken as that bundle's operation leaves it, and a key written earlier in
the same round as that write leaves it. Unfinished bundles that delete or create an end take a
relationship out of what is known; one that writes the relationship while another deletes or
creates an end leaves it UNSURE (their order is not known here), and nothing is expected of it.

Two kinds of expectation (`Prior`):
- KNOWN: the operation contradicts what is known: a CREATE of an entity known to exist, a
  DELETE of one known absent, a relationship written to an end known absent.
- GUESS: the operation needs an entity the pipeline has never seen: a DELETE of it, a
  relationship to it. Right where the source's records were all written through the pipeline;
  wrong where the Registry held records before it.

Each kind is acted on only while the source's answers bear it out: every recorded operation that
carried an expectation counts a hit (refused on its own) or a miss (applied), weighted like the
refusal rate, and a kind sets operations apart while its precision, `(hits + a) / (hits + misses
+ a + b)`, is at least `min_precision`. KNOWN starts sure (a = 1, b = 0), GUESS undecided
(a = 1, b = 1), and while guesses are new only `probes` of them a round go alone: a source whose
Registry held records before the pipeline stops guessing after a few applied guesses. An
expectation only places operations: it never decides an outcome. A wrong one costs a request, a
missed one the refusal it would have cost anyway.
Pure: no Redis, no Celery, no HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Final

from api_client.models import Action, ErrorType
from worker.domain.keys import EntityKey, RelationshipKey

__all__ = [
    "ABSENT_RELATIONSHIP",
    "END_MISSING",
    "Expectation",
    "Foresight",
    "ForesightCounts",
    "ForesightPolicy",
    "KeyState",
    "Prior",
]

ABSENT_RELATIONSHIP: Final = "-"
"""The stored value of a relationship known not to exist (deleted, or refused NOT_FOUND)."""
UPSERT_AFTER_RESET: Final = "UPSERT+"
"""A held key's action when its unfinished UPSERT follows an unfinished DELETE or CREATE of the
entity: the entity it writes is not the one the pipeline knows (nor are its relationships)."""
_RESETS: Final = frozenset({Action.DELETE.value, Action.CREATE.value, UPSERT_AFTER_RESET})
EXPECTED_TO_FAIL: Final = "?"
"""Prefix of a held key's action when its operation went apart as an expected failure: the
entity is taken as it was before it (a refusal changes nothing)."""


class Prior(StrEnum):
    """Why an operation is expected to fail (the layout stores the value)."""

    KNOWN = "k"
    GUESS = "g"


class KeyState(Enum):
    """What the pipeline knows of an entity at planning time."""

    EXISTS = "exists"
    ABSENT = "absent"
    UNSEEN = "unseen"
    UNSURE = "unsure"
    """Unfinished bundles write it and delete or create an end of it, in an order the round
    cannot see: nothing is expected of it."""


@dataclass(frozen=True)
class Expectation:
    """The refusal an operation is expected to meet, and on what ground."""

    prior: Prior
    error: ErrorType


END_MISSING: Final = ErrorType.FAILED_PRECONDITION
"""The error of a relationship written to a missing end (the emulator's, docs/emulator.md)."""


@dataclass(frozen=True)
class ForesightPolicy:
    """When a kind of expectation isolates operations (all settings)."""

    enabled: bool = True
    min_precision: float = 0.2
    """Set a kind's operations apart while at least this share of them was refused: set apart
    wrongly, a round's guesses cost one bundle more; left among others, each failure costs a
    refusal and a re-sending of its neighbours."""

    evidence: float = 4.0
    """Weighted answers guesses need before every one may go alone; until then at most
    `probes` a round do and the rest share bundles apart (`plan.foreseen`), so that a Registry
    that held records before the pipeline does not get a whole round of DELETEs one by one."""
    probes: int = 16

    def __post_init__(self) -> None:
        if not 0 < self.min_precision <= 1:
            raise ValueError("ForesightPolicy.min_precision: must be in (0, 1]")
        if self.evidence < 0 or self.probes < 0:
            raise ValueError("ForesightPolicy: evidence and probes must not be negative")


_PSEUDO: Final = {Prior.KNOWN: (1.0, 0.0), Prior.GUESS: (1.0, 1.0)}
"""Per kind: (hits, misses) counted before any answer: KNOWN sure, GUESS undecided."""


@dataclass(frozen=True)
class ForesightCounts:
    """A source's weighted hits and misses per kind of expectation."""

    known_hits: float = 0.0
    known_misses: float = 0.0
    guess_hits: float = 0.0
    guess_misses: float = 0.0

    def precision(self, prior: Prior) -> float:
        """The kind's share of refused operations, with its starting counts."""
        a, b = _PSEUDO[prior]
        if prior is Prior.KNOWN:
            hits, misses = self.known_hits, self.known_misses
        else:
            hits, misses = self.guess_hits, self.guess_misses
        return (hits + a) / (hits + misses + a + b)

    def isolates(self, prior: Prior, policy: ForesightPolicy) -> bool:
        """Whether operations with this kind of expectation are set apart now."""
        return policy.enabled and self.precision(prior) >= policy.min_precision

    def guesses_alone(self, policy: ForesightPolicy) -> int | None:
        """How many guesses a round may send alone: `probes` while guesses have been judged
        less than `evidence` times (weighted), then all (None)."""
        new = self.guess_hits + self.guess_misses < policy.evidence
        return policy.probes if new else None


_WRITES: Final = frozenset({Action.CREATE, Action.UPSERT})


def _generation(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None  # unreadable: as if never seen (placement only)


@dataclass(frozen=True)
class Foresight:
    """What one planning round knows: stored values, keys held by unfinished bundles, and which
    kinds of expectation isolate. An operation expected to fail is marked with its kind
    (`PlannedOp.prior`) whether or not that kind isolates: its answer is how the kind is judged."""

    known: Mapping[str, str] = field(default_factory=dict)
    """Entity key -> its stored value: a resource's generation, a relationship's ends'."""
    held: Mapping[str, str] = field(default_factory=dict)
    """Entity key -> the action of the unfinished bundle's operation that writes it."""
    isolate_known: bool = False
    isolate_guess: bool = False
    guesses_alone: int | None = None
    """At most this many guesses go alone in the round (`ForesightCounts.guesses_alone`); the
    others share bundles apart. None: all may."""
    share: bool = False
    """The source's Registry names every failing operation of a refused bundle: expected
    failures then share bundles (one refusal reports them all); else each goes alone."""

    def isolates(self, prior: Prior) -> bool:
        """Whether an operation with this kind of expectation goes alone."""
        return self.isolate_known if prior is Prior.KNOWN else self.isolate_guess

    def _reset(self, key: str) -> bool:
        """Whether an unfinished bundle deletes or creates the entity (or writes it behind one
        that does: `UPSERT_AFTER_RESET`)."""
        return self.held.get(key) in _RESETS

    def _held_state(self, key: str) -> KeyState | None:
        action = self.held.get(key)
        if action is None or action.startswith(EXPECTED_TO_FAIL):
            return None
        return KeyState.ABSENT if action == Action.DELETE.value else KeyState.EXISTS

    def state(self, key: EntityKey) -> KeyState:
        """The entity's state before this round's operations on it."""
        name = str(key)
        held = self._held_state(name)
        if held is KeyState.EXISTS and isinstance(key, RelationshipKey) and self._ends_reset(key):
            # written by one unfinished bundle, its end deleted or created by another: which
            # came last is not in `held` (a DELETE of an end takes the relationship with it)
            return KeyState.UNSURE
        if held is not None:
            return held
        raw = self.known.get(name)
        if raw is None:
            return KeyState.UNSEEN
        if isinstance(key, RelationshipKey):
            return self._relationship_state(key, raw)
        generation = _generation(raw)
        if generation is None:
            return KeyState.UNSEEN
        return KeyState.EXISTS if generation % 2 else KeyState.ABSENT

    def _ends_reset(self, key: RelationshipKey) -> bool:
        """Whether an unfinished bundle deletes or creates an end of the relationship."""
        return any(self._reset(str(end)) for end in key.endpoints)

    def _relationship_state(self, key: RelationshipKey, raw: str) -> KeyState:
        if raw == ABSENT_RELATIONSHIP:
            return KeyState.ABSENT
        stored = raw.split(":")
        if len(stored) != 2:
            return KeyState.UNSEEN
        if self._ends_reset(key):
            return KeyState.ABSENT  # an end goes (or went) away after its last write: so did it
        for end, written in zip(key.endpoints, stored, strict=True):
            now = _generation(self.known.get(str(end)))
            if now is None or str(now) != written or not now % 2:
                return KeyState.ABSENT
        return KeyState.EXISTS

    def expect(
        self, key: EntityKey, action: Action, state: KeyState, ends: tuple[KeyState, ...]
    ) -> Expectation | None:
        """The refusal an operation `action` on `key` should meet, given the entity's state and
        (for a relationship) its ends' states; None when it should apply."""
        if ends and action in _WRITES:
            if KeyState.ABSENT in ends:
                return Expectation(Prior.KNOWN, END_MISSING)
            if KeyState.UNSEEN in ends:
                return Expectation(Prior.GUESS, END_MISSING)
        if ends and action is Action.DELETE and KeyState.ABSENT in ends:
            return Expectation(Prior.KNOWN, ErrorType.NOT_FOUND)
        if action is Action.CREATE and state is KeyState.EXISTS:
            return Expectation(Prior.KNOWN, ErrorType.ALREADY_EXISTS)
        if action is Action.DELETE:
            if state is KeyState.ABSENT:
                return Expectation(Prior.KNOWN, ErrorType.NOT_FOUND)
            if state is KeyState.UNSEEN:
                return Expectation(Prior.GUESS, ErrorType.NOT_FOUND)
        return None
