"""Shared fakes for the client tests: a scripted MockTransport, a fake clock, test models.

It holds no tests; it lives beside the client tests that import it."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import SecretStr

from api_client._client import RegistryClient
from api_client.config import ClientConfig
from api_client.models import (
    BundleRequest,
    EntityRef,
    Profile,
    PropertyDefinition,
    PurgeRequest,
    RelationshipBulkRequest,
    RelationshipCreateRequest,
    RelationshipDefinition,
    RelationshipDefinitionEnd,
    RelationshipOperation,
    RelationshipPayload,
    ResourceBulkRequest,
    ResourceOperation,
    ResourcePayload,
)
from api_client.retry import RandomSource, RetryPolicy

API_KEY = "cl-TEST-KEY-9f8e7d"
SOURCE = "hospital-a"
EPOCH_S = 1_700_000_000.0

Handler = Callable[[httpx.Request], httpx.Response]

PAYLOAD = ResourcePayload(type="provider", id="p-17", data={"name": "Jane Roe"})
BUNDLE = BundleRequest(resource_operations=[ResourceOperation.for_upsert(PAYLOAD)])
RES_BULK = ResourceBulkRequest(operations=[ResourceOperation.for_delete("p-17", "provider")])
OFFICE, PROVIDER = EntityRef(id="1", type="office"), EntityRef(id="2", type="provider")
REL_BULK = RelationshipBulkRequest(
    operations=[
        RelationshipOperation.for_upsert(
            RelationshipPayload(type="provider-office", from_=OFFICE, to=PROVIDER)
        )
    ]
)
REL_CREATE = RelationshipCreateRequest(from_=OFFICE, to=PROVIDER, data={"description": "x"})
PURGE = PurgeRequest(collection_type="resources", collection_key="provider")
PROFILE = Profile(type="ROOT", properties={"name": PropertyDefinition(type="symbol")})
DEFINITION = RelationshipDefinition(
    from_=RelationshipDefinitionEnd(profile_key="office"),
    to=RelationshipDefinitionEnd(profile_key="provider"),
)
RESOURCE_JSON = {"id": "p-17", "type": "provider", "data": {"name": "Jane Roe"}}
RELATIONSHIP_JSON = {
    "id": "1.2",
    "type": "provider-office",
    "from": OFFICE.model_dump(),
    "to": PROVIDER.model_dump(),
}


class FakeTime:
    """A clock that only moves when the client sleeps; records every wait."""

    def __init__(self) -> None:
        self.now_s = 0.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now_s

    def wall(self) -> float:
        return EPOCH_S + self.now_s

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now_s += seconds


class TopOfRange:
    """A jitter source that always draws the top of the range: every wait equals its ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Script:
    """A MockTransport handler answering from a list (a response, or an exception to raise)."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.answers:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def make_client(
    handler: Handler,
    *,
    policy: RetryPolicy | None = None,
    time: FakeTime | None = None,
    rng: RandomSource | None = None,
) -> RegistryClient:
    time = FakeTime() if time is None else time
    config = ClientConfig(
        base_url="https://ws.example.test",
        api_key=SecretStr(API_KEY),
        retry=RetryPolicy(base_s=0.5, cap_s=8.0) if policy is None else policy,
    )
    return RegistryClient(
        config,
        transport=httpx.MockTransport(handler),
        clock=time.monotonic,
        wall_clock=time.wall,
        sleep=time.sleep,
        rng=random.Random(3) if rng is None else rng,
    )


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def assert_no_secret(error: BaseException) -> None:
    """The key is in no text an error can show, its cause's included."""
    seen: BaseException | None = error
    while seen is not None:
        assert API_KEY not in str(seen)
        assert API_KEY not in repr(seen)
        seen = seen.__cause__
