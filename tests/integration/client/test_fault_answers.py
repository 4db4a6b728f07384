"""Injected error answers through `RegistryClient`: throttles, maybe-applied writes, late answers,
retried reads, and a whole request refused."""

from __future__ import annotations

from email.utils import formatdate
from typing import Any

import pytest

from api_client.errors import (
    InvalidRequestError,
    OutcomeUnknownError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    ServiceUnavailableError,
    TransportError,
)
from api_client.models import (
    BundleReceipts,
    BundleRequest,
    ResourceOperation,
    ResourcePayload,
    dump_json,
)
from api_client.retry import RetryPolicy
from tests.integration.client.conftest import (
    EPOCH_S,
    SOURCE,
    Harness,
    seed_bundle,
)
from tests.waiting import wait_for as wait_until

pytestmark = pytest.mark.integration

SEED_IDS = ["1", "2", "office.1,provider.2"]
MAYBE_APPLIED: list[Any] = [
    pytest.param({"kind": "status", "status": 500}, id="500"),
    pytest.param({"kind": "status", "status": 502}, id="502"),
    pytest.param({"kind": "status", "status": 504}, id="504"),
    pytest.param({"kind": "drop"}, id="drop"),
]


def provider(id_: str) -> ResourcePayload:
    """A provider payload."""
    return ResourcePayload(type="provider", id=id_, data={"name": "John Doe"})


def logged_status(effect: dict[str, Any]) -> int | None:
    """What the request log shows for a request that met `effect` (None: dropped)."""
    return None if effect["kind"] == "drop" else int(effect["status"])


@pytest.mark.parametrize(
    ("status", "error_class"), [(429, RateLimitedError), (503, ServiceUnavailableError)]
)
def test_client_throttle_returns_at_once_with_retry_after(
    harness: Harness, status: int, error_class: type[RateLimitedError]
):
    harness.add_fault(
        {"route": "bundle", "effect": {"kind": "status", "status": status, "retry_after": "3"}}
    )
    client = harness.client(retry=RetryPolicy(on_throttle="return"))

    with pytest.raises(RateLimitedError) as raised:
        client.submit_bundle(SOURCE, seed_bundle())

    assert type(raised.value) is error_class
    assert raised.value.status == status
    assert raised.value.retry_after_s == 3.0
    assert "retry after 3 s" in str(raised.value)
    assert [entry["status"] for entry in harness.requests("bundle")] == [status]
    assert harness.time.sleeps == []
    assert harness.writes() == []


@pytest.mark.parametrize("status", [429, 503])
def test_client_throttle_sleeps_the_retry_after_then_succeeds(harness: Harness, status: int):
    harness.add_fault(
        {
            "route": "bundle",
            "times": 1,
            "effect": {"kind": "status", "status": status, "retry_after": "3"},
        }
    )
    client = harness.client(retry=RetryPolicy(on_throttle="sleep"))

    answer = client.submit_bundle(SOURCE, seed_bundle())

    assert isinstance(answer, BundleReceipts)
    assert {str(r.status) for r in answer.resource_operation_receipts} == {"SUCCESS"}
    assert harness.time.sleeps == [3.0]
    assert [entry["status"] for entry in harness.requests("bundle")] == [status, 200]
    assert harness.written_ids() == SEED_IDS


def test_client_throttle_reads_a_retry_after_date_against_its_wall_clock(harness: Harness):
    # the fake wall clock stands at EPOCH_S until the client sleeps
    retry_at = formatdate(EPOCH_S + 5, usegmt=True)
    harness.add_fault(
        {
            "route": "get_profile",
            "times": 1,
            "effect": {"kind": "status", "status": 429, "retry_after": retry_at},
        }
    )
    client = harness.client()

    assert client.get_profile(SOURCE, "office").type == "ROOT"

    assert harness.time.sleeps == [5.0]
    assert [entry["status"] for entry in harness.requests("get_profile")] == [429, 200]


