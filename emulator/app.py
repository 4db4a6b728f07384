"""The emulator's ASGI app: the Registry's HTTP surface over `Registry`, with auth and faults.

Each request goes: request log and per-task in-flight count (`EmulatorApp.__call__`), the API key,
then its route's handler: read the body, consult the fault plan, check the path ids and the JSON,
call the registry in a worker thread, answer. The admin API under `/_emulator/` needs no Registry
key and is never logged. See docs/emulator.md for every choice made here.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Message, Receive, Scope, Send

from api_client.ids import (
    RESOURCE_ID_PATTERN,
    SOURCE_KEY_PATTERN,
    TASK_ID_PATTERN,
    TYPE_KEY_PATTERN,
    is_resource_id,
    is_source_key,
    is_task_id,
    is_type_key,
)
from emulator import admin, failures
from emulator.auth import ADMIN_TOKEN_HEADER, API_KEY_HEADER, check_key, header_values
from emulator.config import EmulatorConfig
from emulator.faults import DropEffect, FaultDecision, FaultPlan, RequestFacts, StatusEffect
from emulator.registry import Registry, Reply, TaskOverride
from emulator.requestlog import (
    ConcurrencyTracker,
    RequestLog,
    RequestRecord,
    payload_ids,
    summarise_operations,
)
from emulator.times import utc_now

ADMIN_PREFIX = "/_emulator/"
"""Paths under this prefix are the admin API: no Registry key, no faults, not logged."""
_RECORD_KEY = "emulator.record"

Sleep = Callable[[float], Awaitable[None]]
"""An awaitable sleep, injectable so latency faults can be tested without waiting."""


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


class _Dropped:
    """What the app returns to the ASGI server to have it close the socket without answering.

    uvicorn closes the connection, writing nothing, when an app returns anything but None before
    starting a response (and logs one error line showing this object's repr).
    """

    def __repr__(self) -> str:
        return "<connection dropped by emulator fault injection>"


DROPPED = _Dropped()
"""The marker `EmulatorApp` returns for a dropped connection."""


@dataclass
class EmulatorContext:
    """Everything the handlers share: the registry, the fault plan, and what was observed."""

    registry: Registry
    faults: FaultPlan
    requests: RequestLog
    concurrency: ConcurrencyTracker = field(default_factory=ConcurrencyTracker)
    sleep: Sleep = asyncio.sleep
    clock: Callable[[], datetime] = utc_now
    admin_token: SecretStr | None = None

    @property
    def config(self) -> EmulatorConfig:
        """The registry's live configuration (the admin API edits it in place)."""
        return self.registry.config


class EmulatorApp(Starlette):
    """A Starlette app that logs Registry requests, checks the key, and can drop a connection."""

    context: EmulatorContext

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        path: str = scope.get("path", "")
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return None
        if path.startswith(ADMIN_PREFIX) or path == ADMIN_PREFIX.rstrip("/"):
            await self._admin(scope, receive, send)
            return None
        return await self._registry_request(scope, receive, send)

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = self.context.admin_token
        if token is not None:
            denied = check_key(header_values(scope["headers"], ADMIN_TOKEN_HEADER), token)
            if denied is not None:
                denied["message"] = "admin API: missing or invalid X-Emulator-Admin-Token"
                await JSONResponse(denied, status_code=401)(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _registry_request(self, scope: Scope, receive: Receive, send: Send) -> Any:
        ctx = self.context
        record = RequestRecord(method=scope["method"], path=scope["path"], at=ctx.clock())
        scope[_RECORD_KEY] = record
        record.route, params = self._match(scope)
        record.source = params.get("sourceKey")
        task_id = params.get("taskId")

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            await send(message)

        started = time.perf_counter()
        tracking = ctx.concurrency.track(task_id) if task_id else nullcontext()
        try:
            with tracking:
                presented = header_values(scope["headers"], API_KEY_HEADER)
                denied = check_key(presented, ctx.config.api_key)
                if denied is not None:
                    await JSONResponse(denied, status_code=401)(scope, receive, recording_send)
                else:
                    await super().__call__(scope, receive, recording_send)
        finally:
            record.duration_ms = round((time.perf_counter() - started) * 1000, 3)
            ctx.requests.append(record)
        return DROPPED if record.dropped else None

    def _match(self, scope: Scope) -> tuple[str | None, dict[str, str]]:
        for route in self.routes:
            match, child = route.matches(scope)
            if match is Match.FULL and isinstance(route, Route):
                return route.name, dict(child.get("path_params", {}))
        return None, {}


RELATIONSHIP_ID_PATTERN = re.compile(r"[\x21-\x7e]{1,400}", re.ASCII)
"""A relationship id in a path: printable ASCII; the registry judges its form."""

_PATH_PARAM_RULES: dict[str, tuple[Callable[[str], bool], str]] = {
    "sourceKey": (is_source_key, SOURCE_KEY_PATTERN.pattern),
    "resourceType": (is_type_key, TYPE_KEY_PATTERN.pattern),
    "relationshipType": (is_type_key, TYPE_KEY_PATTERN.pattern),
    "profileKey": (is_type_key, TYPE_KEY_PATTERN.pattern),
    "relationshipDefinitionKey": (is_type_key, TYPE_KEY_PATTERN.pattern),
    "resourceId": (is_resource_id, RESOURCE_ID_PATTERN.pattern),
    "taskId": (is_task_id, TASK_ID_PATTERN.pattern),
    "relationshipId": (
        lambda value: RELATIONSHIP_ID_PATTERN.fullmatch(value) is not None,
        RELATIONSHIP_ID_PATTERN.pattern,
    ),
}

_BOOLEANS = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}
"""The spellings Go's strconv.ParseBool accepts, case-insensitively (the Registry is in Go)."""

_ERROR_TYPES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ALREADY_EXISTS",
    413: "CONTENT_TOO_LARGE",
    429: "RESOURCE_EXHAUSTED",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_type_of(status: int) -> str:
    """The gRPC-style error type the emulator pairs with an HTTP status it makes up itself."""
    fallback = "INVALID_ARGUMENT" if status < 500 else "INTERNAL"
    return _ERROR_TYPES.get(status, "UNAVAILABLE" if status == 502 else fallback)


def error_body(status: int, type_: str, message: str) -> dict[str, Any]:
    """An error in the Registry's shape, with an empty `details`."""
    return failures.error(status, type_, message, [])


def check_path_params(params: dict[str, str]) -> dict[str, Any] | None:
    """The 400 naming the first path segment that is not a valid id, or None."""
    for name, value in params.items():
        rule = _PATH_PARAM_RULES.get(name)
        if rule is not None and not rule[0](value):
            shown = value if len(value) <= 100 else value[:100] + "..."
            message = f"invalid {name} {shown!r} in the path: must match ^{rule[1]}$"
            return error_body(400, "INVALID_ARGUMENT", message)
    return None


def parse_with_receipts(query: QueryParams) -> tuple[bool, dict[str, Any] | None]:
    """The `withReceipts` flag (false when absent), or the 400 naming it."""
    values = query.getlist("withReceipts")
    if not values:
        return False, None
    flag = _BOOLEANS.get(values[-1].lower())
    if flag is None or len(values) > 1:
        message = f"withReceipts: expected true or false, got {values!r}"[:200]
        return False, error_body(400, "INVALID_ARGUMENT", message)
    return flag, None


def summarise(spec: RouteSpec, params: dict[str, str], body: Any) -> tuple[int, tuple[str, ...]]:
    """How many operations a request carries and the ids it touches, for the log and faults."""
    path_ids = tuple(params[key] for key in ("resourceId", "relationshipId") if key in params)
    if spec.ops == "many":
        return summarise_operations(body)
    if spec.ops == "one":
        return 1, tuple(dict.fromkeys(path_ids + payload_ids(body)))
    return 0, path_ids


def create_app(
    registry: Registry | None = None,
    *,
    config: EmulatorConfig | None = None,
    faults: FaultPlan | None = None,
    admin_token: SecretStr | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], datetime] = utc_now,
    max_logged_requests: int | None = None,
) -> EmulatorApp:
    """Build the emulator app; the registry (or a fresh one over `config`) holds the state.

    `sleep` and `clock` are injectable so tests of latency faults and of the request log's times
    need no real waiting. Raises ValueError when `config` is not the registry's own, or when a
    fault rule names an unknown route.
    """
    if registry is None:
        registry = Registry(config if config is not None else EmulatorConfig())
    elif config is not None and config is not registry.config:
        raise ValueError("config: give the registry's own config, or leave it out")
    plan = faults if faults is not None else FaultPlan(seed=registry.config.seed)
    plan.restrict_routes(ROUTE_NAMES)
    log = RequestLog() if max_logged_requests is None else RequestLog(max_logged_requests)
    ctx = EmulatorContext(
        registry=registry,
        faults=plan,
        requests=log,
        sleep=sleep,
        clock=clock,
        admin_token=admin_token,
    )
    table: list[BaseRoute] = [
        Route(spec.path, _endpoint(spec, ctx), methods=[spec.method], name=spec.name)
        for spec in ROUTES
    ]
    table += admin.admin_routes(ctx)
    handlers = {HTTPException: _http_error, Exception: _internal_error}
    app = EmulatorApp(routes=table, exception_handlers=handlers)
    app.context = ctx
    app.state.context = ctx
    return app


