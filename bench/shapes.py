"""The benchmark's streams, each the shape of a kind of real traffic.

- `wide`: thousands of entities (one provider per 25 events, one office per 250), most events an
  UPSERT or a relationship office -> provider, some CREATEs (a few without an id), DELETEs of
  relationships and of providers that later events create again; relationships mostly to the
  provider's home office, some to another office of the source.
- `hot`: 40 providers and 5 offices, each receiving hundreds of changes in a long stream: mostly
  UPSERTs, deletes of providers followed by their re-creation, relationships to a few offices.
- `fanin`: one office that every relationship points at, from one provider per 10 events, each
  provider publishing under its own group (10,000 groups in 100,000 events): the scenario where
  one resource is referenced from more groups and events than any read limit.
- `faulty`: the wide stream with 2.5% of its events failing on their own, of every kind: data off
  the source's profile, a CREATE of an id that exists, a DELETE of a missing id, a relationship
  to a missing end (`Faults`). Nothing else changes: the world does not see a failing event, so
  the other events are the wide stream's, and they still apply.

In `wide` and `hot`, producers name groups loosely (`world.GroupChoice`): no group, the entity's
office's group, or a random group of a pool, so one entity is published under several groups
over time. Two sources share the events (`fanin` has one: its office is one resource). The same
seed gives the same stream; tests run several seeds.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from bench.world import (
    Event,
    GroupChoice,
    Padding,
    World,
    link_event,
    office_group,
    resource_event,
    source_keys,
    stamped,
)

SOURCES: Final = 2
EVENTS_PER_PROVIDER: Final = 25
"""Wide: one provider per this many events, so the entity count grows with the stream."""
EVENTS_PER_OFFICE: Final = 250
HOT_PROVIDERS: Final = 40
HOT_OFFICES: Final = 5
FANIN_EVENTS_PER_GROUP: Final = 10
"""Fanin: one provider, publishing under its own group, per this many events."""
FAULT_SHARE: Final = 0.025
"""Faulty: this share of the events fails on its own (rounded to a whole number of events)."""
FAULT_KINDS: Final = ("off-profile", "exists", "missing", "no-end")
"""Faulty: the kinds of failing events, taken in turn: data off the profile, a CREATE of an id
that exists, a DELETE of a missing id, a relationship to a missing end."""


@dataclass(frozen=True)
class Stream:
    """A generated stream: its events in publish order, its sources, the entities it names."""

    shape: str
    tag: str
    events: list[Event]
    sources: list[str]
    providers: int
    offices: int
    failing: frozenset[str] = field(default_factory=frozenset)
    """The ids of the events built to fail on their own (the oracle checks it is exactly those)."""


Generator = Callable[..., Stream]


def make_stream(
    shape: str, *, tag: str, events: int, seed: int = 7, payload_bytes: int = 0
) -> Stream:
    """`events` events of the named shape under `tag` (its sources and event ids).

    Raises:
        ValueError: an unknown shape, or fewer than 10 events.
    """
    if shape not in SHAPES:
        raise ValueError(f"shape: expected one of {sorted(SHAPES)}, got {shape!r}")
    if events < 10:
        raise ValueError("events: at least 10")
    return SHAPES[shape](tag=tag, events=events, seed=seed, payload_bytes=payload_bytes)


@dataclass
class _Cast:
    """Who is in a two-source stream: each provider's source, world and home office."""

    sources: list[str]
    worlds: dict[str, World]
    providers: list[str]
    offices_of: dict[str, list[str]]
    pools: dict[str, GroupChoice]

    def source_of(self, index: int) -> str:
        return self.sources[index % len(self.sources)]

    def home_of(self, index: int) -> str:
        offices = self.offices_of[self.source_of(index)]
        return offices[(index // len(self.sources)) % len(offices)]


def _cast(tag: str, providers: int, offices: int, pool: int, padding: Padding) -> _Cast:
    sources = source_keys(tag, SOURCES)
    offices_of: dict[str, list[str]] = {source: [] for source in sources}
    for j in range(offices):
        offices_of[sources[j % SOURCES]].append(f"o-{j}")
    return _Cast(
        sources=sources,
        worlds={source: World(source, padding) for source in sources},
        providers=[f"p-{i}" for i in range(providers)],
        offices_of=offices_of,
        pools={source: GroupChoice([f"pool-{k}" for k in range(pool)]) for source in sources},
    )


@dataclass(frozen=True)
class _Mix:
    """What one event of a two-source stream does, by a uniform draw: `(threshold, action)` in
    order, the first whose threshold is above the draw and that is possible (a DELETE needs its
    provider to exist; otherwise the next action is taken)."""

    steps: tuple[tuple[float, str], ...]
    create_share: float
    """Of the writes that bring a provider (back) into being, this share is a CREATE."""
    off_home_share: float
    """Of the relationships, this share goes to another office of the source than the home one."""
    link_delete_share: float
    """Of the relationships that exist, this share is deleted; the rest are UPSERTed."""


WIDE_MIX: Final = _Mix(
    steps=((0.45, "provider"), (0.50, "office"), (0.53, "walk-in"), (0.555, "delete"),
           (1.0, "link")),
    create_share=0.5,
    off_home_share=0.2,
    link_delete_share=0.12,
)  # fmt: skip
HOT_MIX: Final = _Mix(
    steps=((0.55, "provider"), (0.62, "delete"), (0.67, "office"), (0.68, "walk-in"),
           (1.0, "link")),
    create_share=0.3,
    off_home_share=0.4,
    link_delete_share=0.1,
)  # fmt: skip


def wide(*, tag: str, events: int, seed: int, payload_bytes: int) -> Stream:
    """Thousands of entities, every kind of event, groups named loosely (see the module doc)."""
    return _wide("wide", tag=tag, events=events, seed=seed, payload_bytes=payload_bytes)


def _wide(
    shape: str,
    *,
    tag: str,
    events: int,
    seed: int,
    payload_bytes: int,
    faults: Faults | None = None,
) -> Stream:
    offices = max(2 * SOURCES, events // EVENTS_PER_OFFICE)
    cast = _cast(
        tag,
        providers=max(20, events // EVENTS_PER_PROVIDER),
        offices=offices,
        pool=max(4, offices // 8),
        padding=Padding(payload_bytes),
    )
    out = _mixed(cast, WIDE_MIX, tag=tag, events=events, seed=seed, faults=faults)
    failing = frozenset(faults.failing) if faults is not None else frozenset()
    return Stream(shape, tag, out, cast.sources, len(cast.providers), offices, failing)


def hot(*, tag: str, events: int, seed: int, payload_bytes: int) -> Stream:
    """Tens of entities with long chains of changes, groups mixed (see the module doc)."""
    cast = _cast(
        tag,
        providers=HOT_PROVIDERS,
        offices=HOT_OFFICES,
        pool=6,
        padding=Padding(payload_bytes),
    )
    out = _mixed(cast, HOT_MIX, tag=tag, events=events, seed=seed)
    return Stream("hot", tag, out, cast.sources, HOT_PROVIDERS, HOT_OFFICES)


def _mixed(
    cast: _Cast, mix: _Mix, *, tag: str, events: int, seed: int, faults: Faults | None = None
) -> list[Event]:
    """`events` events drawn from `mix`, each about a random provider of the cast; at the
    positions `faults` takes, one of its failing events instead."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible stream, not a secret
    out: list[Event] = []
    for n in range(events):
        if faults is not None and n in faults.positions:
            out.append(faults.event(cast, event_id=f"{tag}-e{n + 1}"))
            continue
        index = rng.randrange(len(cast.providers))
        source = cast.source_of(index)
        world, home = cast.worlds[source], cast.home_of(index)
        provider = cast.providers[index]
        roll = rng.random()
        action = next(
            action
            for threshold, action in mix.steps
            if roll < threshold and (action != "delete" or provider in world.providers)
        )
        if action == "provider":
            event = world.write_provider(rng, provider, create_share=mix.create_share)
        elif action == "delete":
            event = world.delete_provider(provider)  # a later write creates it again
        elif action == "office":
            office = rng.choice(cast.offices_of[source])
            event, home = world.write_office(rng, office), office
        elif action == "walk-in":
            event = world.create_walk_in(rng)
        else:
            if rng.random() >= 1 - mix.off_home_share:
                home = rng.choice(cast.offices_of[source])
            event = _link_or_ends(rng, world, home, provider, delete_share=mix.link_delete_share)
        group = cast.pools[source].pick(rng, office_group(home))
        out.append(stamped(event, event_id=f"{tag}-e{n + 1}", source=source, group=group))
    return out


def faulty(*, tag: str, events: int, seed: int, payload_bytes: int) -> Stream:
    """The wide stream with `FAULT_SHARE` of its events failing on their own (module doc)."""
    return _wide("faulty", tag=tag, events=events, seed=seed, payload_bytes=payload_bytes,
                 faults=Faults(seed, events))  # fmt: skip


class Faults:
    """Events that fail on their own, built from what the world holds when each is published.

    Each is about an entity the rest of the stream leaves alone at that point, or one whose
    state makes it fail whatever comes next: an off-profile write names a fresh id (nothing
    supersedes it); a CREATE names an entity that exists; a DELETE or a relationship names a
    provider that does not exist (then or ever: `gone-<k>` when every provider exists). The
    world is not changed: the event fails.
    """

    def __init__(self, seed: int, events: int) -> None:
        self.rng = random.Random(f"faults-{seed}")  # noqa: S311 - reproducible, not a secret
        self.positions = frozenset(self.rng.sample(range(events), round(events * FAULT_SHARE)))
        self.failing: list[str] = []

    def event(self, cast: _Cast, *, event_id: str) -> Event:
        """The next failing event, its kind taken in turn, stamped with `event_id`."""
        rng, k = self.rng, len(self.failing)
        index = rng.randrange(len(cast.providers))
        source = cast.source_of(index)
        world, home = cast.worlds[source], cast.home_of(index)
        kind = FAULT_KINDS[k % len(FAULT_KINDS)]
        absent = [p for p in cast.providers if p not in world.providers] or [f"gone-{k}"]
        variant = (k // len(FAULT_KINDS)) % 2
        if kind == "exists" and not (world.providers or world.offices):
            kind = "missing"  # nothing exists yet, early in the stream
        if kind == "off-profile":
            if variant:
                data = {**world.padding.office(rng, f"bad-{k}"), "active": "yes"}
                event = resource_event("CREATE", "office", f"bad-{k}", data)
            else:
                data = {**world.padding.provider(rng, f"bad-{k}"), "unknownProperty": k}
                event = resource_event(rng.choice(["CREATE", "UPSERT"]), "provider", f"bad-{k}",
                                       data)  # fmt: skip
        elif kind == "exists":
            if variant and world.links:
                office, provider = rng.choice(sorted(world.links))
                event = link_event("CREATE", office, provider, world.padding.link(rng))
            elif world.providers:
                provider = rng.choice(sorted(world.providers))
                data = world.padding.provider(rng, provider)
                event = resource_event("CREATE", "provider", provider, data)
            else:
                office = rng.choice(sorted(world.offices))
                event = resource_event(
                    "CREATE", "office", office, world.padding.office(rng, office)
                )
        elif kind == "missing":
            provider = rng.choice(absent)
            if variant:
                event = link_event("DELETE", home, provider, None)
            else:
                event = resource_event("DELETE", "provider", provider, None)
        else:
            provider = rng.choice(absent)
            action = rng.choice(["CREATE", "UPSERT"])
            event = link_event(action, home, provider, world.padding.link(rng))
        self.failing.append(event_id)
        group = cast.pools[source].pick(rng, office_group(home))
        return stamped(event, event_id=event_id, source=source, group=group)


def without_failures(stream: Stream, tag: str) -> Stream:
    """The stream's events that do not fail, under `tag` (its sources and event ids): what it
    would be without its failing events, to count what they cost."""
    sources = source_keys(tag, len(stream.sources))
    renamed = dict(zip(stream.sources, sources, strict=True))
    prefix = f"{stream.tag}-"
    events = [
        {**event, "sourceKey": renamed[event["sourceKey"]],
         "eventId": f"{tag}-{event['eventId'].removeprefix(prefix)}"}
        for event in stream.events
        if event["eventId"] not in stream.failing
    ]  # fmt: skip
    return Stream(stream.shape, tag, events, sources, stream.providers, stream.offices)


def fanin(*, tag: str, events: int, seed: int, payload_bytes: int) -> Stream:
    """One office that every relationship points at, one group per provider (module doc)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible stream, not a secret
    (source,) = source_keys(tag, 1)
    world = World(source, Padding(payload_bytes))
    office = "o-hub"
    providers = max(1, events // FANIN_EVENTS_PER_GROUP)
    out = [stamped(world.write_office(rng, office), event_id=f"{tag}-e1", source=source,
                   group=office_group(office))]  # fmt: skip
    for n in range(1, events):
        index = rng.randrange(providers)
        provider = f"p-{index}"
        if provider in world.providers:
            event = world.write_link(rng, office, provider, create_share=0.0)
        else:
            event = world.write_provider(rng, provider, create_share=0.5)
        out.append(stamped(event, event_id=f"{tag}-e{n + 1}", source=source, group=f"g-{index}"))
    return Stream("fanin", tag, out, [source], providers, 1)


def _link_or_ends(
    rng: random.Random, world: World, office: str, provider: str, *, delete_share: float
) -> Event:
    """A relationship event office -> provider; first whichever end is missing."""
    if office not in world.offices:
        return world.write_office(rng, office)
    if provider not in world.providers:
        return world.write_provider(rng, provider, create_share=0.5)
    if (office, provider) in world.links and rng.random() < delete_share:
        return world.delete_link(office, provider)
    return world.write_link(rng, office, provider, create_share=0.6)


SHAPES: Final[dict[str, Generator]] = {
    "wide": wide,
    "hot": hot,
    "fanin": fanin,
    "faulty": faulty,
}
