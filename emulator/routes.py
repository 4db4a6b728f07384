"""The Registry's endpoints as the emulator serves them: the route table, and the one place that
maps a route to its `Registry` method.

A route's name is what fault rules and the request log call it. Documented endpoints outside the
ingestion surface are routed too, so they answer 501 rather than 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from emulator.http_errors import error_body
from emulator.registry import Registry, Reply, TaskOverride

__all__ = ["ROUTES", "ROUTE_NAMES", "Call", "RouteSpec", "call_registry"]


@dataclass(frozen=True)
class Call:
    """One request's validated inputs, as a route's registry call needs them."""

    params: dict[str, str]
    body: Any = None
    raw_size: int = 0
    with_receipts: bool = False
    override: TaskOverride | None = None

    @property
    def source(self) -> str:
        """The request's source key."""
        return self.params["sourceKey"]


@dataclass(frozen=True)
class RouteSpec:
    """One Registry endpoint: its name (for faults and the log), method and path.

    `ops` says how its operations are counted for the request log: "many" (bulk and bundle),
    "one" (a single write) or None (reads and definitions). `override` marks the writes that can
    create a task, to which task faults (pending, task failure, force async) apply.
    """

    name: str
    method: str
    path: str
    body: bool = False
    ops: Literal["many", "one"] | None = None
    override: bool = False


def _write(name: str, method: str, path: str, ops: Literal["many", "one"]) -> RouteSpec:
    """A write that takes a JSON body and may create a task."""
    return RouteSpec(name, method, path, body=True, ops=ops, override=True)


_S = "/sources/{sourceKey}/v1"
_RES = _S + "/resources/{resourceType}/{resourceId}"
_REL = _S + "/relationships/{relationshipType}/{relationshipId}"
_RELDEF = _S + "/relationship-definitions/{relationshipDefinitionKey}"
ROUTES: tuple[RouteSpec, ...] = (
    _write("bundle", "POST", _S + "/bundle", "many"),
    _write("resources_bulk", "POST", _S + "/resources/bulk", "many"),
    RouteSpec("resources_bulk_status", "GET", _S + "/resources/bulk/{taskId}"),
    _write("relationships_bulk", "POST", _S + "/relationships/bulk", "many"),
    RouteSpec("relationships_bulk_status", "GET", _S + "/relationships/bulk/{taskId}"),
    RouteSpec("task_status", "GET", _S + "/tasks/{taskId}"),
    _write("create_relationship", "POST", _S + "/relationships/{relationshipType}", "one"),
    RouteSpec("get_relationship", "GET", _REL),
    RouteSpec("delete_relationship", "DELETE", _REL, ops="one"),
    RouteSpec("patch_relationship", "PATCH", _REL),
    _write("create_resource", "POST", _S + "/resources/{resourceType}", "one"),
    _write("upsert_resource", "PUT", _RES, "one"),
    RouteSpec("get_resource", "GET", _RES),
    RouteSpec("delete_resource", "DELETE", _RES, ops="one"),
    RouteSpec("patch_resource", "PATCH", _RES),
    RouteSpec("upsert_contained_resource", "PUT", _RES + "/{containKey}/{containedResourceId}"),
    RouteSpec("purge", "POST", _S + "/purge", body=True),
    RouteSpec("purge_status", "GET", _S + "/purge/{taskId}"),
    RouteSpec("get_profile", "GET", _S + "/profiles/{profileKey}"),
    RouteSpec("put_profile", "PUT", _S + "/profiles/{profileKey}", body=True),
    RouteSpec("get_relationship_definition", "GET", _RELDEF),
    RouteSpec("put_relationship_definition", "PUT", _RELDEF, body=True),
    RouteSpec("create_source", "PUT", "/catalog/v1/sources/{sourceKey}", body=True),
    RouteSpec("get_pipeline", "GET", _S + "/collections/{collectionKey}/pipeline"),
    RouteSpec("put_pipeline", "PUT", _S + "/collections/{collectionKey}/pipeline"),
    RouteSpec("get_pipeline_execution", "GET", _S + "/pipelines/executions/{executionId}"),
    RouteSpec("get_object", "GET", _S + "/objects/{collectionKey}/{objectId}"),
)
"""Every Registry endpoint, in matching order: the bulk paths before `{relationshipType}`."""

_UNIMPLEMENTED = {
    "patch_relationship": "PATCH of a relationship",
    "patch_resource": "PATCH of a resource",
    "upsert_contained_resource": "the contained-resource upsert",
    "get_pipeline": "pipeline definitions",
    "put_pipeline": "pipeline definitions",
    "get_pipeline_execution": "pipeline executions",
    "get_object": "objects",
}
"""Documented endpoints outside the ingestion surface the emulator covers: they answer 501."""


def call_registry(registry: Registry, route: str, c: Call) -> Reply:
    """Run one route's registry method; the one place that maps routes to the registry."""
    sk, p, ov = c.source, c.params, c.override
    match route:
        case "bundle":
            return registry.bundle(sk, c.body, raw_size=c.raw_size, override=ov)
        case "resources_bulk":
            return registry.bulk(sk, "resources", c.body, raw_size=c.raw_size, override=ov)
        case "relationships_bulk":
            return registry.bulk(sk, "relationships", c.body, raw_size=c.raw_size, override=ov)
        case "resources_bulk_status":
            return registry.bulk_status(sk, "resources", p["taskId"], with_receipts=c.with_receipts)
        case "relationships_bulk_status":
            return registry.bulk_status(
                sk, "relationships", p["taskId"], with_receipts=c.with_receipts
            )
        case "task_status":
            return registry.task_status(sk, p["taskId"], with_receipts=c.with_receipts)
        case "create_relationship":
            return registry.create_relationship(sk, p["relationshipType"], c.body, override=ov)
        case "get_relationship":
            return registry.get_relationship(sk, p["relationshipType"], p["relationshipId"])
        case "delete_relationship":
            return registry.delete_relationship(sk, p["relationshipType"], p["relationshipId"])
        case "create_resource":
            return registry.create_resource(sk, p["resourceType"], c.body, override=ov)
        case "upsert_resource":
            return registry.upsert_resource(
                sk, p["resourceType"], p["resourceId"], c.body, override=ov
            )
        case "get_resource":
            return registry.get_resource(sk, p["resourceType"], p["resourceId"])
        case "delete_resource":
            return registry.delete_resource(sk, p["resourceType"], p["resourceId"])
        case "purge":
            return registry.purge(sk, c.body)
        case "purge_status":
            return registry.purge_status(sk, p["taskId"])
        case "get_profile":
            return registry.get_profile(sk, p["profileKey"])
        case "put_profile":
            return registry.put_profile(sk, p["profileKey"], c.body)
        case "get_relationship_definition":
            return registry.get_relationship_definition(sk, p["relationshipDefinitionKey"])
        case "put_relationship_definition":
            return registry.put_relationship_definition(sk, p["relationshipDefinitionKey"], c.body)
        case "create_source":
            return registry.create_source(sk, c.body)
    what = _UNIMPLEMENTED[route]
    return Reply(501, error_body(501, "UNIMPLEMENTED", f"the emulator does not implement {what}"))


ROUTE_NAMES = frozenset(spec.name for spec in ROUTES)
"""The names a fault rule's `route` may use."""
