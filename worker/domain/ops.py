"""Planned operations: one Registry operation and the events whose fate it carries.

An operation is built from its carrier event (the latest) and the action the coalescing table
chose; every event keeps its publish position and role, so that a receipt can be turned into one
outcome per event. An operation is kept as the JSON it sends (compact, UTF-8), built once from
the carrier's fields without a model round trip, and a bundle's body is those bytes joined: what
the planner counts is exactly what goes on the wire (`api_client.models` parses it back, for
whoever needs the model).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

from api_client.models import (
    Action,
    BundleRequest,
    ErrorType,
    RelationshipOperation,
    ResourceOperation,
    dump_json,
)
from worker.domain.coalesce import Role
from worker.domain.events import ChangeEvent, Target
from worker.domain.foresight import Prior
from worker.domain.keys import EntityKey, RelationshipKey, ResourceKey, key_of

Operation = ResourceOperation | RelationshipOperation
"""Either kind of Registry operation."""

EMPTY_BUNDLE_BYTES: Final = len(dump_json(BundleRequest()))
"""The bytes of a bundle with no operation; each operation adds its own bytes and a comma."""

_COMPACT: Final = {"separators": (",", ":"), "ensure_ascii": False}


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
    wire: bytes
    """The operation exactly as sent: `{"action":...,"<action>":<payload>}`, compact UTF-8."""
    expected_error: ErrorType | None = None
    prior: Prior | None = None
    """Why foresight expected it to fail when it was planned (`domain.foresight`), if it did:
    its answer then tells whether that kind of expectation holds for the source."""

    @property
    def set_apart(self) -> bool:
        """Whether foresight set it apart as an expected failure (a trusted kind gave it its
        expected error)."""
        return self.prior is not None and self.expected_error is not None

    @property
    def size_bytes(self) -> int:
        """Its bytes in a request (a comma apart)."""
        return len(self.wire)

    @cached_property
    def operation(self) -> Operation:
        """The operation as the client's model (parsed from the bytes sent; off the hot path)."""
        if isinstance(self.key, ResourceKey):
            return ResourceOperation.model_validate_json(self.wire)
        return RelationshipOperation.model_validate_json(self.wire)

    @cached_property
    def payload(self) -> Mapping[str, Any]:
        """The payload sent (its `data`, `contained`...), decoded (off the hot path)."""
        decoded: dict[str, Any] = json.loads(self.wire)[self.action.value.lower()]
        return decoded

    @property
    def target(self) -> Target:
        """Whether the operation writes a resource or a relationship."""
        return Target.RESOURCE if type(self.key) is ResourceKey else Target.RELATIONSHIP

    @property
    def carrier(self) -> PlannedEvent:
        """The event whose payload is sent."""
        return self.events[-1]

    @property
    def event_ids(self) -> tuple[str, ...]:
        """The ids of the events whose fate this operation carries."""
        return tuple(e.event.event_id for e in self.events)

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


