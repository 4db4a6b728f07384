"""`holding.hold_back`: what waits, and for whom."""

from __future__ import annotations

from worker.flow.holding import Hold, LockView, hold_back

from .builders import candidates, link, resource

P1 = "res:src:provider:p1"
O1 = "res:src:office:o1"


def ids(cands):
    return [c.event_id for c in cands]


def test_holding_resource_written_by_a_bundle_in_flight_waits_for_it():
    cands = candidates(resource(), resource("UPSERT", "office", "o1"))

    free, held = hold_back(cands, LockView(writers={P1: "B1"}))

    assert ids(free) == [cands[1].event_id]
    assert held == {cands[0].event_id: Hold(frozenset({"B1"}))}


def test_holding_resource_referenced_by_a_bundle_in_flight_waits_but_a_relationship_does_not():
    cands = candidates(link(office="o2"), resource())

    free, held = hold_back(cands, LockView(readers={P1: {"R1"}}))

    assert ids(free) == [cands[0].event_id]  # two readers of p1 share it
    assert held[cands[1].event_id].blockers == {"R1"}


def test_holding_relationship_waits_while_a_bundle_writes_an_end():
    cands = candidates(link())

    _, held = hold_back(cands, LockView(writers={O1: "W1"}))

    assert held[cands[0].event_id].blockers == {"W1"}


def test_holding_later_events_touching_what_a_held_event_touches_wait_too():
    # p1 is busy; the relationship o1-p1 waits; then o1's own write, published after it, waits
    cands = candidates(resource(), link(), resource("UPSERT", "office", "o1"), resource(id_="p9"))

    free, held = hold_back(cands, LockView(writers={P1: "B1"}))

    assert ids(free) == [cands[3].event_id]
    assert held[cands[2].event_id].blockers == {"B1"}


def test_holding_earlier_events_are_not_held_by_a_later_held_event():
    cands = candidates(resource("UPSERT", "office", "o1"), link())

    free, _held = hold_back(cands, LockView(writers={"res:src:provider:p1": "B1"}))

    assert ids(free) == [cands[0].event_id]


def test_holding_tainted_resource_holds_without_a_blocker():
    cands = candidates(link(), resource(id_="p7"))

    free, held = hold_back(cands, LockView(), frozenset({O1}))

    assert ids(free) == [cands[1].event_id]
    assert held[cands[0].event_id] == Hold(frozenset(), tainted=True)


def test_holding_atomic_batch_is_held_whole():
    batch = candidates(
        resource(id_="p5", atomicBatch="B"),
        resource(id_="p6", atomicBatch="B"),
        resource(id_="p7"),
    )
    locks = LockView(writers={"res:src:provider:p6": "X"})

    free, held = hold_back(batch, locks)

    assert ids(free) == [batch[2].event_id]
    assert set(held) == {batch[0].event_id, batch[1].event_id}
    assert held[batch[0].event_id].blockers == {"X"}
