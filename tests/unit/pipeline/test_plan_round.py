"""One planning round, pure: the bundles (or bulk requests) of what was read, each with the earlier
bundles of its plan it must follow, and bulk layouts that rebuild the bytes planned."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from typing import Any, cast

import pytest

from api_client.models import dump_json
from worker.domain.bulk import BulkRequestPlan, plan_bulk
from worker.domain.events import ChangeEvent, Target
from worker.domain.keys import key_of, resources_touched
from worker.domain.plan import BundlePlan, PlanCaps, bundle_of_ops
from worker.flow.deps import Deps
from worker.flow.layout import LayoutError, encode_layout, layout_event_ids, rebuild_bundle
from worker.flow.planning import (
    PlannedBundle,
    blocked_events,
    plan_events,
    plan_rest,
    plan_round,
)
from worker.settings import IngestSettings
from worker.store.codec import event_from_json
from worker.store.records import ReadEvent, ReadRound

from .builders import link, resource


def deps(**settings: Any) -> Deps:
    counter = itertools.count(1)
    unused = cast(Any, None)
    values: dict[str, Any] = {"api_key": "k", **settings}
    return Deps(IngestSettings(**values), unused, unused, new_id=lambda: f"b{next(counter)}")


def round_of(*events: ChangeEvent, bulk: bool = False) -> ReadRound:
    read = []
    for seq, event in enumerate(events, start=1):
        key = key_of(event)
        head, content = event.stored_parts()
        read.append(
            ReadEvent(event.event_id, seq, json.loads(head), content, str(key),
                      tuple(str(r) for r in resources_touched(key)), event.group or "g")
        )  # fmt: skip
    return ReadRound(events=tuple(read), token="t", bulk=bulk)


def planned(*events: ChangeEvent, bulk: bool = False, **settings: Any) -> list[PlannedBundle]:
    planned_round = plan_round(deps(**settings), "src", round_of(*events, bulk=bulk))
    assert planned_round.rejected == []
    assert planned_round.blocked == []
    return planned_round.bundles


def test_plan_round_independent_bundles_follow_nothing():
    bundles = planned(resource(id_="p1"), resource(id_="p2"), resource(id_="p3"), max_bundle_ops=1)

    assert [b.commit.after for b in bundles] == [(), (), ()]
    assert all(b.commit.claim for b in bundles)


def test_plan_round_successive_changes_of_an_entity_follow_each_other():
    bundles = planned(resource("CREATE", id_="p1"), resource("DELETE", id_="p1"),
                      resource("CREATE", id_="p1"))  # fmt: skip

    ids = [b.commit.bundle_id for b in bundles]
    assert [b.commit.after for b in bundles] == [(), (ids[0],), (ids[1],)]


def test_plan_round_relationships_on_one_office_do_not_follow_each_other_but_its_write_does():
    first = link(office="o1", provider="p1")
    second = link(office="o1", provider="p2")
    office = resource("UPSERT", "office", "o1")

    bundles = planned(first, second, office, max_bundle_ops=1)

    ids = [b.commit.bundle_id for b in bundles]
    assert [b.commit.event_ids for b in bundles] == [
        (first.event_id,),
        (second.event_id,),
        (office.event_id,),
    ]
    assert bundles[0].commit.after == ()
    assert bundles[1].commit.after == ()
    assert set(bundles[2].commit.after) == {ids[0], ids[1]}
    assert bundles[0].commit.reads == ("res:src:office:o1", "res:src:provider:p1")
    assert bundles[2].commit.writes == ("res:src:office:o1",)


def test_plan_round_keeps_the_groups_events_named_and_their_seqs_in_the_layout():
    a = resource(id_="p1", group="west")
    b = resource(id_="p2", group="east")

    (bundle,) = planned(a, b)

    assert bundle.commit.groups == ("east", "west")
    assert layout_event_ids(bundle.commit.layout) == [a.event_id, b.event_id]
    assert json.loads(bundle.commit.layout)["r"][1][1] == [[b.event_id, 2]]


def test_plan_round_bulk_round_plans_bulk_requests_resources_after_the_relationship_before():
    rel = link(office="o1", provider="p1")
    office = resource("UPSERT", "office", "o1")
    other = resource("UPSERT", id_="p2")

    bundles = planned(rel, office, other, bulk=True)

    assert all(isinstance(b.plan, BulkRequestPlan) for b in bundles)
    assert [(getattr(b.plan, "target", None), b.commit.event_ids) for b in bundles] == [
        (Target.RELATIONSHIP, (rel.event_id,)),
        (Target.RESOURCE, (office.event_id, other.event_id)),
    ]
    assert bundles[1].commit.after == (bundles[0].commit.bundle_id,)


def test_plan_round_atomic_batch_travels_as_one_bundle():
    batch = [resource(id_="p1", atomicBatch="B"), resource(id_="p2", atomicBatch="B")]

    (bundle,) = planned(*batch)

    assert isinstance(bundle.plan, BundlePlan)
    assert bundle.commit.event_ids == (batch[0].event_id, batch[1].event_id)


def test_plan_round_events_no_bundle_can_carry_are_rejected():
    big = resource(id_="p1", data={"blob": "x" * 5000})
    small = resource(id_="p2")

    planned_round = plan_round(deps(max_bundle_bytes=2000), "src", round_of(big, small))
    bundles, rejected = planned_round.bundles, planned_round.rejected

    assert [r.event_id for r in rejected] == [big.event_id]
    assert json.loads(rejected[0].error)["type"] == "CONTENT_TOO_LARGE"
    assert [b.commit.event_ids for b in bundles] == [(small.event_id,)]


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


def slow_round(
    *events: ChangeEvent,
    slow: dict[str, str],
    virtual: dict[str, tuple[tuple[str, int], ...]] | None = None,
):
    base = round_of(*events)
    return ReadRound(events=base.events, token="t", slow=slow, virtual=virtual or {})


def test_blocked_events_write_of_a_slow_writers_entity_waits_and_so_does_what_touches_it():
    behind = resource(id_="p1")
    link_to_it = link(office="o1", provider="p1")
    office = resource("UPSERT", "office", "o1")
    free = resource(id_="p2")

    blocked = blocked_events(
        slow_round(behind, link_to_it, office, free, slow={"res:src:provider:p1": "x:S"})
    )

    assert blocked == {behind.event_id: "S", link_to_it.event_id: "S", office.event_id: "S"}


def test_blocked_events_a_relationship_may_read_what_a_slow_bundle_only_reads():
    other_link = link(office="o1", provider="p2")
    office_write = resource("UPSERT", "office", "o1")

    blocked = blocked_events(
        slow_round(other_link, office_write, slow={"res:src:office:o1": "s:S"})
    )

    assert blocked == {office_write.event_id: "S"}


def test_blocked_events_virtually_held_keys_block_and_an_atomic_batch_waits_whole():
    first = resource(id_="p3", atomicBatch="B")
    second = resource(id_="p4", atomicBatch="B")
    free = resource(id_="p5")

    blocked = blocked_events(
        slow_round(first, second, free, slow={}, virtual={"res:src:provider:p4": (("S2", 0),)})
    )

    assert blocked == {first.event_id: "S2", second.event_id: "S2"}


def test_blocked_events_an_event_sent_back_before_a_blocked_one_is_not_blocked_by_it():
    sent_back = resource(id_="p6")  # seq 1, back in the log after its bundle was refused
    later = resource(id_="p6")  # seq 2

    blocked = blocked_events(
        slow_round(sent_back, later, slow={}, virtual={"res:src:provider:p6": (("S3", 1),)})
    )

    assert blocked == {later.event_id: "S3"}


def test_plan_round_plans_only_what_is_not_blocked():
    behind = resource(id_="p1")
    free = resource(id_="p2")

    planned_round = plan_round(
        deps(), "src", slow_round(behind, free, slow={"res:src:provider:p1": "x:S"})
    )

    assert [b.commit.event_ids for b in planned_round.bundles] == [(free.event_id,)]
    assert [(b.event_id, b.bundle_id) for b in planned_round.blocked] == [(behind.event_id, "S")]


def _rest(
    bundle: PlannedBundle, *gone: ChangeEvent, apart: bool = False, **caps: Any
) -> list[PlannedBundle] | None:
    """`plan_rest` of a planned bundle whose events `gone` met their fate."""
    assert isinstance(bundle.plan, BundlePlan)
    left = [e for e in bundle.commit.event_ids if e not in {g.event_id for g in gone}]
    read = [ReadEvent(e, seq, {}, "{}", "", ()) for seq, e in enumerate(left, start=1)]
    return plan_rest(deps(), "src", bundle.plan, read, PlanCaps(**caps), apart=apart)


def test_plan_rest_is_the_bundle_without_the_operations_that_met_their_fate():
    office = resource("UPSERT", "office", "o1")
    failing = resource("CREATE", id_="p1")
    other = resource("UPSERT", id_="p2")
    first, second = link(office="o1", provider="p1"), link(office="o1", provider="p2")
    (bundle,) = planned(office, failing, other, first, second)

    rest = _rest(bundle, failing, first)

    assert rest is not None
    (only,) = rest
    assert only.commit.event_ids == (office.event_id, other.event_id, second.event_id)
    assert isinstance(only.plan, BundlePlan)
    assert only.plan.body == bundle_of_ops(0, only.plan.ops).body
    assert only.commit.after == ()
    assert only.commit.claim is False
    assert only.commit.writes == tuple(sorted(str(op.key) for op in only.plan.ops))


def test_plan_rest_apart_sends_each_operation_alone_behind_those_it_conflicts_with():
    office = resource("UPSERT", "office", "o1")
    failing = resource("DELETE", id_="p1")
    other = resource("DELETE", id_="p2")
    first = link(office="o1", provider="p3")
    (bundle,) = planned(office, failing, other, first, foresight=False)

    rest = _rest(bundle, failing, apart=True)

    assert rest is not None
    assert [b.commit.event_ids for b in rest] == [
        (office.event_id,), (other.event_id,), (first.event_id,)
    ]  # fmt: skip
    assert all(isinstance(b.plan, BundlePlan) and b.plan.isolated for b in rest)
    # the link reads the office its first bundle writes: it follows it, the rest follow nothing
    office_bundle = rest[0].commit.bundle_id
    assert [b.commit.after for b in rest] == [(), (), (office_bundle,)]


def test_plan_rest_plans_again_when_part_of_a_merged_operation_goes_again():
    upsert, update = resource("UPSERT", id_="p1"), resource("UPSERT", id_="p1")
    (bundle,) = planned(upsert, update, resource("UPSERT", id_="p2"))
    assert len(bundle.plan.ops[0].events) == 2

    assert _rest(bundle, upsert) is None


def test_plan_rest_plans_again_a_rest_over_the_source_s_shrunk_cap():
    events = [resource("UPSERT", id_=f"p{i}") for i in range(4)]
    (bundle,) = planned(*events)

    assert _rest(bundle, events[0], target_operations=2) is None
    assert _rest(bundle, events[0], target_operations=3) is not None
    assert _rest(bundle, *events) is None  # nothing left to send


def test_plan_round_holds_an_expected_failure_as_such_and_the_rest_plainly():
    # Given p1 known absent (generation 2) and p2 known to exist
    read = replace(
        round_of(resource("DELETE", id_="p1"), resource("CREATE", id_="p2"), resource(id_="p3")),
        known={"res:src:provider:p1": "2", "res:src:provider:p2": "1"},
    )

    bundles = plan_round(deps(), "src", read).bundles

    # Then the DELETE and the CREATE go apart, and later rounds are told they are expected to
    # fail (`?`): while they are in flight, their entities are taken as they were before them
    actions: dict[str, str] = {}
    for b in bundles:
        actions.update(b.commit.actions)
    assert actions == {
        "res:src:provider:p1": "?DELETE",
        "res:src:provider:p2": "?CREATE",
        "res:src:provider:p3": "UPSERT",
    }


def test_plan_events_holds_the_rest_of_a_refused_bundle_of_expected_failures_as_such():
    # Given the rest of a refused bundle of expected failures, sent again as bulk requests
    rest = round_of(resource("DELETE", id_="p1"), resource(id_="p2"), bulk=True).events
    deleting = rest[0].event_id

    bundles, _ = plan_events(deps(), rest, bulk=True, caps=PlanCaps(), expected={deleting})

    # Then what went apart as expected to fail is still held as such (not as a DELETE)
    actions: dict[str, str] = {}
    for b in bundles:
        actions.update(b.commit.actions)
    assert actions == {"res:src:provider:p1": "?DELETE", "res:src:provider:p2": "UPSERT"}
