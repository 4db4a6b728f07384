"""Publish's profile check: each event judged against its source's own profiles before it goes in.

Per publish call: one pipelined read of the cached versions of every source the call names
(`ProfileCache.versions`); profiles not cached, or cached longer ago than `profile_ttl_s`, are
read from the Registry (one GET each, one attempt) and cached; a version this process has not
compiled yet is compiled once (its body read from the cache, or just fetched), then kept in
`COMPILED`. Events are judged by `domain.profiles.profile_problems`.

A refusal is checked against a fresh read before it stands: the profiles an event was refused
under are read again (unless this call just read them), and when a version changed the event is
judged again. So a profile made more permissive in the Registry (a new property) never refuses an
event on a stale cache; one made stricter shows when the Registry refuses a write as off-profile
(`drop_refused_types`), which forgets the cached version.

Where profiles cannot be read (401/403, a 404 that names no key, 501, a throttle, unreachable),
publish goes on without pre-validation for that source: the source is marked in the cache (the
metric `clinia_ingest_profiles_unreadable`), one log line says so when the mark is set
(`publish.profiles_unreadable`: once per outage, not per call), no read is tried again before
`profile_retry_ms`, and a read that succeeds clears the mark. A profile that cannot be read
never refuses an event.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from worker.domain.events import ChangeEvent, Target
from worker.domain.profiles import (
    MISSING,
    CompiledCache,
    CompiledDefinition,
    CompiledProfile,
    Missing,
    ProfileBook,
    profile_problems,
    profile_version,
)
from worker.logging import get_logger
from worker.profile_reader import DEFINITION, PROFILE, ProfileReader, Unreadable
from worker.publish_entry import Entry
from worker.settings import IngestSettings
from worker.store.profiles import ABSENT_VERSION, CachedProfiles, ProfileCache

__all__ = ["COMPILED", "check_profiles", "drop_refused_types"]

_log = get_logger(__name__)

COMPILED: Final = CompiledCache()
"""This process's compiled profiles and definitions, by (kind, key, version)."""
MAX_PROBLEMS: Final = 50
"""Problems kept per refused event (the first ones): enough to fix it, bounded in Redis."""
_SCHEMA_REFUSAL: Final = "invalid schema for "

Compiled = CompiledProfile | CompiledDefinition | Missing


@dataclass
class _Source:
    """What one call knows of one source's profiles."""

    name: str
    cached: CachedProfiles
    versions: dict[str, str] = field(default_factory=dict)
    """field -> version, fresh enough to judge with."""
    bodies: dict[str, Any] = field(default_factory=dict)
    """Bodies read from the Registry by this call."""
    fetched: set[str] = field(default_factory=set)
    tried: set[str] = field(default_factory=set)
    unreadable: str | None = None
    written: dict[str, tuple[str, str | None]] = field(default_factory=dict)


def _field(event: ChangeEvent) -> str:
    kind = DEFINITION if event.target is Target.RELATIONSHIP else PROFILE
    return f"{kind}:{event.type}"


def check_profiles(
    cache: ProfileCache,
    reader: ProfileReader | None,
    settings: IngestSettings,
    entries: Sequence[Entry],
    now_ms: int,
) -> None:
    """Refuse the entries whose events the Registry would refuse as off-profile (field, reason).

    `reader` None: only what is cached is used, and a refusal stands on a cached version younger
    than the TTL. Raises redis errors as they come (publish handles them).
    """
    if not settings.profile_validation:
        return
    by_source: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        if entry.event is not None and not entry.problems and entry.duplicate_of is None:
            by_source[entry.event.source_key].append(entry)
    if not by_source:
        return
    sources = list(by_source)
    cached = cache.versions(sources)
    states = {s: _Source(s, cached[s]) for s in sources}
    wanted = {s: {_field(e.event) for e in m if e.event is not None} for s, m in by_source.items()}
    books = _prepare(cache, reader, settings, states, wanted, now_ms)
    refused: dict[str, list[tuple[Entry, list[Any]]]] = defaultdict(list)
    for source, members in by_source.items():
        for entry in members:
            assert entry.event is not None
            problems = profile_problems(entry.event, books[source])
            if problems:
                refused[source].append((entry, problems))
    if reader is not None and refused:
        _confirm(cache, reader, settings, states, books, refused, now_ms)
    _note(cache, states, settings, now_ms)
    for refusals in refused.values():
        for entry, problems in refusals:
            entry.refuse(*problems[:MAX_PROBLEMS])


