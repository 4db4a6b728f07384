"""Hypothesis strategies: a starting Registry and a stream of change events on a small id space.

Three offices and three providers (some already present, some related), new resources named by
refs, and relationships `provider-office` between them. Events are built as raw JSON and go
through `parse_event` and `assign_ids`, as published events do. The stream mixes creates,
upserts, deletes, relationship changes followed by a delete of an end, explicit groups that
change over time, atomic batches, and events that fail on their own: a CREATE of an existing id,
a DELETE of a missing one, a relationship to a missing end, payloads the profile refuses.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from hypothesis import strategies as st

from tests.property.oracle import JSON, NOW, SOURCE
from worker.domain.events import ChangeEvent, parse_event
from worker.domain.refs import assign_ids

OFFICES: Final = ("o1", "o2", "o3")
PROVIDERS: Final = ("p1", "p2", "p3")
GROUPS: Final = ("g1", "g2", "g3")
RELATIONSHIP: Final = "provider-office"
START_TIME: Final = "2019-05-05T05:05:05Z"
TIMES: Final = ("2020-01-01T00:00:00Z", "2021-06-01T12:00:00Z", "2022-03-04T05:06:07Z")
ACTIONS: Final = ("CREATE", "UPSERT", "DELETE")

Draw = Callable[[st.SearchStrategy[Any]], Any]


@dataclass(frozen=True)
class Scenario:
    """A starting state, the published (resolved) events, and the events whose payload is bad.

    `invalid` holds the ids of events whose own payload the Registry refuses whatever the state.
    """

    start: tuple[JSON, ...]
    events: tuple[ChangeEvent, ...]
    invalid: frozenset[str]


def generated_ids() -> Callable[[], str]:
    """The worker's id generator, injected: gen00001, gen00002, ..."""
    counter = itertools.count(1)
    return lambda: f"gen{next(counter):05d}"


def _office_data(draw: Draw, n: int) -> JSON:
    data: JSON = {"name": f"office {n}"}
    if draw(st.booleans()):
        data["active"] = draw(st.booleans())
    return data


def _provider_data(draw: Draw, n: int) -> JSON:
    data: JSON = {"name": f"provider {n}", "practiceNumber": n}
    if draw(st.booleans()):
        data["specialities"] = draw(st.lists(st.sampled_from(["gp", "ent", "é"]), max_size=2))
    return data


def resource_data(draw: Draw, type_: str, n: int, *, valid: bool) -> JSON:
    """A payload marked with `n`, so the stored state shows which payload won."""
    data = _office_data(draw, n) if type_ == "office" else _provider_data(draw, n)
    if not valid:
        if type_ == "office" or draw(st.booleans()):
            data["UNKNOWN"] = True  # the seed's refusal: additionalProperties not allowed
        else:
            data["practiceNumber"] = f"#{n}"  # wrong type for an integer property
    return data


def relationship_data(draw: Draw, n: int, *, valid: bool) -> JSON | None:
    """A relationship payload; None sends no data at all."""
    choices: list[JSON | None] = (
        [{"description": n}, {"UNKNOWN": n}] if not valid else [None, {"description": f"link {n}"}]
    )
    chosen: JSON | None = draw(st.sampled_from(choices))
    return chosen


def meta(draw: Draw, *, always: bool) -> JSON | None:
    """Provenance in the past; with `always`, every write names its own createdAt."""
    if not always and draw(st.booleans()):
        return None
    created = draw(st.sampled_from(range(len(TIMES))))
    result: JSON = {"createdAt": TIMES[created]}
    if draw(st.booleans()):
        result["updatedAt"] = TIMES[draw(st.sampled_from(range(created, len(TIMES))))]
    return result


@st.composite
def starts(draw: Draw) -> tuple[JSON, ...]:
    """Records already in the Registry: some offices, some providers, links among them."""
    ops: list[JSON] = []
    present: dict[str, list[str]] = {"office": [], "provider": []}
    for type_, ids in (("office", OFFICES), ("provider", PROVIDERS)):
        for n, id_ in enumerate(ids):
            if draw(st.booleans()):
                present[type_].append(id_)
                payload = {
                    "type": type_,
                    "id": id_,
                    "data": resource_data(draw, type_, 900 + n, valid=True),
                    "meta": {"createdAt": START_TIME},
                }
                ops.append({"action": "UPSERT", "upsert": payload})
    for office in present["office"]:
        for provider in present["provider"]:
            if draw(st.integers(0, 2)) == 0:
                body = {
                    "type": RELATIONSHIP,
                    "from": {"id": office, "type": "office"},
                    "to": {"id": provider, "type": "provider"},
                    "data": {"description": "from the start"},
                    "meta": {"createdAt": START_TIME},
                }
                ops.append({"action": "UPSERT", "upsert": body})
    return tuple(ops)


Naming = tuple[str, JSON]
"""A resource as an event names it: its type, and `{"id": ...}` or `{"ref": ...}`."""


