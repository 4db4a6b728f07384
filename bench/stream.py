"""The benchmark's stream of change events, and the oracle that applies them one by one.

Mostly UPSERTs of providers and relationships office -> provider, spread over groups (each group
owns one office and its providers, so groups never share an entity), plus some CREATEs (some
without an id: the producer assigns one), DELETEs of relationships and now and then of a provider
(its relationships go with it) that a later event creates again. Groups take turns, so every
publish batch touches every group. Every event succeeds when applied alone, in order: the
generator keeps a model of what exists.

Event ids and source keys carry a tag, so that several runs share one Registry and one Redis
without meeting: the same stream under another tag is the same work on other keys.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from emulator.state import SUCCESS, SourceState

Event = dict[str, Any]
State = dict[str, list[dict[str, Any]]]

REL_TYPE: Final = "provider-office"
PROVIDERS_PER_GROUP: Final = 40
SOURCES_PER_RUN: Final = 2

# What one event does, by a uniform draw: cumulative thresholds (the rest are relationships).
_PROVIDER_WRITE: Final = 0.50
_OFFICE_UPSERT: Final = 0.52
_CREATE_WITHOUT_ID: Final = 0.55
_PROVIDER_DELETE: Final = 0.56
_LINK_DELETE: Final = 0.59
_LINK_CREATE_SHARE: Final = 0.7
"""Of the relationships that do not exist yet, this share is a CREATE, the rest an UPSERT."""

_STAMPED_META: Final = frozenset({"createdAt", "updatedAt"})


@dataclass
class _Group:
    """What exists in one group's slice of the Registry, as the events so far leave it."""

    name: str
    source: str
    office: str
    providers: list[str]
    present: set[str] = field(default_factory=set)
    links: set[str] = field(default_factory=set)


def sources_of(tag: str) -> list[str]:
    """The source keys of the stream tagged `tag`."""
    return [f"{tag}-{chr(ord('a') + k)}" for k in range(SOURCES_PER_RUN)]


def make_stream(*, tag: str, events: int, groups: int, seed: int = 7) -> list[Event]:
    """`events` events over `groups` groups, in publish order; the same seed, the same work."""
    if events < 1 or groups < 1:
        raise ValueError("events and groups must be at least 1")
    rng = random.Random(seed)  # noqa: S311 - a reproducible stream, not a secret
    sources = sources_of(tag)
    models = [
        _Group(
            name=f"g-{g}",
            source=sources[g % len(sources)],
            office=f"o-{g}",
            providers=[f"p-{g}-{k}" for k in range(PROVIDERS_PER_GROUP)],
        )
        for g in range(groups)
    ]
    out: list[Event] = []
    for n in range(events):
        model = models[n % groups]
        event = _next_event(rng, model, first=n < groups)
        event.update({"eventId": f"{tag}-e{n + 1}", "sourceKey": model.source, "group": model.name})
        out.append(event)
    return out


def _next_event(rng: random.Random, m: _Group, *, first: bool) -> Event:
    if first:
        return _resource("CREATE", "office", m.office, {"name": f"Office {m.office}"})
    provider = rng.choice(m.providers)
    roll = rng.random()
    if roll < _PROVIDER_WRITE or provider not in m.present:
        return _provider_write(rng, m, provider)
    if roll < _OFFICE_UPSERT:
        data = {"name": f"Office {m.office} v{rng.randrange(1000)}", "active": rng.random() < 0.5}
        return _resource("UPSERT", "office", m.office, data)
    if roll < _CREATE_WITHOUT_ID:
        return _resource("CREATE", "provider", None, _provider_data(rng, "walk-in"))
    if roll < _PROVIDER_DELETE:
        m.present.discard(provider)
        m.links.discard(provider)
        return _resource("DELETE", "provider", provider, None)
    if provider in m.links:
        if roll < _LINK_DELETE:
            m.links.discard(provider)
            return _link("DELETE", m.office, provider, None)
        return _link("UPSERT", m.office, provider, {"description": f"v{rng.randrange(1000)}"})
    m.links.add(provider)
    action = "CREATE" if rng.random() < _LINK_CREATE_SHARE else "UPSERT"
    return _link(action, m.office, provider, {"description": "works at"})


def _provider_write(rng: random.Random, m: _Group, provider: str) -> Event:
    if provider in m.present:
        return _resource("UPSERT", "provider", provider, _provider_data(rng, provider))
    m.present.add(provider)
    action = "CREATE" if rng.random() < 0.5 else "UPSERT"
    return _resource(action, "provider", provider, _provider_data(rng, provider))


def _provider_data(rng: random.Random, name: str) -> dict[str, Any]:
    return {"name": f"Provider {name}", "practiceNumber": rng.randrange(1, 10**6)}


def _resource(action: str, type_: str, id_: str | None, data: dict[str, Any] | None) -> Event:
    event: Event = {"target": "resource", "action": action, "type": type_}
    if id_ is not None:
        event["id"] = id_
    if data is not None:
        event["data"] = data
    return event


def _link(action: str, office: str, provider: str, data: dict[str, Any] | None) -> Event:
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


def with_ids(events: Iterable[Event], assigned: Mapping[str, str]) -> list[Event]:
    """The events, each CREATE without an id given the id assigned to it (event id -> id).

    Raises KeyError naming the event when one has no assigned id.
    """
    out = []
    for event in events:
        if event["target"] == "resource" and "id" not in event:
            try:
                event = {**event, "id": assigned[event["eventId"]]}
            except KeyError:
                raise KeyError(f"no id was assigned to event {event['eventId']}") from None
        out.append(event)
    return out


def operation_of(event: Event) -> dict[str, Any]:
    """The raw Registry operation that applying the event alone sends."""
    action = event["action"]
    if event["target"] == "resource":
        payload: dict[str, Any] = {"type": event["type"], "id": event["id"]}
    else:
        payload = {"type": event["type"], "from": event["from"], "to": event["to"]}
    if action != "DELETE":
        payload["data"] = copy.deepcopy(event.get("data") or {})
    return {"action": action, action.lower(): payload}


def oracle(events: Iterable[Event]) -> dict[str, State]:
    """Per source, the Registry's records after applying the events (ids given) one by one.

    Raises ValueError when an event would fail on its own: the stream itself is wrong.
    """
    states: dict[str, SourceState] = {}
    for event in events:
        source = event["sourceKey"]
        state = states.get(source)
        if state is None:
            state = states[source] = SourceState(source, clock=_fixed_clock, new_id=_no_new_id)
        op = operation_of(event)
        if event["target"] == "resource":
            receipt = state.apply_resource_operation(op)
        else:
            receipt = state.apply_relationship_operation(op)
        if receipt["status"] != SUCCESS:
            raise ValueError(f"event {event['eventId']} fails on its own: {receipt.get('error')}")
    return {source: normalized(state.snapshot()) for source, state in states.items()}


def _fixed_clock() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


def _no_new_id() -> str:
    raise ValueError("the oracle takes events whose ids are all given (see with_ids)")


def normalized(snapshot: Mapping[str, Any]) -> State:
    """Records without the times the Registry stamps, sorted: two Registries compare equal."""
    out: State = {}
    for kind in ("resources", "relationships"):
        records = []
        for record in snapshot.get(kind) or []:
            kept = {k: v for k, v in record.items() if k != "meta"}
            kept["meta"] = {
                k: v for k, v in (record.get("meta") or {}).items() if k not in _STAMPED_META
            }
            records.append(kept)
        out[kind] = sorted(records, key=lambda r: (r["type"], r["id"]))
    return out
