"""A reproducible stream of change events, and the oracle that applies them one by one.

Each group owns its own office, providers and the relationships between them, and every event
succeeds when applied alone, in order (the generator keeps a model of what exists). Coalescing
has plenty to do: entities are written many times, relationships come and go, and a quarter of
the groups delete a provider (its relationships go with it) and create it again.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.stream import normalized, operation_of
from emulator.state import SUCCESS, SourceState

REL_TYPE = "provider-office"
PROVIDERS_PER_GROUP = 4


@dataclass
class _GroupModel:
    """What exists in one group's slice of the registry, as the events so far leave it."""

    office: str
    providers: list[str]
    resources: set[tuple[str, str]] = field(default_factory=set)
    links: set[str] = field(default_factory=set)
    deleted_once: bool = False


def make_stream(
    *, sources: list[str], groups: int, events: int, seed: int = 13, deletes: bool = True
) -> list[dict[str, Any]]:
    """`events` events over `groups` groups spread across `sources`, in publish order.

    Without `deletes`, nothing is ever deleted: each group's events can travel as one bundle.
    """
    rng = random.Random(seed)
    models = []
    for g in range(groups):
        source = sources[g % len(sources)]
        office = f"o-{g}"
        providers = [f"p-{g}-{k}" for k in range(PROVIDERS_PER_GROUP)]
        models.append((source, f"g-{g}", _GroupModel(office, providers)))
    per_group = events // groups
    out: list[dict[str, Any]] = []
    counter = itertools.count(1)
    for round_ in range(per_group):
        for source, group, model in models:
            event = _next_event(rng, model, round_, per_group, deletes)
            event.update({"eventId": f"e-{next(counter)}", "sourceKey": source, "group": group})
            out.append(event)
    return out


def _next_event(
    rng: random.Random, m: _GroupModel, round_: int, total: int, deletes: bool
) -> dict[str, Any]:
    if round_ == 0:
        m.resources.add(("office", m.office))
        return _resource("CREATE", "office", m.office, {"name": f"Office {m.office}"})
    missing = [p for p in m.providers if ("provider", p) not in m.resources]
    if missing:
        provider = missing[0]
        m.resources.add(("provider", provider))
        action = "CREATE" if rng.random() < 0.5 else "UPSERT"
        return _resource(action, "provider", provider, _provider_data(rng, provider))
    delete_round = total * 3 // 5
    if deletes and round_ == delete_round and not m.deleted_once and rng.random() < 0.25:
        m.deleted_once = True
        victim = m.providers[-1]
        m.resources.discard(("provider", victim))
        m.links.discard(victim)
        return _resource("DELETE", "provider", victim, None)
    roll = rng.random()
    provider = rng.choice(m.providers)
    if roll < 0.45:
        return _resource("UPSERT", "provider", provider, _provider_data(rng, provider))
    if roll < 0.55:
        data = {"name": f"Office {m.office} v{rng.randrange(1000)}", "active": rng.random() < 0.5}
        return _resource("UPSERT", "office", m.office, data)
    if provider in m.links:
        if deletes and roll < 0.58:
            m.links.discard(provider)
            return _link("DELETE", m.office, provider, None)
        return _link("UPSERT", m.office, provider, {"description": f"v{rng.randrange(1000)}"})
    m.links.add(provider)
    action = "CREATE" if roll < 0.8 else "UPSERT"
    return _link(action, m.office, provider, {"description": "works at"})


def _provider_data(rng: random.Random, provider: str) -> dict[str, Any]:
    return {"name": f"Provider {provider}", "practiceNumber": rng.randrange(1, 10**6)}


def _resource(action: str, type_: str, id_: str, data: dict[str, Any] | None) -> dict[str, Any]:
    event: dict[str, Any] = {"target": "resource", "action": action, "type": type_, "id": id_}
    if data is not None:
        event["data"] = data
    return event


def _link(action: str, office: str, provider: str, data: dict[str, Any] | None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "target": "relationship",
        "action": action,
        "type": REL_TYPE,
        "from": {"type": "office", "id": office},
        "to": {"type": "provider", "id": provider},
    }
    if data is not None:
        event["data"] = data
    return event


def oracle(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per source, the registry's records after applying the events one by one, in order.

    Raises AssertionError when an event would not succeed on its own (the stream is wrong).
    """
    ids = (f"gen{n}" for n in itertools.count())
    states: dict[str, SourceState] = {}
    for event in events:
        source = event["sourceKey"]
        if source not in states:
            states[source] = SourceState(source, clock=_fixed_clock, new_id=lambda: next(ids))
        state = states[source]
        op = operation_of(event)
        if event["target"] == "resource":
            receipt = state.apply_resource_operation(op)
        else:
            receipt = state.apply_relationship_operation(op)
        assert receipt["status"] == SUCCESS, (event["eventId"], receipt)
    return {source: normalized(state.snapshot()) for source, state in states.items()}


def _fixed_clock() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


def writes_allowed(events: Iterable[dict[str, Any]]) -> Counter[tuple[str, str, str, str]]:
    """The most writes each (source, target, type, id) may take, ids as the write log shows them.

    One per event on the entity, plus one per DELETE of a relationship's endpoint (the registry
    deletes the relationship along with it, and logs that write too).
    """
    counts: Counter[tuple[str, str, str, str]] = Counter()
    links_of: dict[tuple[str, str, str], set[tuple[str, str, str, str]]] = {}
    deletes: list[tuple[str, str, str]] = []
    for event in events:
        source = event["sourceKey"]
        if event["target"] == "resource":
            counts[(source, "resource", event["type"], event["id"])] += 1
            if event["action"] == "DELETE":
                deletes.append((source, event["type"], event["id"]))
            continue
        ends = event["from"], event["to"]
        rel_id = f"{ends[0]['type']}.{ends[0]['id']},{ends[1]['type']}.{ends[1]['id']}"
        key = (source, "relationship", event["type"], rel_id)
        counts[key] += 1
        for end in ends:
            links_of.setdefault((source, end["type"], end["id"]), set()).add(key)
    for resource in deletes:
        for key in links_of.get(resource, ()):
            counts[key] += 1
    return counts
