"""One source's records, and the pure rules that change them: the emulator's model, and the oracle.

`SourceState` knows nothing of HTTP, tasks or answer modes. It takes raw operations (dicts as
parsed from a request body), judges them, applies them and returns the Registry's receipts.
Property tests use it as their oracle, one operation at a time:

    state = SourceState("hospital-a", clock=clock, new_id=ids)
    receipt = state.apply_resource_operation({"action": "CREATE", "create": {...}})
    receipt = state.apply_relationship_operation({"action": "DELETE", "delete": {...}})
    resource_receipts, relationship_receipts = state.apply_bundle(body)
    state.snapshot()  # {"resources": [...], "relationships": [...]}, sorted by key

A receipt is `{"id", "type", "status": "SUCCESS"|"FAILURE"|"CANCELLED", "receivedAt", "error"?}`
(the seed's bundle receipt). Each apply_* call is atomic: a FAILURE changes nothing. The outcome
of one operation, in the order checks run:
- not well formed -> FAILURE INVALID_ARGUMENT naming the field;
- an id that is not a resource id, or a virtual id left unresolved (on UPSERT/DELETE, or never
  created in this bundle) -> FAILURE INVALID_ARGUMENT;
- no profile / relationship definition for the type -> FAILURE FAILED_PRECONDITION;
- relationship endpoint types other than the definition's -> FAILURE INVALID_ARGUMENT;
- content off its profile -> FAILURE FAILED_PRECONDITION `invalid schema for <type>` + details;
- meta off the documented rules -> FAILURE INVALID_ARGUMENT `invalid meta for <type>` + details;
- CREATE of an existing id -> FAILURE ALREADY_EXISTS (409); DELETE of a missing one -> NOT_FOUND;
- relationship CREATE/UPSERT with a missing endpoint -> FAILURE FAILED_PRECONDITION (400);
- DELETE of a resource with relationships -> CASCADE deletes them too; REFUSE -> FAILURE
  FAILED_PRECONDITION naming how many.
A CREATE without an id, or with `@rootId<N>`, gets a generated id (from `new_id`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final

from api_client.ids import is_virtual_id
from emulator.bundles import BundlePlan, plan_bundle
from emulator.checks import check_relationship, check_resource
from emulator.config import BundleFailures, DeletePolicy
from emulator.failures import (
    JSON,
    already_exists,
    failed_precondition,
    record_not_found,
)
from emulator.operations import (
    RELATIONSHIP,
    RESOURCE,
    Endpoint,
    Operation,
    RelationshipOp,
    ResourceOp,
    ShapeError,
    loose_identity,
    parse_relationship_operation,
    parse_resource_operation,
)
from emulator.profiles import default_profiles, default_relationship_definitions
from emulator.times import format_time

SUCCESS: Final = "SUCCESS"
FAILURE: Final = "FAILURE"
CANCELLED: Final = "CANCELLED"

ResourceKey = tuple[str, str]
RelationshipKey = tuple[str, str, str, str, str]


def receipt(id_: str, type_: str, status: str, received_at: str, error: JSON | None = None) -> JSON:
    """A bundle receipt, keys in the seed's (alphabetical) order."""
    body: JSON = {} if error is None else {"error": error}
    body.update({"id": id_, "receivedAt": received_at, "status": status, "type": type_})
    return body


