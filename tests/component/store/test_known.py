"""refusals.lua keeps what the answers said exists (`ingest:{sk}:known`) and foresight's counts,
and read.lua hands both to the next planning round (docs/pipeline.md, "Foresight")."""

from __future__ import annotations

import redis

from worker.domain.foresight import Foresight, KeyState
from worker.domain.keys import RelationshipKey, ResourceKey
from worker.domain.lessons import Learned, Lesson
from worker.domain.refusals import Observation
from worker.store import Store
from worker.store.keys import SourceKeys
from worker.store.refusals import RefusalStats, fold_arguments

from .conftest import SOURCE, fast_settings

P1 = ResourceKey(SOURCE, "provider", "p1")
O1 = ResourceKey(SOURCE, "office", "o1")
LINK = RelationshipKey(SOURCE, "works-at", "office", "o1", "provider", "p1")


def teach(client: redis.Redis, *facts: tuple[Learned, ResourceKey | RelationshipKey],
          cap: int = 1000, **tallies: int) -> None:  # fmt: skip
    lesson = Lesson(facts=tuple(facts), **tallies)
    fold = fold_arguments(Observation(0, len(facts)), halflife_ops=2000.0, ttl_ms=60_000,
                          lesson=lesson, known_cap=cap)  # fmt: skip
    Store(client, fast_settings()).fold_refusals(SOURCE, fold)


def sight(client: redis.Redis) -> Foresight:
    stored = client.hgetall(SourceKeys(SOURCE).known)
    return Foresight(known={str(k): str(v) for k, v in stored.items()})


def test_generations_follow_creations_and_deletions(client: redis.Redis) -> None:
    teach(client, (Learned.EXISTS, P1), (Learned.EXISTS, O1))
    assert sight(client).state(P1) is KeyState.EXISTS
    teach(client, (Learned.EXISTS, P1))  # already exists: unchanged
    assert client.hget(SourceKeys(SOURCE).known, str(P1)) == "1"
    teach(client, (Learned.ABSENT, P1))
    assert sight(client).state(P1) is KeyState.ABSENT
    teach(client, (Learned.ABSENT, ResourceKey(SOURCE, "provider", "p9")))
    assert sight(client).state(ResourceKey(SOURCE, "provider", "p9")) is KeyState.ABSENT
    assert client.ttl(SourceKeys(SOURCE).known) > 0


def test_a_relationship_goes_with_an_end_deleted_and_created_again(client: redis.Redis) -> None:
    # the link proves its ends exist, in the order the Registry ran them
    teach(client, (Learned.EXISTS, LINK))
    assert sight(client).state(O1) is KeyState.EXISTS
    assert sight(client).state(LINK) is KeyState.EXISTS
    teach(client, (Learned.ABSENT, P1), (Learned.EXISTS, P1))
    assert sight(client).state(P1) is KeyState.EXISTS
    assert sight(client).state(LINK) is KeyState.ABSENT
    teach(client, (Learned.EXISTS, LINK))
    assert sight(client).state(LINK) is KeyState.EXISTS
    teach(client, (Learned.ABSENT, LINK))
    assert sight(client).state(LINK) is KeyState.ABSENT


def test_past_its_cap_what_is_known_is_forgotten_whole(client: redis.Redis) -> None:
    many = [(Learned.EXISTS, ResourceKey(SOURCE, "provider", f"p{n}")) for n in range(600)]
    teach(client, *many, cap=1000)
    assert client.hlen(SourceKeys(SOURCE).known) == 600
    teach(client, *many[:10], (Learned.EXISTS, LINK), cap=600)
    assert not client.exists(SourceKeys(SOURCE).known)


def test_hits_and_misses_are_folded_with_the_rate(client: redis.Redis) -> None:
    teach(client, known_hits=2, guess_misses=3)
    state = RefusalStats(client).state(SOURCE)
    assert state.foresight.known_hits == 2.0
    assert state.foresight.guess_misses == 3.0
    teach(client, guess_hits=1)
    assert RefusalStats(client).state(SOURCE).foresight.guess_hits == 1.0
