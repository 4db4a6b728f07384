"""What the generated streams build on: a model of what exists, event builders, groups, padding.

Every stream must succeed when its events are applied alone, in order (the oracle refuses it
otherwise), so each generator writes through a `World`: it knows which providers and offices exist
and which office -> provider relationships do, and each builder updates it as the Registry would
(a resource DELETE takes its relationships with it). A generator asks the world what is possible
and picks among that; it never guesses.

Producers name groups loosely, as real ones do: `GroupChoice` gives an event no group, its home
group (the office the entity belongs to) or a random group of a pool, so one entity is published
under several groups over time. `Padding` makes each write's `data` about B bytes with a few
shared string objects, so a stream of 200,000 padded events costs the benchmark's own memory
little.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

Event = dict[str, Any]

REL_TYPE: Final = "provider-office"
NO_GROUP_SHARE: Final = 0.4
"""Share of events published with no `group` (the producer names none)."""
HOME_GROUP_SHARE: Final = 0.3
"""Share published under the entity's home group (its office's); the rest take a pool's group."""
PAD_VARIANTS: Final = 8
"""Distinct padded strings per field, so padded UPSERTs still change what they write."""


def source_keys(tag: str, count: int) -> list[str]:
    """The source keys of the stream tagged `tag`: `<tag>-a`, `<tag>-b`, ..."""
    return [f"{tag}-{chr(ord('a') + k)}" for k in range(count)]


def office_group(office: str) -> str:
    """The group a producer that groups by office names for the office and its providers."""
    return f"g-{office}"


@dataclass(frozen=True)
class GroupChoice:
    """How producers name groups: none, the entity's home group, or a random one of a pool."""

    pool: Sequence[str]
    no_group_share: float = NO_GROUP_SHARE
    home_share: float = HOME_GROUP_SHARE

    def pick(self, rng: random.Random, home: str) -> str | None:
        roll = rng.random()
        if roll < self.no_group_share:
            return None
        if roll < self.no_group_share + self.home_share or not self.pool:
            return home
        return rng.choice(self.pool)


class Padding:
    """Each write's `data` padded to about `payload_bytes` through one string field per type.

    The profiles allow no extra fields, so the padding goes where the emulator's default profiles
    take a string: a provider's `specialities`, an office's `description`, a relationship's
    `description`. Zero means no padding (small, realistic records).
    """

    def __init__(self, payload_bytes: int) -> None:
        self.payload_bytes = payload_bytes
        size = max(0, payload_bytes - 80)  # the rest of a record's JSON is about that long
        self._pads = [f"v{k} " + "x" * size for k in range(PAD_VARIANTS)] if size else []

    def _pad(self, rng: random.Random) -> str | None:
        return rng.choice(self._pads) if self._pads else None

    def provider(self, rng: random.Random, provider: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": f"Provider {provider}",
            "practiceNumber": rng.randrange(1, 10**6),
        }
        pad = self._pad(rng)
        if pad is not None:
            data["specialities"] = [pad]
        return data

    def office(self, rng: random.Random, office: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": f"Office {office} v{rng.randrange(1000)}",
            "active": rng.random() < 0.5,
        }
        pad = self._pad(rng)
        if pad is not None:
            data["description"] = pad
        return data

    def link(self, rng: random.Random) -> dict[str, Any]:
        return {"description": self._pad(rng) or f"v{rng.randrange(1000)}"}


@dataclass
class World:
    """What exists in one source, as the events so far leave it; builds events that apply."""

    source: str
    padding: Padding
    offices: set[str] = field(default_factory=set)
    providers: set[str] = field(default_factory=set)
    links: set[tuple[str, str]] = field(default_factory=set)
    """(office, provider) pairs that exist."""
    _links_of: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    # -- resources -----------------------------------------------------------------------

    def write_provider(self, rng: random.Random, provider: str, *, create_share: float) -> Event:
        """UPSERT the provider, or bring it (back) into being: CREATE or UPSERT."""
        data = self.padding.provider(rng, provider)
        if provider in self.providers:
            return resource_event("UPSERT", "provider", provider, data)
        self.providers.add(provider)
        action = "CREATE" if rng.random() < create_share else "UPSERT"
        return resource_event(action, "provider", provider, data)

    def write_office(self, rng: random.Random, office: str) -> Event:
        """UPSERT the office, or CREATE it the first time."""
        data = self.padding.office(rng, office)
        if office in self.offices:
            return resource_event("UPSERT", "office", office, data)
        self.offices.add(office)
        return resource_event("CREATE", "office", office, data)

    def create_walk_in(self, rng: random.Random) -> Event:
        """A provider CREATE without an id: the worker assigns one at publish; nothing refers
        to it later (the producer does not know its id)."""
        return resource_event("CREATE", "provider", None, self.padding.provider(rng, "walk-in"))

    def delete_provider(self, provider: str) -> Event:
        """DELETE an existing provider; its relationships go with it, as in the Registry."""
        if provider not in self.providers:
            raise ValueError(f"provider {provider} does not exist")
        self.providers.discard(provider)
        for pair in self._links_of.pop(provider, set()):
            self.links.discard(pair)
            self._links_of.get(pair[0], set()).discard(pair)
        return resource_event("DELETE", "provider", provider, None)

    # -- relationships -------------------------------------------------------------------

    def write_link(
        self, rng: random.Random, office: str, provider: str, *, create_share: float
    ) -> Event:
        """UPSERT the relationship, or CREATE it when it does not exist (both ends must)."""
        if office not in self.offices or provider not in self.providers:
            raise ValueError(f"an end of {office} -> {provider} does not exist")
        data = self.padding.link(rng)
        pair = (office, provider)
        if pair in self.links:
            return link_event("UPSERT", office, provider, data)
        self.links.add(pair)
        self._links_of.setdefault(office, set()).add(pair)
        self._links_of.setdefault(provider, set()).add(pair)
        action = "CREATE" if rng.random() < create_share else "UPSERT"
        return link_event(action, office, provider, data)

    def delete_link(self, office: str, provider: str) -> Event:
        """DELETE an existing relationship."""
        pair = (office, provider)
        if pair not in self.links:
            raise ValueError(f"{office} -> {provider} does not exist")
        self.links.discard(pair)
        self._links_of.get(office, set()).discard(pair)
        self._links_of.get(provider, set()).discard(pair)
        return link_event("DELETE", office, provider, None)


def resource_event(action: str, type_: str, id_: str | None, data: dict[str, Any] | None) -> Event:
    """A resource event without its event id, source and group (the stream adds those)."""
    event: Event = {"target": "resource", "action": action, "type": type_}
    if id_ is not None:
        event["id"] = id_
    if data is not None:
        event["data"] = data
    return event


def link_event(action: str, office: str, provider: str, data: dict[str, Any] | None) -> Event:
    """An office -> provider relationship event without its event id, source and group."""
    event: Event = {
        "target": "relationship",
        "action": action,
        "type": REL_TYPE,
        "from": {"type": "office", "id": office},
        "to": {"type": "provider", "id": provider},
    }
    if data is not None:
        event["data"] = data
    return event


def stamped(event: Event, *, event_id: str, source: str, group: str | None) -> Event:
    """The event as published: its id, its source and, when the producer names one, a group."""
    event["eventId"] = event_id
    event["sourceKey"] = source
    if group is not None:
        event["group"] = group
    return event
