"""`clinia-ingest metrics` over real loopback HTTP against the private Redis: what a scraper sees.

KEDA's metrics-api scaler (format `prometheus`) and Prometheus both read this endpoint; the
lookups below follow theirs: the exact family name since KEDA 2.18, the first line whose name
starts with the one asked for before it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tests.redis_server import free_port
from tests.waiting import wait_for
from worker.metrics import BACKLOG_METRIC, HEALTH_PATH, start_exporter
from worker.producer import open_store
from worker.publisher import publish
from worker.results import backlog
from worker.settings import IngestSettings
from worker.store import Store

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 20.0


def office(event_id: str, source: str, office_id: str) -> dict[str, Any]:
    return {"eventId": event_id, "sourceKey": source, "target": "resource", "action": "UPSERT",
            "type": "office", "id": office_id, "data": {"name": f"Office {office_id}"}}  # fmt: skip


@pytest.fixture
def store(redis_url: str) -> Iterator[Store]:
    opened = open_store(IngestSettings(redis_url=SecretStr(redis_url)))
    yield opened
    opened.client.close()


def keda_exact(body: str, name: str) -> float:
    """KEDA 2.18+: the family of that exact name, its first sample."""
    families = {f.name: f for f in text_string_to_metric_families(body)}
    if name not in families:
        raise LookupError(name)
    return float(families[name].samples[0].value)


def keda_prefix(body: str, name: str) -> float:
    """KEDA 2.14 to 2.17: the first `name value` line whose name starts with `name`."""
    for line in body.splitlines():
        fields = line.split()
        if len(fields) == 2 and not fields[0].startswith("#") and fields[0].startswith(name):
            return float(fields[1])
    raise LookupError(name)


def test_a_scrape_over_http_reports_the_published_backlog(store: Store) -> None:
    # Given events of two sources in the buffers, and one invalid event dead-lettered at publish
    events = [office(f"e-{i}", "hospital-a", str(i)) for i in range(5)]
    events += [office("f-1", "lab-b", "1"), {"eventId": "bad", "sourceKey": "lab-b"}]
    report = publish(store, events)
    assert len(report.accepted) == 6

    # When the exporter is scraped over loopback HTTP, as KEDA does (no Accept header)
    with start_exporter(store, "127.0.0.1", 0) as running:
        answer = httpx.get(running.url, timeout=5)

    # Then the backlog is every buffered event, read both ways KEDA reads it
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    body = answer.text
    assert keda_exact(body, BACKLOG_METRIC) == 6 == backlog(store).total
    assert keda_prefix(body, BACKLOG_METRIC) == 6
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(body)
        for s in f.samples
    }
    assert samples[("clinia_ingest_buffered_events", (("source", "hospital-a"),))] == 5
    assert samples[("clinia_ingest_buffered_events", (("source", "lab-b"),))] == 1
    assert samples[("clinia_ingest_dead_letters", (("source", "lab-b"),))] == 1
    assert samples[("clinia_ingest_redis_up", ())] == 1


def test_the_exporter_follows_redis_at_every_scrape(store: Store) -> None:
    with start_exporter(store, "127.0.0.1", 0) as running:
        before = keda_exact(httpx.get(running.url, timeout=5).text, BACKLOG_METRIC)
        publish(store, [office("e-1", "hospital-a", "1"), office("e-2", "hospital-a", "2")])
        after = keda_exact(httpx.get(running.url, timeout=5).text, BACKLOG_METRIC)
        store.set_backlog(2, ttl_ms=10_000)
        ticking = keda_exact(httpx.get(running.url, timeout=5).text, "clinia_ingest_ticker_up")

    assert (before, after, ticking) == (0, 2, 1)


def test_health_answers_without_redis_and_metrics_leave_the_backlog_out() -> None:
    # A store whose Redis is not there: nothing listens on the port
    settings = IngestSettings(
        redis_url=SecretStr(f"redis://:hidden-pw@127.0.0.1:{free_port()}/0"), redis_timeout_s=1
    )
    dead = open_store(settings)
    with start_exporter(dead, "127.0.0.1", 0) as running:
        base = running.url.removesuffix("/metrics")
        health = httpx.get(base + HEALTH_PATH, timeout=5)
        metrics = httpx.get(running.url, timeout=5)
        elsewhere = httpx.get(base + "/", timeout=5)
    dead.client.close()

    assert (health.status_code, health.text) == (200, "ok\n")
    assert metrics.status_code == 200
    assert keda_exact(metrics.text, "clinia_ingest_redis_up") == 0
    with pytest.raises(LookupError):
        keda_exact(metrics.text, BACKLOG_METRIC)  # a scaler sees an error, not an empty queue
    with pytest.raises(LookupError):
        keda_prefix(metrics.text, BACKLOG_METRIC)
    assert "hidden-pw" not in metrics.text
    assert elsewhere.status_code == 404


def test_the_command_serves_until_sigterm_then_exits_cleanly(
    store: Store, redis_url: str, tmp_path: Path
) -> None:
    # Given the Redis URL in a file, as the Kubernetes manifests mount it
    url_file = tmp_path / "redis-url"
    url_file.write_text(redis_url + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INGEST_", "CLINIA_"))}
    env["INGEST_REDIS_URL_FILE"] = str(url_file)
    publish(store, [office("e-1", "hospital-a", "1")])
    port = free_port()
    command = [sys.executable, "-m", "worker.cli", "metrics", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(base + HEALTH_PATH) or process.poll() is not None,
                 timeout_s=START_TIMEOUT_S)  # fmt: skip
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        # When it is scraped, then stopped as Kubernetes stops a pod
        body = httpx.get(base + "/metrics", timeout=5).text
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)

    # Then it served the backlog and exited 0, its log naming the address and no secret
    assert keda_exact(body, BACKLOG_METRIC) == 1
    assert process.returncode == 0, err.decode()
    assert f"127.0.0.1:{port}".encode() in err
    assert b"metrics.stopped" in err


def test_the_command_refuses_a_port_in_use(redis_url: str, store: Store) -> None:
    with start_exporter(store, "127.0.0.1", 0) as running:
        taken = running.server.server_address[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INGEST_", "CLINIA_"))}
        env["INGEST_REDIS_URL"] = redis_url
        completed = subprocess.run(
            [sys.executable, "-m", "worker.cli", "metrics", "--port", str(taken)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )

    assert completed.returncode == 2
    assert f"cannot listen on 127.0.0.1:{taken}" in completed.stderr


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False
