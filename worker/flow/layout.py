"""A reserved bundle's layout: enough to rebuild exactly the request planned, from stored events.

The record keeps, per operation, its action and its events (id and publish seq, carrier last),
and the kind of failure foresight expected of it, if any (`domain.foresight`: its answer tells
whether that kind holds); the events' bodies stay in their own hashes. Rebuilt with the core's
`plan_op`, the bundle is the one planned (a test checks it byte for byte), so a poll or a
recovery in another process reads the receipts against the operations that were really sent.
A bulk request's layout says so (`"k": "bulk"`) and holds its operations under the key of its
kind, the other list empty.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from api_client.models import Action
from worker.domain.bulk import BulkRequestPlan, bulk_body
from worker.domain.coalesce import Role
from worker.domain.events import ChangeEvent, Target
from worker.domain.foresight import Prior
from worker.domain.ops import PlannedEvent, PlannedOp, plan_op
from worker.domain.plan import BundlePlan, bundle_of_ops

__all__ = [
    "LayoutError",
    "Sendable",
    "encode_layout",
    "layout_event_ids",
    "rebuild_bundle",
    "sendable_event_ids",
]

Sendable = BundlePlan | BulkRequestPlan
"""What one record sends: a bundle, or one bulk request."""


def sendable_event_ids(sendable: Sendable) -> tuple[str, ...]:
    """Every event whose fate a bundle or a bulk request carries, in request order."""
    return tuple(event_id for op in sendable.ops for event_id in op.event_ids)


class LayoutError(ValueError):
    """A stored layout that cannot be rebuilt (an event body is missing or the layout is bad)."""


def _ops(ops: Sequence[PlannedOp], seqs: Mapping[str, int]) -> list[list[Any]]:
    encoded: list[list[Any]] = []
    for op in ops:
        item: list[Any] = [op.action.value, [[e.event_id, seqs[e.event_id]] for e in op.events]]
        if op.prior is not None:
            item.append(op.prior.value)
        encoded.append(item)
    return encoded


def encode_layout(bundle: Sendable, seqs: Mapping[str, int]) -> str:
    """The layout of `bundle`, its event positions replaced by their publish seqs."""
    layout: dict[str, Any] = {
        "r": _ops(bundle.resource_ops, seqs),
        "l": _ops(bundle.relationship_ops, seqs),
    }
    if isinstance(bundle, BulkRequestPlan):
        layout["k"] = "bulk"
        layout["t"] = bundle.target.value
    else:
        layout["i"] = 1 if bundle.isolated else 0
    return json.dumps(layout, separators=(",", ":"))


def layout_event_ids(layout: str) -> list[str]:
    """Every event id the layout names, in request order."""
    data = json.loads(layout)
    return [eid for kind in ("r", "l") for item in data[kind] for eid, _ in item[1]]


def _rebuild_ops(raw: Sequence[Any], events: Mapping[str, ChangeEvent]) -> tuple[PlannedOp, ...]:
    ops = []
    for item in raw:
        action, members = item[0], item[1]
        prior = Prior(item[2]) if len(item) > 2 else None
        last = len(members) - 1
        planned = tuple(
            PlannedEvent(events[eid], int(seq), Role.CARRIER if i == last else Role.SUPERSEDED)
            for i, (eid, seq) in enumerate(members)
        )
        ops.append(plan_op(planned, Action(action), prior=prior))
    return tuple(ops)


def rebuild_bundle(layout: str, events: Mapping[str, ChangeEvent]) -> Sendable:
    """The bundle (or bulk request) a layout describes, over the events it names.

    Raises:
        LayoutError: an event is missing, or the layout is not one this module wrote.
    """
    try:
        data = json.loads(layout)
        resource_ops = _rebuild_ops(data["r"], events)
        relationship_ops = _rebuild_ops(data["l"], events)
        isolated = bool(data.get("i"))
        bulk = data.get("k") == "bulk"
        target = Target(data["t"]) if bulk else None
    except KeyError as exc:
        raise LayoutError(f"bundle layout: event or field {exc} missing") from None
    except (TypeError, ValueError) as exc:
        raise LayoutError(f"bundle layout unreadable ({type(exc).__name__})") from None
    if target is not None:
        ops = resource_ops if target is Target.RESOURCE else relationship_ops
        if not ops or (resource_ops and relationship_ops):
            raise LayoutError("bulk layout: one kind of operations, at least one")
        return BulkRequestPlan(0, target, ops, bulk_body(target, ops))
    return bundle_of_ops(0, resource_ops + relationship_ops, isolated=isolated)