def without_none(value: Any) -> Any:
    """`value` with every None dropped from its mappings, at any depth (tuples become lists):
    the shape a model dumps with `exclude_none`, and what Lua (which has no null) can take."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or kind is float:
        return value  # the leaves, most values: no ABC check for them
    if kind is dict or isinstance(value, Mapping):
        return {str(k): without_none(v) for k, v in value.items() if v is not None}
    if kind is list or kind is tuple or isinstance(value, list | tuple):
        return [without_none(v) for v in value]
    return value


def payload_of(carrier: ChangeEvent, action: Action) -> dict[str, Any]:
    """The Registry payload sending `carrier` under `action`, as plain JSON values.

    Shaped as the client's models dump it (camelCase, no nulls outside `data` and `contained`),
    so the Registry reads what `api_client.models` would have sent.

    Raises:
        ValueError: the event is unresolved, or a resource write carries no data.
    """
    key = key_of(carrier)
    if isinstance(key, ResourceKey):
        if action is Action.DELETE:
            return {"id": key.id, "type": key.type}
        if carrier.data is None:
            raise ValueError("data: a resource CREATE or UPSERT needs data")
        payload: dict[str, Any] = {"type": key.type, "id": key.id, "data": carrier.data}
        if carrier.contained is not None:
            payload["contained"] = carrier.contained
    else:
        payload = {
            "type": key.type,
            "from": {"id": key.from_id, "type": key.from_type},
            "to": {"id": key.to_id, "type": key.to_type},
        }
        if action is Action.DELETE:
            return payload
        if carrier.data is not None:
            payload["data"] = carrier.data
    if carrier.meta is not None:
        payload["meta"] = without_none(carrier.meta)
    return payload


def _payload_from_stored(carrier: ChangeEvent, action: Action, content: str, key: EntityKey) -> str:
    """`payload_of` as JSON, joined from the stored `data`/`contained` JSON without decoding it.

    The same text as `json.dumps(payload_of(...))`: the keys in the same order, and type keys and
    ids need no escaping (they match ASCII patterns without quotes or backslashes).
    """
    if isinstance(key, ResourceKey):
        if action is Action.DELETE:
            return f'{{"id":"{key.id}","type":"{key.type}"}}'
        if not content.startswith('{"data":'):
            raise ValueError("data: a resource CREATE or UPSERT needs data")
        head = f'{{"type":"{key.type}","id":"{key.id}"'
    else:
        ends = (
            f'"from":{{"id":"{key.from_id}","type":"{key.from_type}"}},'
            f'"to":{{"id":"{key.to_id}","type":"{key.to_type}"}}'
        )
        head = f'{{"type":"{key.type}",{ends}'
        if action is Action.DELETE:
            return head + "}"
    body = head if content == "{}" else f"{head},{content[1:-1]}"
    if carrier.meta is not None:
        body += ',"meta":' + json.dumps(without_none(carrier.meta), **_COMPACT)  # type: ignore[arg-type]
    return body + "}"


def operation_json(carrier: ChangeEvent, action: Action, key: EntityKey | None = None) -> bytes:
    """The operation sending `carrier`'s payload under `action`, as the bytes sent.

    An event read from the store keeps its `data` and `contained` as stored JSON, which goes into
    the operation as it is (`_payload_from_stored`); a planner never decodes nor encodes them.
    `key` is the carrier's, when the caller has it already.

    Raises:
        ValueError: the event is unresolved, or a resource write carries no data.
    """
    content = carrier.stored_content
    if content is not None:
        payload = _payload_from_stored(carrier, action, content, key or key_of(carrier))
    else:
        payload = json.dumps(payload_of(carrier, action), **_COMPACT)  # type: ignore[arg-type]
    name = action.value
    return f'{{"action":"{name}","{name.lower()}":{payload}}}'.encode()


def plan_op(
    events: tuple[PlannedEvent, ...],
    action: Action,
    expected_error: ErrorType | None = None,
    key: EntityKey | None = None,
    prior: Prior | None = None,
) -> PlannedOp:
    """A planned operation over `events` (publish order; the last is the carrier, whose key is
    `key` when the caller has it already)."""
    carrier = events[-1].event
    key = key or key_of(carrier)
    return PlannedOp(
        key=key,
        action=action,
        events=events,
        wire=operation_json(carrier, action, key),
        expected_error=expected_error,
        prior=prior,
    )


def bundle_bytes(resource_sizes: list[int], relationship_sizes: list[int]) -> int:
    """The size of a bundle holding operations of these sizes, without serializing it again."""
    total = EMPTY_BUNDLE_BYTES + sum(resource_sizes) + sum(relationship_sizes)
    return total + max(len(resource_sizes) - 1, 0) + max(len(relationship_sizes) - 1, 0)


def bundle_body(resource_ops: Sequence[PlannedOp], relationship_ops: Sequence[PlannedOp]) -> bytes:
    """The body that sends these operations, each list in order: their bytes joined.

    Raises:
        TypeError: an operation of the wrong kind in a list.
    """
    for op in resource_ops:
        if not isinstance(op.key, ResourceKey):
            raise TypeError(f"{op.key}: a relationship operation among the resource operations")
    for op in relationship_ops:
        if not isinstance(op.key, RelationshipKey):
            raise TypeError(f"{op.key}: a resource operation among the relationship operations")
    return (
        b'{"resourceOperations":['
        + b",".join(op.wire for op in resource_ops)
        + b'],"relationshipOperations":['
        + b",".join(op.wire for op in relationship_ops)
        + b"]}"
    )


def bundle_request(
    resource_ops: Sequence[PlannedOp], relationship_ops: Sequence[PlannedOp]
) -> BundleRequest:
    """The bundle as the client's model (parsed from its body; off the hot path).

    Raises:
        TypeError: an operation of the wrong kind in a list.
    """
    return BundleRequest.model_validate_json(bundle_body(resource_ops, relationship_ops))


def relationship_ends(key: EntityKey) -> tuple[ResourceKey, ...]:
    """The resources an operation on `key` reads but does not write (a relationship's ends)."""
    return key.endpoints if isinstance(key, RelationshipKey) else ()
