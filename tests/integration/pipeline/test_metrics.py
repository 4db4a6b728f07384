"""The exporter's backlog through a whole run: it counts the published work, then falls to 0."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from worker.metrics import BACKLOG_METRIC, start_exporter

from .conftest import SOURCE, HarnessFactory

pytestmark = pytest.mark.integration


def office(event_id: str, office_id: str, **data: Any) -> dict[str, Any]:
    data = {"name": f"Office {office_id}", **data}
    return {"eventId": event_id, "sourceKey": SOURCE, "target": "resource", "action": "UPSERT",
            "type": "office", "id": office_id, "data": data}  # fmt: skip


def scrape(url: str) -> dict[tuple[str, str], float]:
    """(name, source label or "") -> value."""
    body = httpx.get(url, timeout=5).text
    return {
        (s.name, s.labels.get("source", "")): s.value
        for f in text_string_to_metric_families(body)
        for s in f.samples
        if "kind" not in s.labels
    }


def test_backlog_gauge_counts_the_work_then_reads_zero_when_it_is_done(
    harness_factory: HarnessFactory,
):
    # Given ten events, one of which the Registry refuses (an unknown property)
    # the Registry's refusal of off-profile content is under test: no pre-validation
    harness = harness_factory(profile_validation=False)
    events = [office(f"e-{i}", f"o{i}") for i in range(9)] + [office("bad", "o9", colour="blue")]
    harness.publish(events)

    with start_exporter(harness.deps.store, "127.0.0.1", 0) as running:
        # When the exporter is scraped before and after the pipeline ran
        before = scrape(running.url)
        harness.drain(deadline_s=20)
        after = scrape(running.url)

    # Then it counted every buffered event, and nothing once all work is done
    assert before[(BACKLOG_METRIC, "")] == 10
    assert before[("clinia_ingest_buffered_events", SOURCE)] == 10
    assert before[("clinia_ingest_dead_letters", SOURCE)] == 0
    assert after[(BACKLOG_METRIC, "")] == 0
    assert after[("clinia_ingest_in_flight_events", SOURCE)] == 0
    assert after[("clinia_ingest_dead_letters", SOURCE)] == 1
