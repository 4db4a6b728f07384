"""`selection`: the snapshot cut, taint, ready bundles and followers, and due hints."""

from __future__ import annotations

import itertools

from worker.domain.coalesce import CoalesceMode
from worker.domain.plan import PlanCaps
from worker.flow.selection import cut_to_snapshot, select_bundles, tainted_resources
from worker.store.records import GroupRead, LockState, Snapshot

from .builders import candidate, link, resource

P1 = "res:src:provider:p1"


def snapshot(groups, touch=None, locks=None, seq=100) -> Snapshot:
    return Snapshot(seq, tuple(groups), (), touch or {}, locks or {})


def new_ids():
    counter = itertools.count(1)
    return lambda: f"b{next(counter)}"


def test_selection_cut_drops_what_follows_the_first_unread_event_and_its_batch():
    cands = [
        candidate(resource(id_="p1"), 1, "g1"),
        candidate(resource(id_="p2", atomicBatch="B"), 2, "g1"),
        candidate(resource(id_="p3"), 4, "g2"),
    ]
    snap = snapshot([GroupRead("g1", 3, 2, next_seq=3, next_batch="B"), GroupRead("g2", 1, 1)])

    kept = cut_to_snapshot(snap, cands)

    assert [c.seq for c in kept] == [1]


def test_selection_taints_resources_an_unread_buffer_touches():
    snap = snapshot(
        [GroupRead("g1", 1, 1), GroupRead("g2", 4, 0)],
        touch={P1: {"g1": 1, "g2": 1}, "res:src:office:o1": {"g1": 1}},
    )

    assert tainted_resources(snap) == frozenset({P1})


def test_selection_takes_independent_bundles_now_and_the_rest_as_followers():
    # p1: CREATE then DELETE (successive bundles); p2 independent
    cands = [
        candidate(resource("CREATE", id_="p1"), 1),
        candidate(resource("DELETE", id_="p1"), 2),
        candidate(resource("UPSERT", id_="p2"), 3),
    ]
    snap = snapshot([GroupRead("g", 3, 3)])

    chosen = select_bundles(
        snap, cands, caps=PlanCaps(), mode=CoalesceMode.SUPERSEDE, new_id=new_ids()
    )

    assert [b.event_ids for b in chosen.bundles] == [(cands[0].event_id, cands[2].event_id)]
    assert [b.event_ids for b in chosen.followers] == [(cands[1].event_id,)]
    (hint,) = chosen.groups
    assert (hint.hint, hint.wait) == ("wait", ("b1",))
    assert chosen.bundles[0].writes == ("res:src:provider:p1", "res:src:provider:p2")


def test_selection_locked_entities_are_held_and_their_group_waits_for_the_holder():
    cands = [candidate(resource(id_="p1"), 1), candidate(resource(id_="p2"), 2)]
    snap = snapshot([GroupRead("g", 2, 2)], locks={P1: LockState(writer="OTHER")})

    chosen = select_bundles(
        snap, cands, caps=PlanCaps(), mode=CoalesceMode.SUPERSEDE, new_id=new_ids()
    )

    assert [b.event_ids for b in chosen.bundles] == [(cands[1].event_id,)]
    assert chosen.held == 1
    assert chosen.groups[0].wait == ("OTHER",)


def test_selection_relationship_reads_its_ends_and_writes_itself():
    cands = [candidate(link(), 1)]

    chosen = select_bundles(
        snapshot([GroupRead("g", 1, 1)]), cands, caps=PlanCaps(), mode=CoalesceMode.STRICT,
        new_id=new_ids(),
    )  # fmt: skip

    (chosen_bundle,) = chosen.bundles
    assert chosen_bundle.writes == ("rel:src:provider-office:office:o1:provider:p1",)
    assert chosen_bundle.reads == ("res:src:office:o1", "res:src:provider:p1")


def test_selection_partly_read_buffer_is_due_again_at_once():
    cands = [candidate(resource(id_="p1"), 1)]
    snap = snapshot([GroupRead("g", 5, 1, next_seq=7)])

    chosen = select_bundles(
        snap, cands, caps=PlanCaps(), mode=CoalesceMode.SUPERSEDE, new_id=new_ids()
    )

    assert chosen.groups[0].hint == "now"


def test_selection_unreached_buffer_keeps_its_due_time():
    snap = snapshot([GroupRead("g", 1, 1), GroupRead("unread", 3, 0, next_seq=9)])

    chosen = select_bundles(
        snap, [candidate(resource(), 1)], caps=PlanCaps(), mode=CoalesceMode.SUPERSEDE,
        new_id=new_ids(),
    )  # fmt: skip

    assert [g.group for g in chosen.groups] == ["g"]