def _endpoint(spec: RouteSpec, ctx: EmulatorContext) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await _handle(spec, ctx, request)

    endpoint.__name__ = spec.name
    return endpoint


async def _handle(spec: RouteSpec, ctx: EmulatorContext, request: Request) -> Response:
    record: RequestRecord = request.scope[_RECORD_KEY]
    raw = await request.body()
    params = dict(request.path_params)
    body, body_error = _parse_body(raw) if spec.body else (None, None)
    record.op_count, record.ids = summarise(spec, params, body)
    facts = RequestFacts(
        method=spec.method,
        path=request.url.path,
        route=spec.name,
        source=params.get("sourceKey"),
        op_ids=frozenset(record.ids),
        op_count=record.op_count,
        accepts_override=spec.override,
    )
    decision = ctx.faults.decide(facts)
    record.faults = decision.fired
    if decision.latency_s:
        await ctx.sleep(decision.latency_s)
    with_receipts, receipts_error = parse_with_receipts(request.query_params)
    refusal = check_path_params(params) or body_error or receipts_error
    call = Call(params, body, len(raw), with_receipts, _override(decision))
    terminal = decision.terminal
    if terminal is not None:
        if terminal.apply_first and refusal is None:
            await run_in_threadpool(call_registry, ctx.registry, spec.name, call)
        if isinstance(terminal, DropEffect):
            record.dropped = True
            return _NoAnswer()
        return _fault_response(terminal)
    if refusal is not None:
        return JSONResponse(refusal, status_code=refusal["code"])
    reply: Reply = await run_in_threadpool(call_registry, ctx.registry, spec.name, call)
    if decision.late_s:
        await ctx.sleep(decision.late_s)
    return JSONResponse(reply.body, status_code=reply.status)


