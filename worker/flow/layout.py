"""A reserved bundle's layout: enough to rebuild exactly the request planned, from stored events.

The record keeps, per operation, its action and its events (id and publish seq, carrier last);
the events' bodies stay in their own hashes. Rebuilt with the core's `plan_op`, the bundle is the
one planned (a test checks it byte for byte), so a poll or a recovery in another process reads
the receipts against the operations that were really sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from api_client.models import Action, dump_json
from worker.domain.coalesce import Role
from worker.domain.events import ChangeEvent
from worker.domain.ops import PlannedEvent, PlannedOp, bundle_request, plan_op
from worker.domain.plan import BundlePlan

__all__ = ["LayoutError", "encode_layout", "layout_event_ids", "rebuild_bundle"]


class LayoutError(ValueError):
    """A stored layout that cannot be rebuilt (an event body is missing or the layout is bad)."""


def _ops(ops: Sequence[PlannedOp], seqs: Mapping[str, int]) -> list[list[Any]]:
    return [[op.action.value, [[e.event_id, seqs[e.event_id]] for e in op.events]] for op in ops]


def encode_layout(bundle: BundlePlan, seqs: Mapping[str, int]) -> str:
    """The layout of `bundle`, its event positions replaced by their publish seqs."""
    layout = {
        "r": _ops(bundle.resource_ops, seqs),
        "l": _ops(bundle.relationship_ops, seqs),
        "i": 1 if bundle.isolated else 0,
    }
    return json.dumps(layout, separators=(",", ":"))


def layout_event_ids(layout: str) -> list[str]:
    """Every event id the layout names, in request order."""
    data = json.loads(layout)
    return [eid for kind in ("r", "l") for _, events in data[kind] for eid, _ in events]


def _rebuild_ops(raw: Sequence[Any], events: Mapping[str, ChangeEvent]) -> tuple[PlannedOp, ...]:
    ops = []
    for action, members in raw:
        last = len(members) - 1
        planned = tuple(
            PlannedEvent(events[eid], int(seq), Role.CARRIER if i == last else Role.SUPERSEDED)
            for i, (eid, seq) in enumerate(members)
        )
        ops.append(plan_op(planned, Action(action)))
    return tuple(ops)


def rebuild_bundle(layout: str, events: Mapping[str, ChangeEvent]) -> BundlePlan:
    """The bundle a layout describes, over the events it names.

    Raises:
        LayoutError: an event is missing, or the layout is not one this module wrote.
    """
    try:
        data = json.loads(layout)
        resource_ops = _rebuild_ops(data["r"], events)
        relationship_ops = _rebuild_ops(data["l"], events)
        isolated = bool(data.get("i"))
    except KeyError as exc:
        raise LayoutError(f"bundle layout: event or field {exc} missing") from None
    except (TypeError, ValueError) as exc:
        raise LayoutError(f"bundle layout unreadable ({type(exc).__name__})") from None
    request = bundle_request(resource_ops, relationship_ops)
    size = len(dump_json(request))
    return BundlePlan(0, resource_ops, relationship_ops, request, size, isolated)
