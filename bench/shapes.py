"""The benchmark's three streams, each the shape of a kind of real traffic .

- `wide`: thousands of entities (one provider per 25 events, one office per 250), most events an
  UPSERT or a relationship office -> provider, some CREATEs (a few without an id), DELETEs of
  relationships and of providers that later events create again; relationships mostly to the
  provider's home office, some to another office of the source.
- `hot`: 40 providers and 5 offices, each receiving hundreds of changes in a long stream: mostly
  UPSERTs, deletes of providers followed by their re-creation, relationships to a few offices.
- `fanin`: one office that every relationship points at, from one provider per 10 events, each
  provider publishing under its own group (10,000 groups in 100,000 events): the scenario where
  one resource is referenced from more groups and events than any read limit.

In `wide` and `hot`, producers name groups loosely (`world.GroupChoice`): no group, the entity's
office's group, or a random group of a pool, so one entity is published under several groups
over time. Two sources share the events (`fanin` has one: its office is one resource). The same
seed gives the same stream; tests run several seeds.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from bench.world import (
    Event,
    GroupChoice,
    Padding,
    World,
    office_group,
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


@dataclass(frozen=True)
class Stream:
    """A generated stream: its events in publish order, its sources, the entities it names."""

    shape: str
    tag: str
    events: list[Event]
    sources: list[str]
    providers: int
    offices: int


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
    offices = max(2 * SOURCES, events // EVENTS_PER_OFFICE)
    cast = _cast(
        tag,
        providers=max(20, events // EVENTS_PER_PROVIDER),
        offices=offices,
        pool=max(4, offices // 8),
        padding=Padding(payload_bytes),
    )
    out = _mixed(cast, WIDE_MIX, tag=tag, events=events, seed=seed)
    return Stream("wide", tag, out, cast.sources, len(cast.providers), offices)


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


def _mixed(cast: _Cast, mix: _Mix, *, tag: str, events: int, seed: int) -> list[Event]:
    """`events` events drawn from `mix`, each about a random provider of the cast."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible stream, not a secret
    out: list[Event] = []
    for n in range(events):
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


SHAPES: Final[dict[str, Generator]] = {"wide": wide, "hot": hot, "fanin": fanin}