def _prepare(
    cache: ProfileCache,
    reader: ProfileReader | None,
    settings: IngestSettings,
    states: Mapping[str, _Source],
    wanted: Mapping[str, set[str]],
    now_ms: int,
) -> dict[str, ProfileBook]:
    """Settle the versions `wanted` names (and those of the profiles their contained records
    may have), compile what this process has not, and return each source's book."""
    pending = {s: set(wanted.get(s, ())) | _unsettled(state) for s, state in states.items()}
    while any(pending.values()):
        for source, names in pending.items():
            _settle(states[source], names, reader, settings, now_ms)
        _load_bodies(cache, states)
        pending = {source: _unsettled(state) for source, state in states.items()}
    return {source: _book(state) for source, state in states.items()}


def _unsettled(state: _Source) -> set[str]:
    """Profiles named as contained types by a compiled profile and not yet tried."""
    found: set[str] = set()
    for name, version in state.versions.items():
        compiled = _compiled(name, version, state.bodies.get(name))
        if isinstance(compiled, CompiledProfile):
            found.update(f"{PROFILE}:{t}" for t in compiled.contained_types)
    return found - state.tried


def _note(
    cache: ProfileCache, states: Mapping[str, _Source], settings: IngestSettings, now_ms: int
) -> None:
    """Cache what was read, mark or unmark the sources, and log an unreadable source once."""
    written = {s: st.written for s, st in states.items() if st.written}
    marked = {s: st.unreadable for s, st in states.items() if st.unreadable is not None}
    readable = {s for s, st in states.items() if st.fetched and st.unreadable is None}
    if written or marked or readable:
        cache.write(written, marked, now_ms, settings.profile_ttl_s * 1000)
    for source, reason in marked.items():
        if states[source].cached.unreadable is None:  # newly unreadable: said once per outage
            _log.warning(
                "publish.profiles_unreadable", source=source, reason=reason, validation="off"
            )


def _fresh(state: _Source, name: str, now_ms: int, ttl_ms: int) -> str | None:
    found = state.cached.versions.get(name)
    if found is None or now_ms - found[1] >= ttl_ms:
        return None
    return found[0]


def _may_read(state: _Source, reader: ProfileReader | None, retry_ms: int, now_ms: int) -> bool:
    if reader is None or state.unreadable is not None:
        return False
    mark = state.cached.unreadable
    return mark is None or now_ms - mark[0] >= retry_ms


def _settle(
    state: _Source,
    names: Iterable[str],
    reader: ProfileReader | None,
    settings: IngestSettings,
    now_ms: int,
) -> None:
    """The version of each name: cached when fresh, else read from the Registry when it may be
    read now; a name neither gives is left out (its events are not judged)."""
    ttl_ms = settings.profile_ttl_s * 1000
    for name in sorted(names):
        state.tried.add(name)
        version = _fresh(state, name, now_ms, ttl_ms)
        if version is None and _may_read(state, reader, settings.profile_retry_ms, now_ms):
            assert reader is not None
            version = _fetch(state, reader, name)
        if version is not None:
            state.versions[name] = version


def _fetch(state: _Source, reader: ProfileReader, name: str) -> str | None:
    """Read one field from the Registry; its version, or None when it could not be read."""
    answer = reader.read(state.name, name)
    if isinstance(answer, Unreadable):
        state.unreadable = answer.reason
        return None
    state.fetched.add(name)
    if isinstance(answer, Missing):
        state.written[name] = (ABSENT_VERSION, None)
        state.bodies[name] = MISSING
        return ABSENT_VERSION
    version = profile_version(answer)
    state.written[name] = (version, json.dumps(answer, separators=(",", ":"), ensure_ascii=False))
    state.bodies[name] = answer
    return version


