"""Planned operations: one Registry operation and the events whose fate it carries.

An operation is built from its carrier event (the latest) and the action the coalescing table
chose; every event keeps its publish position and role, so that a receipt can be turned into one
outcome per event. Sizes are measured with `api_client.models.dump_json`, the client's own
serializer, so that what the planner counts is what goes on the wire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Final

from api_client.models import (
    Action,
    BundleRequest,
    EntityRef,
    ErrorType,
    Meta,
    RelationshipOperation,
    RelationshipPayload,
    ResourceOperation,
    ResourcePayload,
    dump_json,
)
from worker.domain.coalesce import Role
from worker.domain.events import ChangeEvent, Endpoint, Target
from worker.domain.keys import EntityKey, RelationshipKey, ResourceKey, key_of

Operation = ResourceOperation | RelationshipOperation
"""Either kind of Registry operation."""

EMPTY_BUNDLE_BYTES: Final = len(dump_json(BundleRequest()))
"""The bytes of a bundle with no operation; each operation adds its own bytes and a comma."""


@dataclass(frozen=True)
class PlannedEvent:
    """One event inside a planned operation: its publish position and its part in the op."""

    event: ChangeEvent
    position: int
    role: Role

    @property
    def event_id(self) -> str:
        """The event's idempotency key, under which its outcome is stored."""
        return self.event.event_id

    @property
    def action(self) -> Action:
        """The event's own action (the operation's may differ, see the coalescing table)."""
        return self.event.action


@dataclass(frozen=True)
class PlannedOp:
    """One operation of a plan, with the events bound to it in publish order (carrier last)."""

    key: EntityKey
    action: Action
    events: tuple[PlannedEvent, ...]
    operation: Operation
    size_bytes: int
    expected_error: ErrorType | None = None

    @property
    def target(self) -> Target:
        """Whether the operation writes a resource or a relationship."""
        return Target.RESOURCE if isinstance(self.key, ResourceKey) else Target.RELATIONSHIP

    @property
    def carrier(self) -> PlannedEvent:
        """The event whose payload is sent."""
        return self.events[-1]

    @property
    def event_ids(self) -> tuple[str, ...]:
        """The ids of the events whose fate this operation carries."""
        return tuple(e.event_id for e in self.events)

    @property
    def atomic_batch(self) -> str | None:
        """The atomic publish batch of its (single) event, if any."""
        return self.events[0].event.atomic_batch

    @property
    def first_position(self) -> int:
        """The publish position of its earliest event."""
        return self.events[0].position

    @property
    def last_position(self) -> int:
        """The publish position of its latest event."""
        return self.events[-1].position

    @cached_property
    def receipt_key(self) -> tuple[Target, str, str]:
        """(target, type, id) as a receipt names it; a relationship in `from,to` form."""
        if isinstance(self.key, ResourceKey):
            return (Target.RESOURCE, self.key.type, self.key.id)
        return (Target.RELATIONSHIP, self.key.type, self.key.receipt_id)


def is_merged_delete(op: PlannedOp) -> bool:
    """An `UPSERT+ DELETE` operation: refused NOT_FOUND when the entity did not exist before the
    first UPSERT, which only the Registry knows (docs/coalescing.md)."""
    return op.action is Action.DELETE and len(op.events) > 1


def _meta(event: ChangeEvent) -> Meta | None:
    return None if event.meta is None else Meta.model_validate(event.meta)


def _ref(endpoint: Endpoint | None) -> EntityRef:
    if endpoint is None or endpoint.id is None:
        raise ValueError("relationship end: unresolved; assign ids before planning")
    return EntityRef(id=endpoint.id, type=endpoint.type)


def build_operation(carrier: ChangeEvent, action: Action) -> Operation:
    """The Registry operation sending `carrier`'s payload under `action`.

    Raises:
        ValueError: the event is unresolved, or a write carries no data.
    """
    key = key_of(carrier)
    if isinstance(key, ResourceKey):
        if action is Action.DELETE:
            return ResourceOperation.for_delete(key.id, key.type)
        if carrier.data is None:
            raise ValueError("data: a resource CREATE or UPSERT needs data")
        payload = ResourcePayload(
            type=key.type,
            id=key.id,
            data=carrier.data,
            contained=carrier.contained,
            meta=_meta(carrier),
        )
        if action is Action.CREATE:
            return ResourceOperation.for_create(payload)
        return ResourceOperation.for_upsert(payload)
    from_, to = _ref(carrier.from_), _ref(carrier.to)
    if action is Action.DELETE:
        return RelationshipOperation.for_delete(key.type, from_, to)
    rel_payload = RelationshipPayload(
        type=key.type, from_=from_, to=to, data=carrier.data, meta=_meta(carrier)
    )
    if action is Action.CREATE:
        return RelationshipOperation.for_create(rel_payload)
    return RelationshipOperation.for_upsert(rel_payload)


def plan_op(
    events: tuple[PlannedEvent, ...], action: Action, expected_error: ErrorType | None = None
) -> PlannedOp:
    """A planned operation over `events` (publish order; the last is the carrier)."""
    carrier = events[-1].event
    operation = build_operation(carrier, action)
    return PlannedOp(
        key=key_of(carrier),
        action=action,
        events=events,
        operation=operation,
        size_bytes=len(dump_json(operation)),
        expected_error=expected_error,
    )


def bundle_bytes(resource_sizes: list[int], relationship_sizes: list[int]) -> int:
    """The size of a bundle holding operations of these sizes, without serializing it again."""
    total = EMPTY_BUNDLE_BYTES + sum(resource_sizes) + sum(relationship_sizes)
    return total + max(len(resource_sizes) - 1, 0) + max(len(relationship_sizes) - 1, 0)


def bundle_request(
    resource_ops: Sequence[PlannedOp], relationship_ops: Sequence[PlannedOp]
) -> BundleRequest:
    """The request that sends these operations, each list in order.

    Raises:
        TypeError: an operation of the wrong kind in a list.
    """
    resources: list[ResourceOperation] = []
    for op in resource_ops:
        if not isinstance(op.operation, ResourceOperation):
            raise TypeError(f"{op.key}: a relationship operation among the resource operations")
        resources.append(op.operation)
    relationships: list[RelationshipOperation] = []
    for op in relationship_ops:
        if not isinstance(op.operation, RelationshipOperation):
            raise TypeError(f"{op.key}: a resource operation among the relationship operations")
        relationships.append(op.operation)
    return BundleRequest(resource_operations=resources, relationship_operations=relationships)


def relationship_ends(key: EntityKey) -> tuple[ResourceKey, ...]:
    """The resources an operation on `key` reads but does not write (a relationship's ends)."""
    return key.endpoints if isinstance(key, RelationshipKey) else ()
