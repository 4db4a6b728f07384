"""The metrics collector against fakeredis: names, values and labels from the stored counters."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import fakeredis
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from worker.metrics import BACKLOG_METRIC, BacklogCollector, metrics_registry
from worker.results import backlog
from worker.settings import IngestSettings
from worker.store import Store, keys

ROOT = Path(__file__).resolve().parents[3]
HOUR_MS = 3_600_000
PAUSE_REASON = "RateLimitedError 429 RATE_LIMITED"


def _now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def store(server: fakeredis.FakeServer) -> Store:
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    return Store(client, IngestSettings())


def _seed(store: Store) -> None:
    """Two sources as the scripts leave them: counters, a poll schedule, dead letters, a pause."""
    client = store.client
    now = _now_ms()
    client.sadd(keys.SOURCES, "hospital-a", "lab-b")
    a = keys.SourceKeys("hospital-a")
    client.hset(a.stats, mapping={"buffered": 7, "inflight": 5, "bundles": 2, "stale": 1})
    client.hset(a.stats, mapping={"parked": 1, "pev": 2, "blocked": 3})
    client.zadd(a.polls, {"b-1": now - 1000, "b-2": now - 10, "b-3": now + HOUR_MS})
    client.xadd(a.dlq, {"stage": "record", "eventId": "e-1"})
    client.xadd(a.dlq, {"stage": "record", "eventId": "e-2"})
    b = keys.SourceKeys("lab-b")
    client.hset(b.stats, mapping={"buffered": 3, "inflight": 0, "bundles": 0})
    client.hset(
        keys.pause_key("lab-b"),
        mapping={"kind": "throttled", "reason": PAUSE_REASON, "until": now + HOUR_MS},
    )
    client.xadd(keys.INVALID_DLQ, {"stage": "publish", "sourceKey": "_invalid"})


def _scrape(store: Store) -> str:
    return generate_latest(metrics_registry(store)).decode()


def _samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(name, sorted labels) -> value, for every sample of the body."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def _value(body: str, name: str, **labels: str) -> float:
    return _samples(body)[(name, tuple(sorted(labels.items())))]


def test_backlog_gauge_is_exactly_the_autoscaling_signal(store: Store) -> None:
    _seed(store)

    body = _scrape(store)

    # buffered + in flight + parked + blocked + due polls: (7 + 3 + 2 + 3 + 2) for hospital-a,
    # (3 + 0 + 0 + 0 + 0) for lab-b
    assert _value(body, BACKLOG_METRIC) == 20
    assert _value(body, BACKLOG_METRIC) == backlog(store).total
    assert _value(body, "clinia_ingest_source_backlog", source="hospital-a") == 17
    assert _value(body, "clinia_ingest_source_backlog", source="lab-b") == 3


def test_per_source_counters_carry_their_stored_values(store: Store) -> None:
    _seed(store)

    body = _scrape(store)

    expected = {
        "clinia_ingest_buffered_events": (7, 3),
        "clinia_ingest_in_flight_events": (3, 0),  # the parked bundle's 2 events apart
        "clinia_ingest_due_polls": (2, 0),  # the poll due in an hour is not counted
        "clinia_ingest_stale_tasks": (1, 0),
        "clinia_ingest_parked_bundles": (1, 0),
        "clinia_ingest_parked_events": (2, 0),
        "clinia_ingest_blocked_events": (3, 0),
        "clinia_ingest_bundles_in_flight": (2, 0),
    }
    for name, (hospital, lab) in expected.items():
        assert _value(body, name, source="hospital-a") == hospital, name
        assert _value(body, name, source="lab-b") == lab, name


def test_dead_letters_are_counted_per_stream_with_the_invalid_one(store: Store) -> None:
    _seed(store)

    body = _scrape(store)

    assert _value(body, "clinia_ingest_dead_letters", source="hospital-a") == 2
    assert _value(body, "clinia_ingest_dead_letters", source="lab-b") == 0
    assert _value(body, "clinia_ingest_dead_letters", source=keys.INVALID_SOURCE) == 1


def test_pauses_show_one_stable_series_per_kind(store: Store) -> None:
    _seed(store)

    body = _scrape(store)

    paused = {
        labels: value
        for (name, labels), value in _samples(body).items()
        if name == "clinia_ingest_source_paused"
    }
    assert paused == {
        (("kind", kind), ("source", source)): float(source == "lab-b" and kind == "throttled")
        for source in ("hospital-a", "lab-b")
        for kind in ("auth", "unreachable", "throttled", "config")
    }


def test_an_ended_pause_reads_as_not_paused(store: Store) -> None:
    _seed(store)
    store.client.hset(keys.pause_key("lab-b"), "until", _now_ms() - 1)

    body = _scrape(store)

    assert _value(body, "clinia_ingest_source_paused", source="lab-b", kind="throttled") == 0


def test_every_metric_is_a_prefixed_gauge_labelled_by_source_and_kind_only(store: Store) -> None:
    _seed(store)

    families = list(text_string_to_metric_families(_scrape(store)))

    assert families
    assert all(f.name.startswith("clinia_ingest_") for f in families)
    assert {f.type for f in families} == {"gauge"}
    label_names = {name for f in families for s in f.samples for name in s.labels}
    assert label_names == {"source", "kind"}


def test_no_payload_or_pause_reason_reaches_the_output(store: Store) -> None:
    _seed(store)
    a = keys.SourceKeys("hospital-a")
    store.client.xadd(a.dlq, {"event": json.dumps({"data": {"name": "Jane Roe"}})})

    body = _scrape(store)

    assert "Jane Roe" not in body
    assert PAUSE_REASON not in body
    assert _value(body, "clinia_ingest_dead_letters", source="hospital-a") == 3


def test_backlog_comes_first_and_no_other_name_starts_with_it(store: Store) -> None:
    # KEDA's metrics-api scaler before 2.18 takes the first sample line whose name starts with
    # the one asked for; the total must be that line.
    _seed(store)

    lines = [line for line in _scrape(store).splitlines() if line and not line.startswith("#")]

    assert lines[0] == f"{BACKLOG_METRIC} 20.0"
    assert [line for line in lines if line.startswith(BACKLOG_METRIC)] == [lines[0]]


def test_described_families_are_the_collected_ones(store: Store) -> None:
    _seed(store)
    collector = BacklogCollector(store)

    described = [family.name for family in collector.describe()]
    collected = [family.name for family in text_string_to_metric_families(_scrape(store))]

    assert described == collected


def test_a_name_filter_serves_the_backlog_alone(store: Store) -> None:
    # Prometheus's `?name[]=` filter, which relies on the described names
    _seed(store)
    registry = metrics_registry(store)

    body = generate_latest(registry.restricted_registry([BACKLOG_METRIC])).decode()

    assert [name for name, _ in _samples(body)] == [BACKLOG_METRIC]
    assert _value(body, BACKLOG_METRIC) == 20


def test_an_empty_store_reads_zero_with_redis_up_and_no_ticker(store: Store) -> None:
    body = _scrape(store)

    assert _value(body, BACKLOG_METRIC) == 0
    assert _value(body, "clinia_ingest_redis_up") == 1
    assert _value(body, "clinia_ingest_ticker_up") == 0
    assert _value(body, "clinia_ingest_dead_letters", source=keys.INVALID_SOURCE) == 0


def test_ticker_up_follows_the_ticker_key(store: Store) -> None:
    store.set_backlog(0, ttl_ms=10_000)

    assert _value(_scrape(store), "clinia_ingest_ticker_up") == 1


def test_unreadable_redis_leaves_the_backlog_out_instead_of_reporting_zero(
    store: Store, server: fakeredis.FakeServer
) -> None:
    _seed(store)
    server.connected = False

    body = _scrape(store)

    names = {name for name, _ in _samples(body)}
    assert _value(body, "clinia_ingest_redis_up") == 0
    assert BACKLOG_METRIC not in names
    assert "clinia_ingest_source_backlog" not in names


def test_the_collector_recovers_when_redis_comes_back(
    store: Store, server: fakeredis.FakeServer
) -> None:
    _seed(store)
    registry = metrics_registry(store)
    server.connected = False
    generate_latest(registry)
    server.connected = True

    body = generate_latest(registry).decode()

    assert _value(body, "clinia_ingest_redis_up") == 1
    assert _value(body, BACKLOG_METRIC) == 20


def test_worker_metrics_imports_neither_celery_nor_httpx() -> None:
    probe = (
        "import json, sys, worker.metrics; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(completed.stdout))

    assert "prometheus_client" in loaded
    assert not loaded & {"celery", "kombu", "billiard", "httpx"}