class SourceState:
    """One source: its profiles, relationship definitions, resources and relationships."""

    def __init__(
        self,
        key: str = "source",
        *,
        clock: Callable[[], datetime],
        new_id: Callable[[], str],
        delete_policy: DeletePolicy = DeletePolicy.CASCADE,
        bundle_failures: BundleFailures = BundleFailures.FIRST,
        profiles: dict[str, JSON] | None = None,
        relationship_definitions: dict[str, JSON] | None = None,
    ) -> None:
        self.key = key
        self.clock = clock
        self.new_id = new_id
        self.delete_policy = delete_policy
        self.bundle_failures = bundle_failures
        self.profiles = default_profiles() if profiles is None else profiles
        self.relationship_definitions = (
            default_relationship_definitions()
            if relationship_definitions is None
            else relationship_definitions
        )
        self._resources: dict[ResourceKey, JSON] = {}
        self._relationships: dict[RelationshipKey, JSON] = {}
        self._links: dict[ResourceKey, set[RelationshipKey]] = {}
        self._undo: list[tuple[str, Any, JSON | None]] | None = None
        self._writes: list[JSON] = []

    # -- the oracle API --------------------------------------------------------------------

    def apply_resource_operation(self, op: Any) -> JSON:
        """Judge and apply one raw resource operation atomically; its receipt."""
        received_at = format_time(self.clock())
        try:
            parsed = parse_resource_operation(op, "operation")
        except ShapeError as exc:
            type_, id_ = loose_identity(op, RESOURCE)
            return receipt(id_, type_, FAILURE, received_at, exc.as_error())
        parsed = self.assign_id(parsed)
        return self._receipt_of(parsed, self.execute(parsed), received_at)

    def apply_relationship_operation(self, op: Any) -> JSON:
        """Judge and apply one raw relationship operation atomically; its receipt."""
        received_at = format_time(self.clock())
        try:
            parsed = parse_relationship_operation(op, "operation")
        except ShapeError as exc:
            type_, id_ = loose_identity(op, RELATIONSHIP)
            return receipt(id_, type_, FAILURE, received_at, exc.as_error())
        return self._receipt_of(parsed, self.execute(parsed), received_at)

    def apply_bundle(self, body: Any) -> tuple[list[JSON], list[JSON]]:
        """Run a raw bundle atomically: (resource receipts, relationship receipts).

        Raises RequestRefusedError (400) for a bundle refused as a whole: a shape error, or two
        operations on one id. Size and count limits are the Registry facade's, not checked here.
        """
        return self.execute_bundle(self.plan_bundle(body))

    def snapshot(self) -> dict[str, list[JSON]]:
        """Every stored record, as stored (with meta), sorted by key: for equality checks."""
        return {
            "resources": [copy.deepcopy(self._resources[k]) for k in sorted(self._resources)],
            "relationships": [
                copy.deepcopy(self._relationships[k]) for k in sorted(self._relationships)
            ],
        }

    # -- steps, for the facade and tasks ------------------------------------------------------

    def plan_bundle(self, body: Any) -> BundlePlan:
        """Shape-check a bundle, refuse duplicate ids, generate and resolve virtual ids."""
        return plan_bundle(body, self.profiles, self.new_id)

    def assign_id(self, op: ResourceOp) -> ResourceOp:
        """A CREATE without an id, or with a virtual id, aimed at a freshly generated id."""
        if op.action == "CREATE" and (op.id is None or is_virtual_id(op.id)):
            return op.with_id(self.new_id())
        return op

    def check(self, op: Operation) -> JSON | None:
        """What is wrong with an operation whatever the records (ids, profile, schema, meta)."""
        if isinstance(op, ResourceOp):
            return check_resource(op, self.profiles, self.key, self.clock())
        return check_relationship(op, self.relationship_definitions, self.key, self.clock())

    def execute(self, op: Operation) -> JSON | None:
        """Apply one parsed operation atomically; its error, or None when it succeeded."""
        error = self.check(op)
        if error is not None:
            return error
        if isinstance(op, ResourceOp):
            return self._write_resource_op(op)
        return self._write_relationship_op(op)

    def execute_bundle(self, plan: BundlePlan) -> tuple[list[JSON], list[JSON]]:
        """Run a plan all or nothing: a FAILURE cancels every operation that did not fail.

        `bundle_failures` FIRST stops at the first failing operation; ALL runs on, each operation
        judged on the records as the operations before it left them (a failing one changes
        nothing), so every failing operation gets its own FAILURE. Nothing is kept either way.
        """
        outcomes: list[tuple[Operation, JSON | None, str]] = []
        failed = False
        every = self.bundle_failures == BundleFailures.ALL
        with self._transaction() as rollback:
            for ops in (plan.resources, plan.relationships):
                received = format_time(self.clock())
                for op in ops:
                    error = None if failed and not every else self.execute(op)
                    failed = failed or error is not None
                    outcomes.append((op, error, received))
            if failed:
                rollback()
        receipts = [
            self._receipt_of(op, error, received, cancelled=failed)
            for op, error, received in outcomes
        ]
        split = len(plan.resources)
        return receipts[:split], receipts[split:]

    def fail_bundle(self, plan: BundlePlan, error: JSON) -> tuple[list[JSON], list[JSON]]:
        """The receipts of a bundle failed as a whole (an injected failure): nothing applied."""
        received = format_time(self.clock())
        return (
            [receipt(op.receipt_id, op.type, FAILURE, received, error) for op in plan.resources],
            [
                receipt(op.receipt_id, op.type, FAILURE, received, error)
                for op in plan.relationships
            ],
        )

    def purge(self, collection_type: str, collection_key: str) -> int:
        """Delete a whole collection; resources take their relationships along. How many."""
        if collection_type == "resources":
            keys = [key for key in self._resources if key[0] == collection_key]
            for key in keys:
                self._delete_resource(key)
            return len(keys)
        rel_keys = [key for key in self._relationships if key[0] == collection_key]
        for rel_key in rel_keys:
            self._set_relationship(rel_key, None)
        return len(rel_keys)

    def drain_writes(self) -> list[JSON]:
        """The writes applied since the last call, in order: `{target, action, type, id}`."""
        writes, self._writes = self._writes, []
        return writes

    # -- reads ----------------------------------------------------------------------------

    def get_resource(self, type_: str, id_: str) -> JSON | None:
        """A copy of a stored resource, or None."""
        found = self._resources.get((type_, id_))
        return copy.deepcopy(found) if found is not None else None

    def get_relationship(self, type_: str, from_: Endpoint, to: Endpoint) -> JSON | None:
        """A copy of a stored relationship, or None."""
        found = self._relationships.get((type_, from_.type, from_.id, to.type, to.id))
        return copy.deepcopy(found) if found is not None else None

    def counts(self) -> dict[str, int]:
        """How many resources and relationships are stored."""
        return {"resources": len(self._resources), "relationships": len(self._relationships)}

    # -- writes ---------------------------------------------------------------------------

    def _write_resource_op(self, op: ResourceOp) -> JSON | None:
        id_ = op.receipt_id
        key = (op.type, id_)
        existing = self._resources.get(key)
        if op.action == "DELETE":
            if existing is None:
                return record_not_found(id_)
            links = self._links.get(key, set())
            if links and self.delete_policy == DeletePolicy.REFUSE:
                return failed_precondition(
                    f"record with id '{id_}' has {len(links)} relationship(s); delete them first"
                )
            self._delete_resource(key)
            return None
        if existing is not None and op.action == "CREATE":
            return already_exists(id_)
        self._set_resource(key, self._resource_entity(op, existing), op.action)
        return None

    def _write_relationship_op(self, op: RelationshipOp) -> JSON | None:
        existing = self._relationships.get(op.key)
        if op.action == "DELETE":
            if existing is None:
                return record_not_found(op.receipt_id)
            self._set_relationship(op.key, None)
            return None
        if existing is not None and op.action == "CREATE":
            return already_exists(op.receipt_id)
        for end, side in ((op.from_, "from"), (op.to, "to")):
            if (end.type, end.id) not in self._resources:
                return failed_precondition(
                    f"{side} resource '{end.type}' with id '{end.id}' does not exist"
                )
        self._set_relationship(op.key, self._relationship_entity(op, existing), op.action)
        return None

    def preview(self, op: Operation) -> JSON:
        """The record a CREATE or UPSERT would store now, for an ACCEPTED answer's echo."""
        if isinstance(op, ResourceOp):
            return self._resource_entity(op, self._resources.get((op.type, op.receipt_id)))
        return self._relationship_entity(op, self._relationships.get(op.key))

    def _resource_entity(self, op: ResourceOp, existing: JSON | None) -> JSON:
        entity: JSON = {"id": op.receipt_id, "type": op.type, "data": copy.deepcopy(op.data)}
        if op.contained is not None:
            entity["contained"] = copy.deepcopy(op.contained)
        entity["meta"] = self._meta(op.meta, existing)
        return entity

    def _relationship_entity(self, op: RelationshipOp, existing: JSON | None) -> JSON:
        return {
            "id": f"{op.from_.id}.{op.to.id}",
            "type": op.type,
            "from": {"id": op.from_.id, "type": op.from_.type},
            "to": {"id": op.to.id, "type": op.to.type},
            "data": copy.deepcopy(op.data),
            "meta": self._meta(op.meta, existing),
        }

    def _meta(self, given: dict[str, Any] | None, existing: JSON | None) -> JSON:
        """The stored meta of a write; what a write that names no `createdAt` keeps is a choice.

        The documentation says only that meta is accepted on CREATE and UPSERT. A write that names
        no `createdAt` keeps the stored record's (now for a new record): a creation time that
        survives updates is the more likely real behaviour, and the stricter case for a client,
        which must not assume an UPSERT replaces meta in full (docs/coalescing.md, "Meta").
        `updatedAt` is the given one or now; `identifier` is the given one or none (replaced in
        full); `source` is always the source key. See docs/emulator.md, section 4.
        """
        now = format_time(self.clock())
        given = given or {}
        created = given.get("createdAt") or (existing["meta"]["createdAt"] if existing else now)
        meta: JSON = {"createdAt": created, "updatedAt": given.get("updatedAt") or now}
        if "identifier" in given:
            meta["identifier"] = copy.deepcopy(given["identifier"])
        meta["source"] = self.key
        return meta

    def _delete_resource(self, key: ResourceKey) -> None:
        for rel_key in sorted(self._links.get(key, set())):
            self._set_relationship(rel_key, None)
        self._set_resource(key, None)

    def _set_resource(self, key: ResourceKey, entity: JSON | None, action: str = "DELETE") -> None:
        old = self._resources.get(key)
        if self._undo is not None:
            self._undo.append((RESOURCE, key, old))
        self._put_resource(key, entity)
        self._writes.append({"target": "resource", "action": action, "type": key[0], "id": key[1]})

    def _set_relationship(
        self, key: RelationshipKey, entity: JSON | None, action: str = "DELETE"
    ) -> None:
        old = self._relationships.get(key)
        if self._undo is not None:
            self._undo.append((RELATIONSHIP, key, old))
        self._put_relationship(key, entity)
        rel_id = f"{key[1]}.{key[2]},{key[3]}.{key[4]}"
        self._writes.append(
            {"target": "relationship", "action": action, "type": key[0], "id": rel_id}
        )

    def _put_resource(self, key: ResourceKey, entity: JSON | None) -> None:
        if entity is None:
            self._resources.pop(key, None)
        else:
            self._resources[key] = entity

    def _put_relationship(self, key: RelationshipKey, entity: JSON | None) -> None:
        ends = ((key[1], key[2]), (key[3], key[4]))
        if entity is None:
            self._relationships.pop(key, None)
            for end in ends:
                links = self._links.get(end)
                if links is not None:
                    links.discard(key)
                    if not links:
                        del self._links[end]
        else:
            self._relationships[key] = entity
            for end in ends:
                self._links.setdefault(end, set()).add(key)

    @contextmanager
    def _transaction(self) -> Iterator[Callable[[], None]]:
        """Record every write; the yielded callable undoes them (records and write log)."""
        self._undo = []
        writes_mark = len(self._writes)

        def rollback() -> None:
            undo = self._undo or []
            for target, key, old in reversed(undo):
                if target == RESOURCE:
                    self._put_resource(key, old)
                else:
                    self._put_relationship(key, old)
            undo.clear()
            del self._writes[writes_mark:]

        try:
            yield rollback
        finally:
            self._undo = None

    def _receipt_of(
        self, op: Operation, error: JSON | None, received_at: str, *, cancelled: bool = False
    ) -> JSON:
        if error is not None:
            return receipt(op.receipt_id, op.type, FAILURE, received_at, error)
        status = CANCELLED if cancelled else SUCCESS
        return receipt(op.receipt_id, op.type, status, received_at)