@pytest.mark.parametrize("apply_first", [False, True])
@pytest.mark.parametrize("effect", MAYBE_APPLIED)
def test_client_maybe_applied_write_raises_outcome_unknown_after_one_request(
    harness: Harness, effect: dict[str, Any], apply_first: bool
):
    harness.add_fault(
        {"route": "bundle", "times": 1, "effect": {**effect, "apply_first": apply_first}}
    )
    client = harness.client()
    request = seed_bundle()

    with pytest.raises(OutcomeUnknownError) as raised:
        client.submit_bundle(SOURCE, request)

    error = raised.value
    assert error.maybe_applied
    assert (error.sent.method, error.sent.path) == ("POST", f"/sources/{SOURCE}/v1/bundle")
    assert error.sent.body == dump_json(request)
    cause_class = TransportError if effect["kind"] == "drop" else ServerError
    assert isinstance(error.__cause__, cause_class)
    assert error.status == logged_status(effect)
    assert [e["status"] for e in harness.requests("bundle")] == [logged_status(effect)]
    assert harness.time.sleeps == []
    # the outcome really is unknown to the client: the emulator did or did not apply it
    assert harness.written_ids() == (SEED_IDS if apply_first else [])


@pytest.mark.parametrize("effect", MAYBE_APPLIED)
def test_client_read_is_retried_through_maybe_applied_failures(
    harness: Harness, effect: dict[str, Any]
):
    client = harness.client()
    client.upsert_resource(SOURCE, provider("p-1"))
    harness.add_fault({"route": "get_resource", "first": 2, "effect": effect})

    found = client.get_resource(SOURCE, "provider", "p-1")

    assert found.data == {"name": "John Doe"}
    statuses = [entry["status"] for entry in harness.requests("get_resource")]
    assert statuses == [logged_status(effect), logged_status(effect), 200]
    policy = client.config.retry
    assert len(harness.time.sleeps) == 2
    for attempt, wait_s in enumerate(harness.time.sleeps):
        assert 0.0 <= wait_s <= policy.base_s * 2**attempt


def test_client_write_answered_after_the_read_timeout_is_outcome_unknown_yet_applied(
    harness: Harness,
):
    harness.add_fault(
        {"route": "upsert_resource", "times": 1, "effect": {"kind": "late", "seconds": 0.5}}
    )
    client = harness.client(read_timeout_s=0.2)

    with pytest.raises(OutcomeUnknownError) as raised:
        client.upsert_resource(SOURCE, provider("p-1"))

    assert isinstance(raised.value.__cause__, RequestTimeoutError)
    assert [(w["action"], w["id"]) for w in harness.writes()] == [("UPSERT", "p-1")]
    # the held answer completes server-side; only then does the log show the request
    logged = wait_until(lambda: harness.requests("upsert_resource"))
    assert [entry["status"] for entry in logged] == [200]
    # reading back resolves the unknown outcome
    assert client.get_resource(SOURCE, "provider", "p-1").data == {"name": "John Doe"}


def test_client_request_refused_without_receipts_raises_invalid_request(harness: Harness):
    message = "provider p-17 is refused by policy"
    harness.add_fault(
        {"op_id": "p-17", "effect": {"kind": "status", "status": 400, "message": message}}
    )
    client = harness.client()
    refused = BundleRequest(resource_operations=[ResourceOperation.for_upsert(provider("p-17"))])

    with pytest.raises(InvalidRequestError) as in_bundle:
        client.submit_bundle(SOURCE, refused)
    with pytest.raises(InvalidRequestError) as single:
        client.upsert_resource(SOURCE, provider("p-17"))

    for raised in (in_bundle.value, single.value):
        assert type(raised) is InvalidRequestError
        assert (raised.status, raised.error_type, raised.message) == (
            400,
            "INVALID_ARGUMENT",
            message,
        )
        assert raised.details == []
        assert message in str(raised)
    assert [entry["status"] for entry in harness.requests("bundle")] == [400]
    assert harness.time.sleeps == []
    assert harness.writes() == []
    # a request that does not touch p-17 goes through
    assert isinstance(client.submit_bundle(SOURCE, seed_bundle()), BundleReceipts)
    assert harness.written_ids() == SEED_IDS
