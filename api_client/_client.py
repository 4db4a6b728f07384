"""RegistryClient: one method per Registry endpoint, synchronous, over a pooled `httpx` transport.

Every path segment is checked against the shared id patterns and URL-encoded before anything is
sent (`_paths`): a bad one raises `InvalidPathSegmentError` (an `InvalidRequestError` and a
`ValueError`) and no request is made. Bodies are the bytes of `models.dump_json`, exactly what
the bundle planner measured. Each request is retried as `retry.decide` says; an attempt in flight
is bounded by the configured timeouts, the waits between attempts by the policy's deadline.

Receipts are values whatever the status: a bundle refused with a 4xx that carries receipts returns
`BundleReceipts`, and a legacy bulk REJECTED returns `BulkRejected`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import httpx
import structlog
from pydantic import BaseModel

from api_client._http import Call, read_answer
from api_client._paths import (
    RESOURCE_ID,
    TASK_ID,
    TYPE_KEY,
    definition_path,
    purge_path,
    receipts_param,
    relationship_path,
    resource_path,
    segment,
    source_path,
)
from api_client._readers import (
    bulk_refusal,
    bundle_refusal,
    echo_or,
    model_reader,
    purge_operation,
    purge_state,
)
from api_client._session import HttpSession
from api_client.config import ClientConfig
from api_client.errors import OutcomeUnknownError, RegistryError
from api_client.models import (
    BulkRejected,
    BundleReceipts,
    BundleRequest,
    DeleteAnswer,
    Profile,
    PurgeAnswer,
    PurgeOperation,
    PurgeRequest,
    Relationship,
    RelationshipBulkRequest,
    RelationshipCreateRequest,
    RelationshipDefinition,
    RelationshipWriteAnswer,
    Resource,
    ResourceBulkRequest,
    ResourcePayload,
    ResourceWriteAnswer,
    TaskAccepted,
    TaskState,
    dump_json,
    parse_bulk_answer,
    parse_bundle_answer,
)
from api_client.retry import RandomSource, Verdict, decide
from api_client.tasks import PollRoute, TaskRef
from api_client.waiting import PollPolicy, wait_for_task

__all__ = ["RegistryClient"]

_T = TypeVar("_T")

_log = structlog.get_logger("api_client")


class RegistryClient:
    """The Registry's ingestion API, typed: one method per endpoint, errors from `errors`.

    Args:
        config: where and how to reach the Registry (never read from the environment here).
        transport: an httpx transport to use instead of the network (`httpx.MockTransport`
            in tests).
        clock: monotonic seconds, for deadlines.
        wall_clock: seconds since the epoch, to read a `Retry-After` HTTP date.
        sleep: waits between attempts and between polls.
        rng: the jitter source (a seeded `random.Random` in tests).
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: RandomSource | None = None,
    ) -> None:
        self._config = config
        self._session = HttpSession(config, transport)
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._rng: RandomSource = random.Random() if rng is None else rng  # noqa: S311 - jitter

    def __repr__(self) -> str:
        return f"RegistryClient(base_url={self._config.base_url!r})"

    @property
    def config(self) -> ClientConfig:
        """The configuration this client was built with (its API key stays a `SecretStr`)."""
        return self._config

    def close(self) -> None:
        """Closes the pooled connections; the client cannot be used afterwards."""
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- submissions -----------------------------------------------------------------------------

    def submit_bundle(
        self, source_key: str, request: BundleRequest
    ) -> TaskAccepted | BundleReceipts:
        """`POST /sources/{sk}/v1/bundle`: an atomic bundle; receipts now, or a `bd_` task.

        A bundle refused with receipts (any status) returns them; a refusal without receipts
        raises. A write that may have been applied raises `OutcomeUnknownError`.
        """
        call = self._write("POST", source_path(source_key, "bundle"), request)
        return self._execute(call, parse_bundle_answer, refusal_reader=bundle_refusal)

    def submit_bundle_body(self, source_key: str, body: bytes) -> TaskAccepted | BundleReceipts:
        """`submit_bundle` for a body already encoded (compact JSON of a `BundleRequest`).

        The bytes are sent as they are: a planner that builds them from encoded operations, and
        measures them for the 500 KB cap, sends exactly what it measured.
        """
        call = Call("POST", source_path(source_key, "bundle"), body=body)
        return self._execute(call, parse_bundle_answer, refusal_reader=bundle_refusal)

    def submit_bulk_body(
        self, source_key: str, kind: Literal["resources", "relationships"], body: bytes
    ) -> TaskAccepted | BulkRejected:
        """`submit_resource_bulk` or `submit_relationship_bulk` for a body already encoded."""
        call = Call("POST", source_path(source_key, kind, "bulk"), body=body)
        return self._execute(call, parse_bulk_answer, refusal_reader=bulk_refusal)

    def submit_resource_bulk(
        self, source_key: str, request: ResourceBulkRequest
    ) -> TaskAccepted | BulkRejected:
        """`POST /sources/{sk}/v1/resources/bulk`: a `bk_` task, or (legacy) a REJECTED value."""
        call = self._write("POST", source_path(source_key, "resources", "bulk"), request)
        return self._execute(call, parse_bulk_answer, refusal_reader=bulk_refusal)

    def submit_relationship_bulk(
        self, source_key: str, request: RelationshipBulkRequest
    ) -> TaskAccepted | BulkRejected:
        """`POST /sources/{sk}/v1/relationships/bulk`: as `submit_resource_bulk`."""
        call = self._write("POST", source_path(source_key, "relationships", "bulk"), request)
        return self._execute(call, parse_bulk_answer, refusal_reader=bulk_refusal)

    # -- single resources -------------------------------------------------------------------------

    def create_resource(self, source_key: str, payload: ResourcePayload) -> ResourceWriteAnswer:
        """`POST /sources/{sk}/v1/resources/{type}`: the body is `payload` (its id optional)."""
        path = source_path(source_key, "resources", segment("type", payload.type, TYPE_KEY))
        return self._execute(self._write("POST", path, payload), model_reader(ResourceWriteAnswer))

    def upsert_resource(self, source_key: str, payload: ResourcePayload) -> ResourceWriteAnswer:
        """`PUT /sources/{sk}/v1/resources/{type}/{id}`: full replace, or create when missing."""
        path = source_path(
            source_key,
            "resources",
            segment("type", payload.type, TYPE_KEY),
            segment("id", payload.id, RESOURCE_ID),
        )
        return self._execute(self._write("PUT", path, payload), model_reader(ResourceWriteAnswer))

    def get_resource(self, source_key: str, resource_type: str, resource_id: str) -> Resource:
        """`GET /sources/{sk}/v1/resources/{type}/{id}`; `NotFoundError` when absent."""
        path = resource_path(source_key, resource_type, resource_id)
        return self._execute(Call("GET", path), model_reader(Resource))

    def delete_resource(
        self, source_key: str, resource_type: str, resource_id: str
    ) -> DeleteAnswer:
        """`DELETE /sources/{sk}/v1/resources/{type}/{id}`."""
        path = resource_path(source_key, resource_type, resource_id)
        return self._execute(Call("DELETE", path), model_reader(DeleteAnswer))

    # -- single relationships ---------------------------------------------------------------------

    def create_relationship(
        self, source_key: str, relationship_type: str, request: RelationshipCreateRequest
    ) -> RelationshipWriteAnswer:
        """`POST /sources/{sk}/v1/relationships/{relationshipType}`."""
        path = source_path(
            source_key, "relationships", segment("relationship_type", relationship_type, TYPE_KEY)
        )
        return self._execute(
            self._write("POST", path, request), model_reader(RelationshipWriteAnswer)
        )

    def get_relationship(
        self, source_key: str, relationship_type: str, relationship_id: str
    ) -> Relationship:
        """`GET /sources/{sk}/v1/relationships/{type}/{fromId}.{toId}`."""
        path = relationship_path(source_key, relationship_type, relationship_id)
        return self._execute(Call("GET", path), model_reader(Relationship))

    def delete_relationship(
        self, source_key: str, relationship_type: str, relationship_id: str
    ) -> DeleteAnswer:
        """`DELETE /sources/{sk}/v1/relationships/{type}/{fromId}.{toId}`."""
        path = relationship_path(source_key, relationship_type, relationship_id)
        return self._execute(Call("DELETE", path), model_reader(DeleteAnswer))

    # -- tasks ------------------------------------------------------------------------------------

    def get_task(self, source_key: str, task_id: str, *, with_receipts: bool = False) -> TaskState:
        """`GET /sources/{sk}/v1/tasks/{taskId}?withReceipts=`: any task kind."""
        path = source_path(source_key, "tasks", segment("task_id", task_id, TASK_ID))
        call = Call("GET", path, receipts_param(with_receipts))
        return self._execute(call, model_reader(TaskState))

    def get_resource_bulk_status(
        self, source_key: str, bulk_id: str, *, with_receipts: bool = False
    ) -> TaskState:
        """`GET /sources/{sk}/v1/resources/bulk/{bulkId}?withReceipts=` (no `taskId` in it)."""
        return self._bulk_status("resources", source_key, bulk_id, with_receipts)

    def get_relationship_bulk_status(
        self, source_key: str, bulk_id: str, *, with_receipts: bool = False
    ) -> TaskState:
        """`GET /sources/{sk}/v1/relationships/bulk/{bulkId}?withReceipts=`."""
        return self._bulk_status("relationships", source_key, bulk_id, with_receipts)

    def get_task_state(self, ref: TaskRef, *, with_receipts: bool = False) -> TaskState:
        """The state of `ref`, asked on its poll route; a purge's state carries no receipts."""
        route = ref.poll_route
        if route is PollRoute.RESOURCES_BULK:
            return self.get_resource_bulk_status(
                ref.source_key, ref.route_id, with_receipts=with_receipts
            )
        if route is PollRoute.RELATIONSHIPS_BULK:
            return self.get_relationship_bulk_status(
                ref.source_key, ref.route_id, with_receipts=with_receipts
            )
        if route is PollRoute.PURGE:
            path = purge_path(ref.source_key, ref.route_id)
            return self._execute(Call("GET", path), purge_state)
        return self.get_task(ref.source_key, ref.route_id, with_receipts=with_receipts)

    def wait_for_task(
        self, ref: TaskRef, *, deadline_s: float, policy: PollPolicy | None = None
    ) -> TaskState:
        """Polls `ref` until it ends, then reads its receipts once; see `waiting.wait_for_task`.

        Raises:
            TaskStillPendingError: `deadline_s` passed first (not a failure).
        """
        return wait_for_task(
            self,
            ref,
            deadline_s=deadline_s,
            policy=policy,
            clock=self._clock,
            sleep=self._sleep,
            rng=self._rng,
        )

    # -- purge ------------------------------------------------------------------------------------

    def purge(self, source_key: str, request: PurgeRequest) -> PurgeAnswer:
        """`POST /sources/{sk}/v1/purge`: deletes a whole collection, as a `pg_` task."""
        call = self._write("POST", source_path(source_key, "purge"), request)
        return self._execute(call, model_reader(PurgeAnswer))

    def get_purge(self, source_key: str, purge_id: str) -> PurgeOperation:
        """`GET /sources/{sk}/v1/purge/{purgeId}`: the purge's progress."""
        return self._execute(Call("GET", purge_path(source_key, purge_id)), purge_operation)

    # -- schemas ----------------------------------------------------------------------------------

    def get_profile(self, source_key: str, profile_key: str) -> Profile:
        """`GET /sources/{sk}/v1/profiles/{key}`."""
        path = source_path(source_key, "profiles", segment("profile_key", profile_key, TYPE_KEY))
        return self._execute(Call("GET", path), model_reader(Profile))

    def put_profile(self, source_key: str, profile_key: str, profile: Profile) -> Profile:
        """`PUT /sources/{sk}/v1/profiles/{key}`: creates or replaces a profile."""
        path = source_path(source_key, "profiles", segment("profile_key", profile_key, TYPE_KEY))
        return self._execute(self._write("PUT", path, profile), echo_or(Profile, profile))

    def get_relationship_definition(self, source_key: str, key: str) -> RelationshipDefinition:
        """`GET /sources/{sk}/v1/relationship-definitions/{key}`."""
        path = definition_path(source_key, key)
        return self._execute(Call("GET", path), model_reader(RelationshipDefinition))

    def put_relationship_definition(
        self, source_key: str, key: str, definition: RelationshipDefinition
    ) -> RelationshipDefinition:
        """`PUT /sources/{sk}/v1/relationship-definitions/{key}`."""
        path = definition_path(source_key, key)
        return self._execute(
            self._write("PUT", path, definition), echo_or(RelationshipDefinition, definition)
        )

    # -- plumbing ---------------------------------------------------------------------------------

    @staticmethod
    def _write(method: str, path: str, model: BaseModel) -> Call:
        return Call(method, path, body=dump_json(model), model=model)

    def _bulk_status(
        self, target: str, source_key: str, bulk_id: str, with_receipts: bool
    ) -> TaskState:
        path = source_path(source_key, target, "bulk", segment("bulk_id", bulk_id, TASK_ID))
        call = Call("GET", path, receipts_param(with_receipts))
        return self._execute(call, model_reader(TaskState))

    def _execute(
        self,
        call: Call,
        reader: Callable[[Any], _T],
        *,
        refusal_reader: Callable[[Any], _T | None] | None = None,
    ) -> _T:
        """Sends `call` until it succeeds or `retry.decide` gives up."""
        policy = self._config.retry
        started = self._clock()
        attempt = 0
        while True:
            try:
                response = self._session.send(call)
                return read_answer(
                    response, call, reader, refusal_reader=refusal_reader, now_s=self._wall_clock()
                )
            except RegistryError as failure:
                decision = decide(
                    failure,
                    is_write=call.is_write,
                    attempt=attempt,
                    elapsed_s=self._clock() - started,
                    policy=policy,
                    rng=self._rng,
                )
                if decision.verdict is Verdict.OUTCOME_UNKNOWN:
                    raise OutcomeUnknownError.after(failure, call.sent()) from failure
                if decision.verdict is Verdict.RAISE:
                    raise
                _log.debug(
                    "registry.retry",
                    method=call.method,
                    path=call.path,
                    status=failure.status,
                    error=type(failure).__name__,
                    attempt=attempt + 1,
                    wait_s=round(decision.wait_s, 3),
                )
                self._sleep(decision.wait_s)
                attempt += 1