def _override(decision: FaultDecision) -> TaskOverride | None:
    if not decision.has_override:
        return None
    return TaskOverride(
        pending_polls=decision.pending_polls,
        failure=decision.failure,
        force_async=decision.force_async,
    )


def _parse_body(raw: bytes) -> tuple[Any, dict[str, Any] | None]:
    try:
        return json.loads(raw), None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = "the body is empty" if not raw.strip() else f"invalid JSON: {exc}"
        return None, error_body(400, "INVALID_ARGUMENT", f"request body: {reason}")


def _fault_response(effect: StatusEffect) -> Response:
    headers: dict[str, str] = {}
    retry_after = effect.retry_after or ("1" if effect.status == 429 else None)
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if effect.text_body is not None:
        return Response(effect.text_body, status_code=effect.status, headers=headers)
    message = effect.message or f"injected fault: HTTP {effect.status}"
    error_type = effect.error_type or error_type_of(effect.status)
    body = error_body(effect.status, error_type, message)
    return JSONResponse(body, status_code=effect.status, headers=headers)


class _NoAnswer(Response):
    """A response that sends nothing, so the app can tell the server to drop the connection."""

    def __init__(self) -> None:
        super().__init__(status_code=500)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = exc.detail
    body = error_body(exc.status_code, error_type_of(exc.status_code), message)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A bug in the emulator answers 500 INTERNAL in the Registry's shape (and is re-raised)."""
    message = f"emulator error: {type(exc).__name__}"
    return JSONResponse(error_body(500, "INTERNAL", message), status_code=500)
