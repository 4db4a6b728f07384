"""The profile check of publish against fakeredis and a scripted reader: what is read, cached,
trusted and refused (the Registry over HTTP: tests/integration/pipeline/test_profiles.py)."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest

from emulator.profiles import default_profiles, default_relationship_definitions
from worker.domain.events import ChangeEvent, parse_event
from worker.domain.profiles import MISSING, CompiledCache, profile_version
from worker.profile_reader import Fetched, Unreadable
from worker.publish_entry import Entry
from worker.publish_profiles import check_profiles, drop_refused_types
from worker.settings import IngestSettings
from worker.store.keys import profile_versions_key
from worker.store.profiles import UNREADABLE_FIELD, ProfileCache

SOURCE = "src-a"
NOW = 1_700_000_000_000
CLINIC = {
    "type": "ROOT",
    "properties": {"name": {"type": "string", "rules": [{"required": True}]}},
    "contained": {"staff": {"types": ["member"], "cardinality": "0:*"}},
}
MEMBER = {"type": "CONTAINED", "properties": {"role": {"type": "string"}}}


class ScriptedReader:
    """Answers from a dict of bodies (MISSING for other keys), counting reads; or Unreadable."""

    def __init__(self, bodies: dict[str, Any], *, unreadable: str | None = None) -> None:
        self.bodies = bodies
        self.unreadable = unreadable
        self.reads: list[str] = []

    def read(self, source: str, name: str) -> Fetched:
        self.reads.append(name)
        if self.unreadable is not None:
            return Unreadable(self.unreadable)
        body = self.bodies.get(name)
        return MISSING if body is None else dict(body)

    def close(self) -> None:
        """Nothing to close."""


def seed_bodies() -> dict[str, Any]:
    bodies: dict[str, Any] = {f"p:{k}": b for k, b in default_profiles().items()}
    bodies.update({f"r:{k}": b for k, b in default_relationship_definitions().items()})
    return {**bodies, "p:clinic": CLINIC, "p:member": MEMBER}


@pytest.fixture
def cache() -> ProfileCache:
    return ProfileCache(fakeredis.FakeRedis(decode_responses=True))


def entries(*raws: dict[str, Any]) -> list[Entry]:
    made = []
    for index, raw in enumerate(raws):
        event = parse_event(raw, new_event_id=lambda: "unused")
        assert isinstance(event, ChangeEvent), event
        made.append(Entry(index, raw, event=event))
    return made


def upsert(event_id: str, type_: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"eventId": event_id, "sourceKey": SOURCE, "target": "resource", "action": "UPSERT",
            "type": type_, "id": "r-1", "data": data, **extra}  # fmt: skip


def refused(batch: list[Entry]) -> dict[str, list[str]]:
    return {str(e.event_id): [p.field for p in e.problems] for e in batch if e.problems}


SETTINGS = IngestSettings(profile_ttl_s=60, profile_retry_ms=10_000)


def test_profiles_are_read_once_then_trusted_for_the_ttl(cache: ProfileCache) -> None:
    reader = ScriptedReader(seed_bodies())
    first = entries(upsert("a", "office", {"name": "x"}), upsert("b", "office", {"colour": 1}))

    check_profiles(cache, reader, SETTINGS, first, NOW)

    assert refused(first) == {"b": ["data.colour"]}
    assert reader.reads == ["p:office"]  # the refusal rests on what this call just read
    check_profiles(cache, reader, SETTINGS, entries(upsert("c", "office", {})), NOW + 59_999)
    assert reader.reads == ["p:office"]
    again = entries(upsert("d", "office", {"colour": 1}))
    check_profiles(cache, reader, SETTINGS, again, NOW + 59_999)
    assert refused(again) == {"d": ["data.colour"]}
    assert reader.reads == ["p:office"] * 2  # a refusal on the cache is confirmed by a read
    read_again_at = NOW + 59_999 + 60_000  # the confirming read restarted the TTL
    check_profiles(cache, reader, SETTINGS, entries(upsert("e", "office", {})), read_again_at - 1)
    assert reader.reads == ["p:office"] * 2
    check_profiles(cache, reader, SETTINGS, entries(upsert("f", "office", {})), read_again_at)
    assert reader.reads == ["p:office"] * 3


def test_contained_records_bring_their_profiles_and_an_unknown_type_is_refused(
    cache: ProfileCache,
) -> None:
    reader = ScriptedReader(seed_bodies())
    staff = {"staff": [{"type": "member", "data": {"role": 3}}]}
    batch = entries(
        upsert("a", "clinic", {"name": "x"}, contained=staff),
        upsert("b", "nowhere", {"name": "x"}),
    )

    check_profiles(cache, reader, SETTINGS, batch, NOW)

    assert refused(batch) == {"a": ["contained.staff[0].data.role"], "b": ["type"]}
    assert {"p:clinic", "p:member", "p:nowhere"} <= set(reader.reads)
    assert cache.client.hget(profile_versions_key(SOURCE), "p:nowhere") == f"-:{NOW}"


def test_without_a_reader_only_the_cache_judges(cache: ProfileCache) -> None:
    uncached = entries(upsert("a", "office", {"colour": 1}))
    check_profiles(cache, None, SETTINGS, uncached, NOW)
    assert refused(uncached) == {}

    warm = entries(upsert("w", "office", {}))
    check_profiles(cache, ScriptedReader(seed_bodies()), SETTINGS, warm, NOW)
    cached = entries(upsert("b", "office", {"colour": 1}))
    check_profiles(cache, None, SETTINGS, cached, NOW + 1)
    assert refused(cached) == {"b": ["data.colour"]}


def test_unreadable_profiles_refuse_nothing_and_wait_before_reading_again(
    cache: ProfileCache,
) -> None:
    reader = ScriptedReader({}, unreadable="403 PermissionDeniedError")
    batch = entries(upsert("a", "office", {"colour": 1}), upsert("b", "nowhere", {}))

    check_profiles(cache, reader, SETTINGS, batch, NOW)

    assert refused(batch) == {}
    assert reader.reads == ["p:nowhere"]  # the first read failed: no other is tried
    mark = cache.client.hget(profile_versions_key(SOURCE), UNREADABLE_FIELD)
    assert mark == f"{NOW}:403 PermissionDeniedError"
    check_profiles(cache, reader, SETTINGS, entries(upsert("c", "office", {})), NOW + 9_999)
    assert len(reader.reads) == 1
    reader.unreadable = None
    reader.bodies = seed_bodies()
    later = entries(upsert("d", "office", {"colour": 1}))
    check_profiles(cache, reader, SETTINGS, later, NOW + 10_000)
    assert refused(later) == {"d": ["data.colour"]}
    assert not cache.client.hexists(profile_versions_key(SOURCE), UNREADABLE_FIELD)


def test_pre_validation_off_reads_and_refuses_nothing(cache: ProfileCache) -> None:
    reader = ScriptedReader(seed_bodies())
    batch = entries(upsert("a", "office", {"colour": 1}))

    check_profiles(cache, reader, IngestSettings(profile_validation=False), batch, NOW)

    assert refused(batch) == {}
    assert reader.reads == []


def test_an_invalid_schema_refusal_drops_that_types_cached_versions(cache: ProfileCache) -> None:
    both = entries(upsert("a", "office", {}), upsert("b", "provider", {}))
    check_profiles(cache, ScriptedReader(seed_bodies()), SETTINGS, both, NOW)
    key = profile_versions_key(SOURCE)
    assert cache.client.hexists(key, "p:office")

    drop_refused_types(cache, SOURCE, ["invalid schema for office", "other", None])

    assert not cache.client.hexists(key, "p:office")
    assert cache.client.hexists(key, "p:provider")


def test_the_compiled_cache_compiles_a_version_once_and_stays_bounded() -> None:
    compiled = CompiledCache(limit=4)
    first = compiled.compile("p", "office", CLINIC)
    assert compiled.compile("p", "office", dict(CLINIC)) is first
    for n in range(6):
        compiled.compile("p", f"k{n}", {**CLINIC, "description": str(n)})
    assert compiled.get("p", "k5", profile_version({**CLINIC, "description": "5"})) is not None
    assert compiled.get("p", "office", profile_version(CLINIC)) is None  # the oldest went first
    assert len(compiled._entries) <= 4