@dataclass
class _Stream:
    """The raw events of one stream, built in publish order."""

    draw: Draw
    invalid_allowed: bool
    meta_always: bool
    raws: list[JSON] = field(default_factory=list)
    refs: list[tuple[str, str]] = field(default_factory=list)
    invalid: set[str] = field(default_factory=set)

    @property
    def n(self) -> int:
        return len(self.raws)

    def name_resource(self, type_: str | None = None) -> Naming:
        draw = self.draw
        kind = type_ or draw(st.sampled_from(["office", "provider"]))
        refs = [ref for ref, ref_type in self.refs if ref_type == kind]
        if refs and draw(st.integers(0, 2)) == 0:
            return kind, {"ref": draw(st.sampled_from(refs))}
        return kind, {"id": draw(st.sampled_from(OFFICES if kind == "office" else PROVIDERS))}

    def valid(self) -> bool:
        return not self.invalid_allowed or self.draw(st.integers(0, 4)) > 0

    def base(self, target: str, action: str, type_: str, **extra: Any) -> JSON:
        raw: JSON = {
            "eventId": f"e{self.n}",
            "sourceKey": SOURCE,
            "target": target,
            "action": action,
            "type": type_,
            **extra,
        }
        if self.draw(st.booleans()):
            raw["group"] = self.draw(st.sampled_from(GROUPS))
        return raw

    def resource(self, action: str, naming: Naming, *, defines: bool = False, **extra: Any) -> JSON:
        type_, name = naming
        if action == "CREATE" and "ref" in name and not defines:
            action = "UPSERT"  # a CREATE naming a live ref would define it again (refused)
        raw = self.base("resource", action, type_, **name, **extra)
        if action != "DELETE":
            valid = self.valid()
            raw["data"] = resource_data(self.draw, type_, self.n, valid=valid)
            written = meta(self.draw, always=self.meta_always)
            if written is not None:
                raw["meta"] = written
            if not valid:
                self.invalid.add(raw["eventId"])
        self.raws.append(raw)
        return raw

    def relationship(self, action: str, frm: Naming, to: Naming, **extra: Any) -> JSON:
        ends = {"from": {"type": frm[0], **frm[1]}, "to": {"type": to[0], **to[1]}}
        raw = self.base("relationship", action, RELATIONSHIP, **ends, **extra)
        if action != "DELETE":
            valid = self.valid()
            data = relationship_data(self.draw, self.n, valid=valid)
            if data is not None:
                raw["data"] = data
            written = meta(self.draw, always=self.meta_always)
            if written is not None:
                raw["meta"] = written
            if not valid:
                self.invalid.add(raw["eventId"])
        self.raws.append(raw)
        return raw

    def link_ends(self) -> tuple[Naming, Naming]:
        frm, to = self.name_resource("office"), self.name_resource("provider")
        if self.draw(st.integers(0, 15)) == 0:
            return to, frm  # the definition goes office -> provider: refused whatever the state
        return frm, to

    def define_ref(self) -> None:
        type_ = self.draw(st.sampled_from(["office", "provider"]))
        ref = f"r{self.n}"
        self.resource("CREATE", (type_, {"ref": ref}), defines=True)
        self.refs.append((ref, type_))

    def batch(self, size: int) -> None:
        """An atomic batch on distinct entities, resource events before relationship events."""
        draw = self.draw
        batch_id = f"b{self.n}"
        resources: list[Naming] = []
        for _ in range(draw(st.integers(0, size))):
            naming = self.name_resource()
            if naming not in resources:
                resources.append(naming)
        links: list[tuple[Naming, Naming]] = []
        for _ in range(size - len(resources)):
            ends = self.link_ends()
            if ends not in links:
                links.append(ends)
        for naming in resources:
            self.resource(draw(st.sampled_from(ACTIONS)), naming, atomicBatch=batch_id)
        for frm, to in links:
            self.relationship(draw(st.sampled_from(ACTIONS)), frm, to, atomicBatch=batch_id)

    def step(self, max_batch: int) -> None:
        draw = self.draw
        kind = draw(st.integers(0, 9))
        if kind <= 2:
            self.resource(draw(st.sampled_from(ACTIONS)), self.name_resource())
        elif kind <= 4:
            self.relationship(draw(st.sampled_from(ACTIONS)), *self.link_ends())
        elif kind == 5:
            self.define_ref()
        elif kind == 6:
            # A relationship change, then a delete of one of its ends.
            frm, to = self.link_ends()
            self.relationship(draw(st.sampled_from(["CREATE", "UPSERT"])), frm, to)
            self.resource("DELETE", draw(st.sampled_from([frm, to])))
        elif kind == 7 and max_batch > 0:
            self.batch(draw(st.integers(1, max_batch)))
        elif kind == 8:
            self.resource("CREATE", (draw(st.sampled_from(["office", "provider"])), {}))
        else:
            naming = self.name_resource()
            self.resource(draw(st.sampled_from(["UPSERT", "UPSERT", "CREATE"])), naming)
            self.resource(draw(st.sampled_from(ACTIONS)), naming)


def publish(raws: list[JSON]) -> tuple[ChangeEvent, ...]:
    """Parse and resolve raw events as publish does; the generator makes only valid ones."""
    parsed: list[ChangeEvent] = []
    for raw in raws:
        event = parse_event(raw, new_event_id=lambda: "unused", now=NOW)
        assert isinstance(event, ChangeEvent), (raw.get("eventId"), event)
        parsed.append(event)
    assignment = assign_ids(parsed, known_refs={}, known_event_ids={}, new_id=generated_ids())
    assert not assignment.errors, assignment.errors
    return assignment.events


@st.composite
def scenarios(
    draw: Draw,
    *,
    min_steps: int = 1,
    max_steps: int = 10,
    max_batch: int = 3,
    invalid: bool = True,
    meta_always: bool = False,
) -> Scenario:
    """A starting state and a stream of published events.

    Args:
        min_steps, max_steps: how many generation steps (a step adds one to three events).
        max_batch: the largest atomic batch (0: none).
        invalid: whether payloads the profile refuses may appear.
        meta_always: whether every write carries its own `meta.createdAt` (by default about half
            name none, so a write may leave a stored createdAt to the Registry).
    """
    start = draw(starts())
    stream = _Stream(draw, invalid, meta_always)
    for _ in range(draw(st.integers(min_steps, max_steps))):
        stream.step(max_batch)
    return Scenario(start, publish(stream.raws), frozenset(stream.invalid))
