"""Events that fail on their own, several in one bundle, under both ways a Registry may report a
refused bundle: its first failing operation only (the emulator's default), or every one.

A stream over existing records holds CREATEs of ids that exist, DELETEs of missing ids,
relationships to a missing end and data off the profile, among valid changes. Whichever way the
refusal is reported, in synchronous answers and in tasks, the Registry ends as the one-by-one
oracle's, exactly the events that fail alone are dead-lettered, each once, at the record stage,
with its own error type and naming its own field, and their cancelled neighbours land.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from emulator.config import BundleFailures, EmulatorConfig, SourceMode
from worker.deadletters import DlqFilter, list_dead_letters

from .checks import check_against_oracle
from .conftest import SOURCE, HarnessFactory

pytestmark = pytest.mark.integration


def _event(n: str, action: str, target: str, type_: str, **fields: Any) -> dict[str, Any]:
    return {"eventId": f"ev-{n}", "sourceKey": SOURCE, "target": target, "action": action,
            "type": type_, **fields}  # fmt: skip


def office(n: str, action: str, id_: str, **data: Any) -> dict[str, Any]:
    event = _event(n, action, "resource", "office", id=id_)
    if action != "DELETE":
        event["data"] = {"name": f"Office {id_}", **data}
    return event


def provider(n: str, action: str, id_: str, **data: Any) -> dict[str, Any]:
    event = _event(n, action, "resource", "provider", id=id_)
    if action != "DELETE":
        event["data"] = {"name": f"Provider {id_}", **data}
    return event


def link(n: str, action: str, office_id: str, provider_id: str) -> dict[str, Any]:
    event = _event(n, action, "relationship", "provider-office",
                   **{"from": {"type": "office", "id": office_id},
                      "to": {"type": "provider", "id": provider_id}})  # fmt: skip
    if action != "DELETE":
        event["data"] = {"description": f"{office_id} and {provider_id}"}
    return event


SETUP = [
    office("s1", "CREATE", "o1"),
    office("s2", "CREATE", "o2"),
    provider("s3", "CREATE", "p1"),
    provider("s4", "CREATE", "p2"),
    provider("s5", "UPSERT", "p3"),
    link("s6", "CREATE", "o1", "p1"),
]
"""What exists before the faulty changes: two offices, three providers, one relationship."""

FAULTY = [
    office("f1", "UPSERT", "o2", active=True),
    office("f2", "CREATE", "o1"),  # exists
    provider("f3", "DELETE", "p9"),  # missing
    link("f4", "UPSERT", "o1", "p404"),  # its provider is missing
    provider("f5", "UPSERT", "p4", unknownProperty="x"),  # off the profile
    link("f6", "CREATE", "o2", "p2"),
    provider("f7", "CREATE", "p2"),  # exists
    link("f8", "CREATE", "o9", "p3"),  # its office is missing
    office("f9", "CREATE", "o5", active="yes"),  # off the profile: a string for a boolean
    link("f10", "DELETE", "o2", "p3"),  # missing
    provider("f11", "UPSERT", "p3", specialities=["cardiology"]),
    link("f12", "UPSERT", "o1", "p3"),
]
"""Valid changes with failing ones among them; none of the failing ones is predictable by the
planner from the events alone, so several share a bundle with valid ones."""

EXPECTED: dict[str, tuple[str, str]] = {
    "ev-f2": ("ALREADY_EXISTS", "'o1'"),
    "ev-f3": ("NOT_FOUND", "'p9'"),
    "ev-f4": ("FAILED_PRECONDITION", "'p404'"),
    "ev-f5": ("FAILED_PRECONDITION", "'unknownProperty'"),
    "ev-f7": ("ALREADY_EXISTS", "'p2'"),
    "ev-f8": ("FAILED_PRECONDITION", "'o9'"),
    "ev-f9": ("FAILED_PRECONDITION", "'active'"),
    "ev-f10": ("NOT_FOUND", "o2"),
}
"""Each event that fails alone: its error type, and what its error names (the id or field)."""


def _config(mode: SourceMode, failures: BundleFailures) -> EmulatorConfig:
    return EmulatorConfig(mode=mode, task_pending_polls=0, bundle_failures=failures)


@pytest.mark.parametrize("failures", list(BundleFailures), ids=lambda f: f"failures-{f}")
@pytest.mark.parametrize("mode", [SourceMode.SYNC, SourceMode.ASYNC], ids=lambda m: str(m))
def test_several_failures_dead_letter_exactly_the_events_that_fail_alone(
    harness_factory: HarnessFactory, mode: SourceMode, failures: BundleFailures
) -> None:
    # the Registry's refusal of off-profile content is under test: no pre-validation
    harness = harness_factory(_config(mode, failures), profile_validation=False)
    harness.publish(SETUP)
    harness.drain(deadline_s=30)
    harness.publish(FAULTY)

    harness.drain(deadline_s=30)

    oracle, statuses = check_against_oracle(
        harness.deps, harness.registry, SOURCE, harness.stored_events()
    )
    failing_alone = {e for e, error in oracle.outcomes.items() if error is not None}
    assert failing_alone == set(EXPECTED)
    dead = {e for e, s in statuses.items() if s.status == "dead_lettered"}
    assert dead == set(EXPECTED)
    letters = list_dead_letters(harness.deps, DlqFilter(sources=(SOURCE,)))
    assert sorted(str(letter.event_id) for letter in letters) == sorted(EXPECTED)
    for letter in letters:
        error_type, named = EXPECTED[str(letter.event_id)]
        status = statuses[str(letter.event_id)]
        assert (letter.stage, letter.error_type, status.bound_to) == ("record", error_type, None)
        assert named in json.dumps(status.error), (letter.event_id, status.error)
    landed = {e for e, s in statuses.items() if s.status in ("applied", "coalesced")}
    assert {"ev-f1", "ev-f6", "ev-f11", "ev-f12"} <= landed
    # how the refusals were reported shows in which bundles the failing events were judged
    bundles = [statuses[e].bundle_id for e in sorted(EXPECTED)]
    if failures is BundleFailures.FIRST:
        assert len(set(bundles)) == len(bundles)
    else:
        assert len(set(bundles)) < len(bundles)
