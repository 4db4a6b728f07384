"""A source's refusal rate and foresight's knowledge in Redis (`ingest:{sk}:refusals`,
`ingest:{sk}:known`): folded atomically, one round trip per recorded answer.

The counts are weighted (`domain.refusals`, `domain.foresight`): refusals and operations judged,
foresight's hits and misses, each older answer weighing less as more operations are judged.
refusals.lua applies the fold the pure rules compute and the facts an answer taught
(`domain.lessons`), so racing recorders lose nothing; both hashes expire when the source goes
quiet (they are statistics and placement hints, never work).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import redis

from worker.domain.foresight import ForesightCounts
from worker.domain.keys import RelationshipKey
from worker.domain.lessons import Learned, Lesson
from worker.domain.refusals import Observation, RefusalState, decay_factor
from worker.store import keys
from worker.store.codec import text

if TYPE_CHECKING:
    pass

__all__ = [
    "RefusalStats",
    "decode_foresight_counts",
    "encode_facts",
    "fold_arguments",
    "state_from_reply",
]


def _number(raw: object) -> float:
    try:
        return max(0.0, float(text(raw)))
    except ValueError:
        return 0.0  # an unreadable count must never stop recording: start again from zero


def decode_foresight_counts(raw: object) -> ForesightCounts:
    """Foresight's counts as read.lua reads them (`kh`, `km`, `gh`, `gm`; missing ones zero)."""
    values = list(raw) if isinstance(raw, list | tuple) else []
    numbers = [_number(v) if v not in (None, False) else 0.0 for v in values[:4]]
    numbers += [0.0] * (4 - len(numbers))
    return ForesightCounts(*numbers)


def encode_facts(lesson: Lesson) -> list[str]:
    """An answer's facts as refusals.lua takes them (see its header)."""
    encoded = []
    for fact, key in lesson.facts:
        if isinstance(key, RelationshipKey):
            if fact is Learned.EXISTS:
                encoded.append(f"l {key} {key.endpoints[0]} {key.endpoints[1]}")
            else:
                encoded.append(f"d {key}")
        else:
            encoded.append(f"{'e' if fact is Learned.EXISTS else 'a'} {key}")
    return encoded


def fold_arguments(
    seen: Observation,
    *,
    halflife_ops: float,
    ttl_ms: int,
    lesson: Lesson | None = None,
    known_cap: int = 0,
) -> list[str]:
    """What refusals.lua takes to fold one answer's counts, and its lesson into what foresight
    knows (`known_cap`: the most entities kept, 0 to learn nothing)."""
    lesson = lesson or Lesson()
    args = [
        str(seen.failures),
        str(seen.judged),
        repr(decay_factor(seen.judged, halflife_ops)),
        "1" if seen.every else "0",
        str(max(1, ttl_ms)),
        str(lesson.known_hits),
        str(lesson.known_misses),
        str(lesson.guess_hits),
        str(lesson.guess_misses),
        str(max(0, known_cap)),
    ]
    if known_cap > 0:
        args += encode_facts(lesson)
    return args


class RefusalStats:
    """The refusal rate of every source, on one client (folded by the store with each record:
    `StoreRecording.record`, `fold_refusals`)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def state(self, source: str) -> RefusalState:
        """The source's state as stored (zero when none)."""
        fields = ["f", "j", "every", "kh", "km", "gh", "gm"]
        return state_from_reply(self.client.hmget(keys.refusals_key(source), fields))


def state_from_reply(raw: Sequence[object]) -> RefusalState:
    """f, j, every, kh, km, gh, gm as stored, or as refusals.lua answers a fold (missing ones
    zero)."""
    f, j, every = raw[0], raw[1], raw[2]
    return RefusalState(
        _number(f or 0),
        _number(j or 0),
        text(every or "") == "1",
        decode_foresight_counts(list(raw[3:7])),
    )
