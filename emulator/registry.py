"""The emulated Registry: one method per endpoint, each answering a `Reply(status, body)`.

It knows nothing of HTTP beyond status codes, and never raises for bad input: a refused request
answers 4xx with `{"code", "message", "type", "details"}`. Authentication is not its job. Every
public method holds one lock, and first processes the async tasks that are due (tasks advance
lazily: on status polls, and on any access once their PENDING polls and time are served).

Choices the documentation leaves open (docs/emulator.md section 4), made here:
- HTTP codes: 200 for PERSISTED answers and reads, 202 for ACCEPTED; a synchronous bundle holding
  a FAILURE receipt answers `config.bundle_failure_status` (400 by default) with the same
  two-receipt-list body as a success; a bulk rejected before acceptance answers 400 with the
  legacy `{"status": "REJECTED", "receipts": [...]}`; an oversized body answers 413
  CONTENT_TOO_LARGE; more operations than `max_ops_per_request` answers 400 INVALID_ARGUMENT.
- A synchronous bundle answers exactly `{resourceOperationReceipts, relationshipOperationReceipts}`.
- Bulk is always ACCEPTED. Bundles and single writes answer ACCEPTED per the source's mode
  (or an override). An ACCEPTED bundle is judged when processed (its failure shows in the task);
  an ACCEPTED single write is judged on content at once (400) and against records when processed.
- A relationship to a missing resource fails FAILED_PRECONDITION (400); a resource type without
  a profile fails FAILED_PRECONDITION.
- Relationship ids: records carry `{fromId}.{toId}`; receipts carry
  `{fromType}.{fromId},{toType}.{toId}`; GET and DELETE accept both forms.
- Deprecated task ids are accepted: a bare `<id>` as `bk_<id>` or `bd_<id>` (by route), and
  `purge:<id>` as `pg_<id>`.
- An injected failure on a synchronous write fails it at once (bundle: every receipt FAILURE).
- A refused bundle reports its first failing operation (the rest CANCELLED), or every failing
  operation with its own error (`config.bundle_failures`); nothing of it is applied either way.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from api_client.ids import is_source_key
from emulator import writes
from emulator.config import EmulatorConfig
from emulator.failures import INVALID_ARGUMENT, NOT_FOUND, RequestRefusedError, refuse
from emulator.ksuid import KsuidGenerator
from emulator.operations import Operation, RelationshipOp, ResourceOp
from emulator.profiles import refuse_profile, refuse_relationship_definition
from emulator.reply import Reply
from emulator.request_bodies import (
    check_key,
    read_purge,
    relationship_ends,
    relationship_write,
    resource_write,
)
from emulator.state import SourceState
from emulator.taskbook import TaskBook
from emulator.tasks import PurgeJob, TaskKind, TaskOverride
from emulator.times import utc_now
from emulator.writes import BulkTarget

__all__ = ["Registry", "Reply", "TaskOverride"]

P = ParamSpec("P")
R = TypeVar("R")


def _locked(method: Callable[Concatenate[Registry, P], R]) -> Callable[Concatenate[Registry, P], R]:
    """Hold the lock and advance due tasks before the call."""

    @functools.wraps(method)
    def wrapper(self: Registry, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            self._book.advance(self._sources.__getitem__)
            return method(self, *args, **kwargs)

    return wrapper


def _endpoint(
    method: Callable[Concatenate[Registry, P], Reply],
) -> Callable[Concatenate[Registry, P], Reply]:
    """`_locked`, and a refused request becomes its error Reply."""

    @functools.wraps(method)
    def wrapper(self: Registry, /, *args: P.args, **kwargs: P.kwargs) -> Reply:
        try:
            return method(self, *args, **kwargs)
        except RequestRefusedError as exc:
            return Reply(exc.status, exc.body)

    return _locked(wrapper)


class Registry:
    """The facade the HTTP layer calls; all state of the emulated Registry lives behind it."""

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        clock: Callable[[], datetime] = utc_now,
        ids: Callable[[], str] | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._given_ids = ids
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self._new_id = self._given_ids or KsuidGenerator(self._clock, self.config.seed)
        self._sources: dict[str, SourceState] = {}
        self._book = TaskBook(lambda: self.config, self._clock, self._new_id)

    # -- bundle and bulk --------------------------------------------------------------------

    @_endpoint
    def bundle(
        self, source: str, body: Any, *, raw_size: int, override: TaskOverride | None = None
    ) -> Reply:
        """POST /sources/{sk}/v1/bundle."""
        state = self._source(source)
        return writes.bundle(
            self.config, self._book, state, body, raw_size=raw_size, override=override
        )

    @_endpoint
    def bulk(
        self,
        source: str,
        target: BulkTarget,
        body: Any,
        *,
        raw_size: int,
        override: TaskOverride | None = None,
    ) -> Reply:
        """POST /sources/{sk}/v1/{resources|relationships}/bulk."""
        state = self._source(source)
        return writes.bulk(
            self.config, self._book, state, target, body, raw_size=raw_size, override=override
        )

    # -- task status --------------------------------------------------------------------------

    @_endpoint
    def bulk_status(
        self, source: str, target: BulkTarget, task_id: str, *, with_receipts: bool
    ) -> Reply:
        """GET /sources/{sk}/v1/{resources|relationships}/bulk/{bulkId}: `{status, receipts?}`."""
        state = self._source(source)
        task = self._book.find(source, task_id, (TaskKind.BULK,))
        if task is None or task.bulk_target != target:
            raise refuse(NOT_FOUND, f"bulk task '{task_id}' not found", status=404)
        self._book.poll(task, state)
        return Reply(200, task.body(with_receipts=with_receipts, with_task_id=False))

    @_endpoint
    def task_status(self, source: str, task_id: str, *, with_receipts: bool) -> Reply:
        """GET /sources/{sk}/v1/tasks/{taskId}: `{status, taskId, receipts?}`."""
        state = self._source(source)
        task = self._book.find(source, task_id, tuple(TaskKind))
        if task is None:
            raise refuse(NOT_FOUND, f"task '{task_id}' not found", status=404)
        self._book.poll(task, state)
        return Reply(200, task.body(with_receipts=with_receipts, with_task_id=True))

    # -- single resources -----------------------------------------------------------------------

    @_endpoint
    def create_resource(
        self, source: str, type_: str, body: Any, *, override: TaskOverride | None = None
    ) -> Reply:
        """POST /sources/{sk}/v1/resources/{type}: id optional (or `@rootId`: generated)."""
        state = self._source(source)
        op = state.assign_id(resource_write("CREATE", type_, None, body))
        return self._single_write(state, op, override, "resource")

    @_endpoint
    def upsert_resource(
        self,
        source: str,
        type_: str,
        id_: str,
        body: Any,
        *,
        override: TaskOverride | None = None,
    ) -> Reply:
        """PUT /sources/{sk}/v1/resources/{type}/{id}: full replace, or create."""
        state = self._source(source)
        op = resource_write("UPSERT", type_, id_, body)
        return self._single_write(state, op, override, "resource")

    @_endpoint
    def get_resource(self, source: str, type_: str, id_: str) -> Reply:
        """GET /sources/{sk}/v1/resources/{type}/{id}: the record with its server `meta`."""
        found = self._source(source).get_resource(type_, id_)
        if found is None:
            raise refuse(NOT_FOUND, f"record with id '{id_}' not found", status=404)
        return Reply(200, found)

    @_endpoint
    def delete_resource(self, source: str, type_: str, id_: str) -> Reply:
        """DELETE /sources/{sk}/v1/resources/{type}/{id}: `{taskId, status}`."""
        state = self._source(source)
        check_key(type_, "resourceType")
        return self._single_write(state, ResourceOp("DELETE", type_, id_, {}), None, None)

    # -- single relationships ---------------------------------------------------------------------

    @_endpoint
    def create_relationship(
        self, source: str, type_: str, body: Any, *, override: TaskOverride | None = None
    ) -> Reply:
        """POST /sources/{sk}/v1/relationships/{type}."""
        state = self._source(source)
        return self._single_write(state, relationship_write(type_, body), override, "relationship")

    @_endpoint
    def get_relationship(self, source: str, type_: str, rel_id: str) -> Reply:
        """GET /sources/{sk}/v1/relationships/{type}/{id}, either id form."""
        state = self._source(source)
        check_key(type_, "relationshipType")
        from_, to = relationship_ends(rel_id, state.relationship_definitions.get(type_))
        found = state.get_relationship(type_, from_, to)
        if found is None:
            raise refuse(NOT_FOUND, f"record with id '{rel_id}' not found", status=404)
        return Reply(200, found)

    @_endpoint
    def delete_relationship(self, source: str, type_: str, rel_id: str) -> Reply:
        """DELETE /sources/{sk}/v1/relationships/{type}/{id}, either id form."""
        state = self._source(source)
        check_key(type_, "relationshipType")
        from_, to = relationship_ends(rel_id, state.relationship_definitions.get(type_))
        return self._single_write(state, RelationshipOp("DELETE", type_, from_, to, {}), None, None)

    def _single_write(
        self,
        state: SourceState,
        op: Operation,
        override: TaskOverride | None,
        echo: str | None,
    ) -> Reply:
        return writes.single_write(self.config, self._book, self._clock, state, op, override, echo)

    # -- purge ------------------------------------------------------------------------------------

    @_endpoint
    def purge(self, source: str, body: Any) -> Reply:
        """POST /sources/{sk}/v1/purge: always ACCEPTED; resources take their relationships."""
        state = self._source(source)
        collection_type, key = read_purge(state, body)
        task = self._book.accept(state, TaskKind.PURGE, None, purge=PurgeJob(collection_type, key))
        answer = {"taskId": task.task_id, "status": "ACCEPTED"}
        return Reply(202, {**answer, "purgeOperation": task.purge_operation()})

    @_endpoint
    def purge_status(self, source: str, purge_id: str) -> Reply:
        """GET /sources/{sk}/v1/purge/{purgeId}: the purgeOperation (`pg_`, `purge:` or bare)."""
        state = self._source(source)
        task = self._book.find(source, purge_id, (TaskKind.PURGE,))
        if task is None:
            raise refuse(NOT_FOUND, f"purge '{purge_id}' not found", status=404)
        self._book.poll(task, state)
        return Reply(200, task.purge_operation())

    # -- sources, profiles, relationship definitions ---------------------------------------------

    @_endpoint
    def create_source(self, source: str, body: Any) -> Reply:
        """PUT /catalog/v1/sources/{sk} with `{"type": "registry"}`; idempotent."""
        if not is_source_key(source):
            raise refuse(INVALID_ARGUMENT, f"sourceKey: '{source}' is not a valid source key")
        if not isinstance(body, dict) or body.get("type") != "registry" or len(body) != 1:
            raise refuse(INVALID_ARGUMENT, 'body: expected {"type": "registry"}')
        if source not in self._sources:
            self._sources[source] = self._new_source(source)
        return Reply(200, {"key": source, "type": "registry"})

    @_endpoint
    def get_profile(self, source: str, key: str) -> Reply:
        """GET /sources/{sk}/v1/profiles/{key}."""
        found = self._source(source).profiles.get(key)
        if found is None:
            raise refuse(NOT_FOUND, f"profile '{key}' not found", status=404)
        return Reply(200, copy.deepcopy(found))

    @_endpoint
    def put_profile(self, source: str, key: str, body: Any) -> Reply:
        """PUT /sources/{sk}/v1/profiles/{key}: create or replace; future writes only."""
        state = self._source(source)
        check_key(key, "profileKey")
        refuse_profile(key, body)
        state.profiles[key] = copy.deepcopy(body)
        return Reply(200, copy.deepcopy(body))

    @_endpoint
    def get_relationship_definition(self, source: str, key: str) -> Reply:
        """GET /sources/{sk}/v1/relationship-definitions/{key}."""
        found = self._source(source).relationship_definitions.get(key)
        if found is None:
            raise refuse(NOT_FOUND, f"relationship definition '{key}' not found", status=404)
        return Reply(200, copy.deepcopy(found))

    @_endpoint
    def put_relationship_definition(self, source: str, key: str, body: Any) -> Reply:
        """PUT /sources/{sk}/v1/relationship-definitions/{key}: its profiles must exist."""
        state = self._source(source)
        check_key(key, "relationshipDefinitionKey")
        refuse_relationship_definition(key, body, state.profiles)
        state.relationship_definitions[key] = copy.deepcopy(body)
        return Reply(200, copy.deepcopy(body))

    # -- inspection --------------------------------------------------------------------------------

    @_locked
    def snapshot(self, source: str) -> dict[str, Any]:
        """Every record of a source as stored: `{"resources": [...], "relationships": [...]}`."""
        state = self._sources.get(source)
        return state.snapshot() if state else {"resources": [], "relationships": []}

    @_locked
    def counts(self) -> dict[str, dict[str, int]]:
        """Per source: how many resources, relationships and tasks."""
        return {
            key: {**state.counts(), "tasks": len(self._book.ids_of(key))}
            for key, state in self._sources.items()
        }

    @_locked
    def write_log(self) -> list[dict[str, Any]]:
        """Every write applied, in order: `{seq, source, target, action, type, id, taskId}`."""
        return self._book.log()

    @_locked
    def task_ids_of(self, source: str) -> list[str]:
        """The ids of a source's tasks, in acceptance order."""
        return self._book.ids_of(source)

    @_locked
    def reset(self) -> None:
        """Forget every source, record, task and log entry; generators restart from the seed."""
        self._clear()

    # -- internals ---------------------------------------------------------------------------------

    def _new_source(self, key: str) -> SourceState:
        return SourceState(
            key,
            clock=self._clock,
            new_id=self._new_id,
            delete_policy=self.config.delete_policy,
            bundle_failures=self.config.bundle_failures,
        )

    def _source(self, source: str) -> SourceState:
        if not is_source_key(source):
            raise refuse(INVALID_ARGUMENT, f"sourceKey: '{source}' is not a valid source key")
        state = self._sources.get(source)
        if state is None:
            if self.config.strict_sources:
                raise refuse(NOT_FOUND, f"source '{source}' not found", status=404)
            state = self._sources[source] = self._new_source(source)
        state.delete_policy = self.config.delete_policy
        state.bundle_failures = self.config.bundle_failures
        return state
