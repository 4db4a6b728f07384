"""Seeded streams of raw change events over many groups, with a model that keeps failures rare.

The model tracks which offices, providers and relationships exist so that most events apply;
a few are meant to fail (an unknown property, a DELETE of a missing provider), so the failure
paths (FAILED dead-lettered, neighbours CANCELLED and resubmitted) run too.
"""

from __future__ import annotations

import itertools
import random
from typing import Any


class StreamModel:
    """What the stream believes exists, so it mostly names real entities."""

    def __init__(
        self,
        rng: random.Random,
        source: str,
        *,
        offices: int,
        providers: int,
        bad: float,
        seeded: bool,
    ) -> None:
        self.rng = rng
        self.bad = bad
        self.source = source
        self.office_pool = [f"o{i}" for i in range(offices)]
        self.provider_pool = [f"p{i}" for i in range(providers)]
        self.offices: set[str] = set(self.office_pool) if seeded else set()
        self.providers: set[tuple[str, str]] = (
            {("id", p) for p in self.provider_pool} if seeded else set()
        )
        """("id", value) or ("ref", value)."""
        self.links: set[tuple[str, tuple[str, str]]] = (
            {seed_link(i, offices, providers) for i in range(SEED_LINKS)} if seeded else set()
        )
        self.counter = itertools.count(1)
        self.refs = itertools.count(1)

    def _event(self, **fields: Any) -> dict[str, Any]:
        event = {"eventId": f"ev-{next(self.counter)}", "sourceKey": self.source, **fields}
        roll = self.rng.random()
        if roll < 0.3:
            event["group"] = f"zone-{self.rng.randrange(20)}"
        return event

    @staticmethod
    def _provider_end(provider: tuple[str, str]) -> dict[str, str]:
        kind, value = provider
        return {"type": "provider", kind: value}

    def next(self) -> dict[str, Any]:
        rng = self.rng
        roll = rng.random()
        n = next(self.counter)
        if roll < 0.22 or not self.offices:
            office = rng.choice(self.office_pool)
            self.offices.add(office)
            return self._event(
                target="resource", action="UPSERT", type="office", id=office,
                data={"name": f"Clinic {n}"},
            )  # fmt: skip
        if roll < 0.44 or not self.providers:
            provider_id = rng.choice(self.provider_pool)
            self.providers.add(("id", provider_id))
            return self._event(
                target="resource", action="UPSERT", type="provider", id=provider_id,
                data={"name": f"Provider {n}", "practiceNumber": n},
            )  # fmt: skip
        if roll < 0.52:
            ref = f"new-{next(self.refs)}"
            self.providers.add(("ref", ref))
            return self._event(
                target="resource", action="CREATE", type="provider", ref=ref,
                data={"name": f"New provider {n}"},
            )  # fmt: skip
        if roll < 0.58:
            provider = rng.choice(sorted(self.providers))
            fields: dict[str, Any] = {provider[0]: provider[1]}
            return self._event(
                target="resource", action="UPSERT", type="provider", **fields,
                data={"name": f"Renamed {n}"},
            )  # fmt: skip
        if roll < 0.86:
            office = rng.choice(sorted(self.offices))
            provider = rng.choice(sorted(self.providers))
            self.links.add((office, provider))
            return self._event(
                target="relationship", action="UPSERT", type="provider-office",
                **{"from": {"type": "office", "id": office}, "to": self._provider_end(provider)},
                data={"description": f"Works at {n}"},
            )  # fmt: skip
        if roll < 0.91 and self.links:
            office, provider = rng.choice(sorted(self.links))
            self.links.discard((office, provider))
            return self._event(
                target="relationship", action="DELETE", type="provider-office",
                **{"from": {"type": "office", "id": office}, "to": self._provider_end(provider)},
            )  # fmt: skip
        if roll < 0.95:
            provider = rng.choice(sorted(self.providers))
            self.providers.discard(provider)
            self.links = {link for link in self.links if link[1] != provider}
            fields = {provider[0]: provider[1]}
            return self._event(target="resource", action="DELETE", type="provider", **fields)
        if roll < 0.97:
            office = rng.choice(sorted(self.offices))
            self.offices.discard(office)
            self.links = {link for link in self.links if link[0] != office}
            return self._event(target="resource", action="DELETE", type="office", id=office)
        if rng.random() >= self.bad:
            return self.next()
        if roll < 0.985:
            office = rng.choice(self.office_pool)
            return self._event(
                target="resource", action="UPSERT", type="office", id=office,
                data={"name": "Bad", "unknownProperty": n},
            )  # fmt: skip
        return self._event(target="resource", action="DELETE", type="provider", id=f"missing-{n}")


def build_stream(
    seed: int,
    size: int,
    source: str,
    *,
    offices: int = 60,
    providers: int = 400,
    bad: float = 1.0,
    seeded: bool = False,
) -> list[dict[str, Any]]:
    """`size` raw events, reproducible under `seed`; `bad` scales how many are meant to fail
    (1.0: about 3 in 100, half an unknown property, half a DELETE of a missing provider);
    `seeded`: the offices and providers of `seed_stream` exist from the start)."""
    model = StreamModel(
        random.Random(seed), source, offices=offices, providers=providers, bad=bad, seeded=seeded
    )
    return [model.next() for _ in range(size)]


SEED_LINKS = 300
"""Relationships `seed_stream` creates."""


def seed_link(index: int, offices: int, providers: int) -> tuple[str, tuple[str, str]]:
    """The `index`-th seeded relationship: (office id, ("id", provider id))."""
    return (f"o{index % offices}", ("id", f"p{(index * 7) % providers}"))


def seed_stream(source: str, *, offices: int = 60, providers: int = 400) -> list[dict[str, Any]]:
    """UPSERTs of every office and provider the streams pick from, and of `SEED_LINKS`
    relationships between them: a Registry with data."""
    events: list[dict[str, Any]] = []
    for i in range(offices):
        events.append(
            {"eventId": f"seed-o{i}", "sourceKey": source, "target": "resource",
             "action": "UPSERT", "type": "office", "id": f"o{i}", "data": {"name": f"Office {i}"}}
        )  # fmt: skip
    for i in range(providers):
        events.append(
            {"eventId": f"seed-p{i}", "sourceKey": source, "target": "resource",
             "action": "UPSERT", "type": "provider", "id": f"p{i}",
             "data": {"name": f"Provider {i}", "practiceNumber": i}}
        )  # fmt: skip
    for i in range(SEED_LINKS):
        office, (_, provider) = seed_link(i, offices, providers)
        events.append(
            {"eventId": f"seed-l{i}", "sourceKey": source, "target": "relationship",
             "action": "UPSERT", "type": "provider-office",
             "from": {"type": "office", "id": office}, "to": {"type": "provider", "id": provider},
             "data": {"description": "Seeded"}}
        )  # fmt: skip
    return events