def _load_bodies(cache: ProfileCache, states: Mapping[str, _Source]) -> None:
    """Read from the cache the bodies of versions this process has not compiled (one round
    trip, only when there are some)."""
    wanted: dict[str, list[str]] = defaultdict(list)
    for source, state in states.items():
        for name, version in state.versions.items():
            if name in state.bodies or version == ABSENT_VERSION:
                continue
            if COMPILED.get(name[0], name[2:], version) is None:
                wanted[source].append(name)
    if not wanted:
        return
    for (source, name), body in cache.bodies(wanted).items():
        state = states[source]
        try:
            decoded = json.loads(body)
        except ValueError:
            continue
        if isinstance(decoded, dict) and profile_version(decoded) == state.versions[name]:
            state.bodies[name] = decoded


def _book(state: _Source) -> ProfileBook:
    profiles: dict[str, CompiledProfile | Missing] = {}
    definitions: dict[str, CompiledDefinition | Missing] = {}
    for name, version in state.versions.items():
        compiled = _compiled(name, version, state.bodies.get(name))
        if isinstance(compiled, CompiledProfile | Missing) and name[0] == PROFILE:
            profiles[name[2:]] = compiled
        elif isinstance(compiled, CompiledDefinition | Missing) and name[0] == DEFINITION:
            definitions[name[2:]] = compiled
    return ProfileBook(state.name, profiles, definitions)


def _compiled(name: str, version: str, body: Any) -> Compiled | None:
    if version == ABSENT_VERSION:
        return MISSING
    found = COMPILED.get(name[0], name[2:], version)
    if found is not None:
        return found
    if isinstance(body, dict):
        return COMPILED.compile(name[0], name[2:], body, version)
    return None


def _confirm(
    cache: ProfileCache,
    reader: ProfileReader,
    settings: IngestSettings,
    states: Mapping[str, _Source],
    books: dict[str, ProfileBook],
    refused: dict[str, list[tuple[Entry, list[Any]]]],
    now_ms: int,
) -> None:
    """Read again what each refusal rests on (unless this call just read it): the event's own
    profile or definition, and for an event with contained records every profile in its book;
    judge again the refused events of a source whose versions changed. A refusal the Registry
    cannot confirm now stands on the cached version (younger than the TTL)."""
    for source, refusals in list(refused.items()):
        state = states[source]
        if not _may_read(state, reader, settings.profile_retry_ms, now_ms):
            continue
        names = {_field(e.event) for e, _ in refusals if e.event is not None}
        if any(e.event is not None and e.event.contained for e, _ in refusals):
            names.update(n for n in state.versions if n[0] == PROFILE)
        before = dict(state.versions)
        for name in sorted(names - state.fetched):
            version = _fetch(state, reader, name)
            if version is None:
                break
            state.versions[name] = version
        if state.versions == before:
            continue
        book = books[source] = _prepare(cache, reader, settings, {source: state}, {}, now_ms)[
            source
        ]
        kept = []
        for entry, _problems in refusals:
            assert entry.event is not None
            problems = profile_problems(entry.event, book)
            if problems:
                kept.append((entry, problems))
        refused[source] = kept


def drop_refused_types(cache: ProfileCache, source: str, messages: Iterable[str | None]) -> None:
    """Forget the cached versions of the types the Registry refused as off-profile (`invalid
    schema for <type>`): the cache said they fit, so it may be stale; the next publish reads
    them again."""
    types = {
        m.removeprefix(_SCHEMA_REFUSAL) for m in messages if m and m.startswith(_SCHEMA_REFUSAL)
    }
    if types:
        cache.drop(source, [f"{kind}:{t}" for t in sorted(types) for kind in (PROFILE, DEFINITION)])
