"""Progress under contention (invariant 12): hot resources, many groups, any read limit.

Before the ready log, a resource that any unread buffer touched was tainted and everything on it
held: with more pending links to one office across the buffers than a flush could read, nothing
touching that office was ever sent, and every round read the same events again.
"""

from __future__ import annotations

from typing import Any

import pytest

from .checks import check_against_oracle
from .conftest import SOURCE, HarnessFactory
from .test_ordering import link, resource

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LINKS = 2100
GROUPS = 30


def _stats(harness: Any) -> dict[str, int]:
    raw = harness.deps.store.client.hgetall(f"ingest:{{{SOURCE}}}:stats")
    return {k: int(float(v)) for k, v in raw.items()}


def test_pipeline_drains_more_links_to_one_office_than_a_round_reads(
    harness_factory: HarnessFactory,
):
    # Given the default read limit (2,000 events a round) and an office that 2,100 links over
    # 30 groups point at, its providers written first, the office rewritten halfway
    harness = harness_factory()
    assert harness.deps.settings.flush_read_limit < LINKS
    setup = [resource("o", "UPSERT", "office", "o1", group="offices")]
    setup += [
        resource(f"p{n}", "UPSERT", "provider", f"p{n}", group=f"g{n % GROUPS}")
        for n in range(LINKS)
    ]
    links: list[dict[str, Any]] = [
        link(f"l{n}", "UPSERT", "o1", {"id": f"p{n}"}, group=f"g{n % GROUPS}") for n in range(LINKS)
    ]
    links.insert(LINKS // 2, resource("o-again", "UPSERT", "office", "o1", group="g7"))
    for start in range(0, len(setup), 1000):
        harness.publish(setup[start : start + 1000])
    for start in range(0, len(links), 1000):
        harness.publish(links[start : start + 1000])

    # When the pipeline runs
    harness.drain(deadline_s=120)

    # Then everything is applied as one by one, each event read about once
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())
    stats = _stats(harness)
    published = len(setup) + len(links)
    assert stats["published"] == published
    assert stats["read"] <= 1.5 * published, stats
