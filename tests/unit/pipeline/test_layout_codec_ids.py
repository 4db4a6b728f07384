"""Stored forms: bundle layouts rebuild the bytes planned, events decode to what was published,
and ids are in the Registry's pattern."""

from __future__ import annotations

import json

import pytest

from api_client.ids import GENERATED_ID_LENGTH, is_resource_id
from api_client.models import dump_json
from worker.domain.foresight import Foresight, Prior
from worker.domain.plan import plan_bundles
from worker.flow.layout import LayoutError, encode_layout, layout_event_ids, rebuild_bundle
from worker.flow.planning import bundle_locks
from worker.ids import IdSource
from worker.store.codec import compact, event_from_json, event_from_mapping

from .builders import link, resource


def test_layout_rebuilds_exactly_the_request_planned():
    events = [
        resource("CREATE", id_="p1", generatedId=True),
        resource("UPSERT", id_="p1"),
        resource("UPSERT", "office", "o1", meta={"createdAt": "2024-01-01T00:00:00Z"}),
        link(),
    ]
    (bundle,) = plan_bundles(events).bundles
    seqs = {e.event_id: 10 + i for i, e in enumerate(events)}

    layout = encode_layout(bundle, seqs)
    rebuilt = rebuild_bundle(layout, {e.event_id: event_from_json(e.to_json()) for e in events})

    assert dump_json(rebuilt.request) == dump_json(bundle.request)
    assert [op.event_ids for op in rebuilt.ops] == [op.event_ids for op in bundle.ops]
    assert [e.position for op in rebuilt.ops for e in op.events] == [10, 11, 12, 13]
    assert layout_event_ids(layout) == [e.event_id for e in events]
    assert bundle_locks(rebuilt) == bundle_locks(bundle)


def test_layout_keeps_what_foresight_expected_of_each_operation():
    events = [resource("DELETE", id_="p9"), resource("UPSERT", id_="p2")]
    (bundle,) = plan_bundles(events, foresight=Foresight()).bundles
    assert [op.prior for op in bundle.ops] == [Prior.GUESS, None]
    seqs = {e.event_id: i for i, e in enumerate(events)}

    layout = encode_layout(bundle, seqs)
    rebuilt = rebuild_bundle(layout, {e.event_id: event_from_json(e.to_json()) for e in events})

    assert [op.prior for op in rebuilt.ops] == [Prior.GUESS, None]
    assert dump_json(rebuilt.request) == dump_json(bundle.request)
    assert layout_event_ids(layout) == [e.event_id for e in events]


def test_layout_with_a_missing_event_is_refused():
    event = resource()
    (bundle,) = plan_bundles([event]).bundles

    with pytest.raises(LayoutError, match="missing"):
        rebuild_bundle(encode_layout(bundle, {event.event_id: 1}), {})


@pytest.mark.parametrize(
    "event",
    [
        resource(),
        resource("DELETE", "office", "o1"),
        resource("CREATE", id_="x1", generatedId=True, ref="new-1", group="g", atomicBatch="b"),
        link(occurredAt="2026-11-22T10:00:00Z", meta={"createdAt": "2024-01-01T00:00:00Z"}),
    ],
)
def test_codec_decodes_a_stored_body_to_the_published_event(event):
    decoded = event_from_json(event.to_json())

    assert decoded == event
    assert decoded.to_json() == event.to_json()


def test_codec_refuses_a_body_it_did_not_write():
    with pytest.raises(ValueError, match="unreadable"):
        event_from_json('{"eventId": "x"}')
    with pytest.raises(ValueError, match="unreadable"):
        event_from_json("not json")


def test_codec_compact_drops_nulls_for_lua():
    assert compact({"a": None, "b": [1, {"c": None, "d": "x"}]}) == '{"b":[1,{"d":"x"}]}'


def test_ids_are_registry_ids_ordered_by_time():
    bits = iter([5, 1, 2])
    now = iter([1_700_000_000.0, 1_700_000_000.0, 1_700_000_001.0])
    source = IdSource(clock=lambda: next(now), random_bits=lambda n: next(bits))

    first, second, third = source(), source(), source()

    assert len(first) == GENERATED_ID_LENGTH
    assert all(is_resource_id(i) for i in (first, second, third))
    assert first != second
    assert second < third < "z" * 27


def test_ids_from_the_default_source_do_not_repeat():
    source = IdSource()
    assert len({source() for _ in range(1000)}) == 1000


@pytest.mark.parametrize(
    "event",
    [
        resource("CREATE", id_="p1", generatedId=True, meta={"createdAt": "2024-01-01T00:00:00Z"}),
        link(group="g", occurredAt="2024-01-01T00:00:00Z", atomicBatch="B"),
        resource("DELETE", id_="p2"),
    ],
)
def test_codec_fast_construct_makes_the_model_construct_instance(event):
    raw = json.loads(event.to_json())
    decoded = event_from_mapping(raw)
    reference = type(event).model_construct(**dict(decoded.__dict__))

    assert decoded == reference == event
    assert decoded.model_fields_set == reference.model_fields_set
    assert decoded.to_json() == event.to_json()
    assert decoded.from_ == event.from_
