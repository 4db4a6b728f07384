"""Bulk mode in a flush: bulk buffers planned as bulk requests, the other mode deferred, layouts."""

from __future__ import annotations

import itertools
import json

import pytest

from api_client.models import dump_json
from worker.domain.bulk import BulkRequestPlan, plan_bulk
from worker.domain.coalesce import CoalesceMode
from worker.domain.events import Target
from worker.domain.plan import BundlePlan, PlanCaps
from worker.flow.layout import LayoutError, encode_layout, layout_event_ids, rebuild_bundle
from worker.flow.selection import select_bundles, travels_in_bulk
from worker.store.codec import event_from_json
from worker.store.keys import bulk_group
from worker.store.records import GroupRead, Snapshot

from .builders import candidate, link, resource

BULK = bulk_group("load")


def new_ids():
    counter = itertools.count(1)
    return lambda: f"b{next(counter)}"


def select(cands, groups):
    snap = Snapshot(100, tuple(groups), (), {}, {})
    return select_bundles(
        snap, cands, caps=PlanCaps(), mode=CoalesceMode.SUPERSEDE, new_id=new_ids()
    )


def test_bulk_selection_plans_bulk_buffers_as_bulk_requests_resources_first():
    cands = [
        candidate(link(office="o1", provider="p1"), 1, BULK),
        candidate(resource("UPSERT", "office", "o1"), 2, BULK),
        candidate(resource("UPSERT", id_="p2"), 3, BULK),
    ]

    chosen = select(cands, [GroupRead(BULK, 3, 3)])

    every = chosen.bundles + chosen.followers
    assert all(isinstance(b.plan, BulkRequestPlan) for b in every)
    assert [(getattr(b.plan, "target", None), b.event_ids) for b in every] == [
        (Target.RELATIONSHIP, (cands[0].event_id,)),
        (Target.RESOURCE, (cands[1].event_id, cands[2].event_id)),
    ]
    # the office write comes after the relationship published before it: a follower
    assert [b.event_ids for b in chosen.followers] == [(cands[1].event_id, cands[2].event_id)]


def test_bulk_selection_defers_the_other_mode_and_what_shares_its_resources():
    cands = [
        candidate(resource("UPSERT", id_="p1"), 1, BULK),
        candidate(resource("UPSERT", id_="p2"), 2, "live"),
        candidate(link(office="o1", provider="p2"), 3, BULK),
        candidate(resource("UPSERT", id_="p3"), 4, BULK),
    ]

    chosen = select(cands, [GroupRead(BULK, 3, 3), GroupRead("live", 1, 1)])

    sent = [eid for b in chosen.bundles + chosen.followers for eid in b.event_ids]
    assert sorted(sent) == sorted([cands[0].event_id, cands[3].event_id])
    assert all(isinstance(b.plan, BulkRequestPlan) for b in chosen.bundles)
    assert chosen.held == 2
    assert {g.group: g.hint for g in chosen.groups} == {BULK: "now", "live": "now"}


def test_bulk_selection_plans_bundles_when_the_first_free_event_is_bundle_mode():
    cands = [
        candidate(resource("UPSERT", id_="p1"), 1, "live"),
        candidate(resource("UPSERT", id_="p2"), 2, BULK),
    ]

    chosen = select(cands, [GroupRead(BULK, 1, 1), GroupRead("live", 1, 1)])

    assert [type(b.plan) for b in chosen.bundles] == [BundlePlan]
    assert [b.event_ids for b in chosen.bundles] == [(cands[0].event_id,)]
    assert chosen.held == 1


def test_bulk_selection_an_atomic_batch_in_a_bulk_buffer_travels_as_a_bundle():
    batch = candidate(resource("UPSERT", id_="p1", atomicBatch="B"), 1, BULK)
    plain = candidate(resource("UPSERT", id_="p2"), 2, BULK)

    assert travels_in_bulk(plain)
    assert not travels_in_bulk(batch)
    chosen = select([batch], [GroupRead(BULK, 1, 1)])
    assert [type(b.plan) for b in chosen.bundles] == [BundlePlan]


def test_bulk_layout_rebuilds_exactly_the_bulk_request_planned():
    events = [link(office="o1", provider="p1"), link(office="o2", provider="p1")]
    (request,) = plan_bulk(events).requests
    seqs = {e.event_id: 5 + i for i, e in enumerate(events)}

    layout = encode_layout(request, seqs)
    rebuilt = rebuild_bundle(layout, {e.event_id: event_from_json(e.to_json()) for e in events})

    assert isinstance(rebuilt, BulkRequestPlan)
    assert rebuilt.target is Target.RELATIONSHIP
    assert dump_json(rebuilt.request) == dump_json(request.request)
    assert rebuilt.size_bytes == request.size_bytes
    assert layout_event_ids(layout) == [e.event_id for e in events]


def test_bulk_layout_with_both_kinds_is_refused():
    event = resource()
    op = ["UPSERT", [[event.event_id, 1]]]
    layout = json.dumps({"r": [op], "l": [op], "k": "bulk", "t": "resource"})

    with pytest.raises(LayoutError, match="one kind"):
        rebuild_bundle(layout, {event.event_id: event})
