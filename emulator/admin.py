"""The admin (inspection) API under `/_emulator/`: what tests read and switch while it runs.

It needs no Registry key (an optional admin token guards it instead) and must never be exposed
beyond the loopback interface: it can read every record, change the accepted key and break
requests at will. Every answer is JSON; errors use the Registry's error shape.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from emulator import failures
from emulator.config import EmulatorConfig
from emulator.faults import FaultRule, UnknownRouteError

if TYPE_CHECKING:
    from emulator.app import EmulatorContext

PREFIX = "/_emulator"

FIXED_AT_START = frozenset({"seed"})
"""Config fields the admin API refuses to change: the registry derives state from them at start."""

_RULES = TypeAdapter(FaultRule | list[FaultRule])
Handler = Callable[[Request], Awaitable[Response]]


class _BadRequestError(Exception):
    """An admin request that cannot be carried out; becomes a 400 with this message."""


def admin_routes(ctx: EmulatorContext) -> list[BaseRoute]:
    """Every admin route, bound to the emulator's shared context."""
    registry = ctx.registry

    async def health(request: Request) -> Response:
        # the process id lets whoever started the emulator on a port check that the answer is
        # its own process, not another one that took the port first
        return _ok({"status": "ok", "pid": os.getpid()})

    async def resources(request: Request) -> Response:
        found = registry.snapshot(request.path_params["sourceKey"])["resources"]
        wanted_type = request.query_params.get("type")
        return _ok([r for r in found if wanted_type is None or r.get("type") == wanted_type])

    async def resource(request: Request) -> Response:
        p = request.path_params
        for record in registry.snapshot(p["sourceKey"])["resources"]:
            if record.get("type") == p["resourceType"] and record.get("id") == p["resourceId"]:
                return _ok(record)
        message = f"no resource {p['resourceType']}/{p['resourceId']} in {p['sourceKey']}"
        return _error(404, "NOT_FOUND", message)

    async def relationships(request: Request) -> Response:
        found = registry.snapshot(request.path_params["sourceKey"])["relationships"]
        query = request.query_params
        return _ok([r for r in found if _relationship_matches(r, query.get)])

    async def tasks(request: Request) -> Response:
        return _ok(registry.task_ids_of(request.path_params["sourceKey"]))

    async def counts(request: Request) -> Response:
        return _ok(registry.counts())

    async def requests(request: Request) -> Response:
        if request.method == "DELETE":
            ctx.requests.clear()
            return Response(status_code=204)
        return _ok(ctx.requests.entries())

    async def writes(request: Request) -> Response:
        return _ok(registry.write_log())

    async def concurrency(request: Request) -> Response:
        if request.method == "DELETE":
            ctx.concurrency.clear()
            return Response(status_code=204)
        return _ok({"highest": ctx.concurrency.highest(), "current": ctx.concurrency.current()})

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            ctx.faults.clear()
            return Response(status_code=204)
        if request.method == "POST":
            return _ok(_add_faults(ctx, await _json(request)), status=201)
        return _ok(ctx.faults.describe())

    async def fault(request: Request) -> Response:
        rule_id = request.path_params["ruleId"]
        if ctx.faults.remove(rule_id):
            return Response(status_code=204)
        return _error(404, "NOT_FOUND", f"no fault rule with id {rule_id!r}")

    async def config(request: Request) -> Response:
        if request.method == "PATCH":
            _patch_config(ctx.config, await _json(request))
        return _ok(describe_config(ctx.config))

    async def reset(request: Request) -> Response:
        registry.reset()
        ctx.requests.clear()
        ctx.concurrency.clear()
        ctx.faults.clear()
        return Response(status_code=204)

    table: list[tuple[str, Handler, list[str]]] = [
        ("/health", health, ["GET"]),
        ("/sources/{sourceKey}/resources", resources, ["GET"]),
        ("/sources/{sourceKey}/resources/{resourceType}/{resourceId}", resource, ["GET"]),
        ("/sources/{sourceKey}/relationships", relationships, ["GET"]),
        ("/sources/{sourceKey}/tasks", tasks, ["GET"]),
        ("/counts", counts, ["GET"]),
        ("/requests", requests, ["GET", "DELETE"]),
        ("/writes", writes, ["GET"]),
        ("/concurrency", concurrency, ["GET", "DELETE"]),
        ("/faults", faults, ["GET", "POST", "DELETE"]),
        ("/faults/{ruleId}", fault, ["DELETE"]),
        ("/config", config, ["GET", "PATCH"]),
        ("/reset", reset, ["POST"]),
    ]
    return [
        Route(PREFIX + path, _guarded(handler), methods=methods, name=f"admin_{handler.__name__}")
        for path, handler, methods in table
    ]


def describe_config(config: EmulatorConfig) -> dict[str, Any]:
    """The configuration as JSON, the API key masked (it never appears in an answer)."""
    described = config.model_dump(mode="json")
    described["api_key"] = "**********"
    return described


def _patch_config(config: EmulatorConfig, patch: Any) -> None:
    """Validate the whole patch first, then assign: a bad field changes nothing."""
    if not isinstance(patch, dict):
        raise _BadRequestError("config: the body must be a JSON object of fields to change")
    unknown = sorted(set(patch) - set(EmulatorConfig.model_fields))
    if unknown:
        raise _BadRequestError(f"{unknown[0]}: not a config field")
    fixed = sorted(set(patch) & FIXED_AT_START)
    if fixed:
        raise _BadRequestError(f"{fixed[0]}: fixed when the emulator starts")
    changes = dict(patch)
    if "source_modes" in changes:
        given = changes["source_modes"]
        if not isinstance(given, dict):
            raise _BadRequestError("source_modes: expected an object of source key -> mode")
        merged = {**config.source_modes, **given}
        changes["source_modes"] = {k: v for k, v in merged.items() if v is not None}
    current = config.model_dump()
    try:
        checked = EmulatorConfig.model_validate({**current, **changes})
    except ValidationError as exc:
        raise _BadRequestError(_describe(exc)) from None
    for name in changes:
        setattr(config, name, getattr(checked, name))


def _add_faults(ctx: EmulatorContext, body: Any) -> list[dict[str, Any]]:
    try:
        parsed = _RULES.validate_python(body)
    except ValidationError as exc:
        raise _BadRequestError(_describe(exc)) from None
    rules = parsed if isinstance(parsed, list) else [parsed]
    try:
        added = [ctx.faults.add(rule) for rule in rules]
    except (UnknownRouteError, ValueError) as exc:
        raise _BadRequestError(str(exc)) from None
    return [rule.model_dump(mode="json", exclude_none=True) for rule in added]


def _relationship_matches(record: dict[str, Any], query: Callable[[str], str | None]) -> bool:
    wanted = {"type": query("type"), "from": query("from"), "to": query("to")}
    if wanted["type"] is not None and record.get("type") != wanted["type"]:
        return False
    for end in ("from", "to"):
        endpoint = record.get(end)
        if wanted[end] is not None and (
            not isinstance(endpoint, dict) or endpoint.get("id") != wanted[end]
        ):
            return False
    return True


def _guarded(handler: Handler) -> Handler:
    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except _BadRequestError as exc:
            return _error(400, "INVALID_ARGUMENT", str(exc))

    guarded.__name__ = handler.__name__
    return guarded


async def _json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _BadRequestError(f"request body: invalid JSON: {exc}") from None


def _describe(exc: ValidationError) -> str:
    """Each problem as `field.path: reason`, without echoing the input (it may hold a key)."""
    parts = []
    for problem in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in problem["loc"]) or "body"
        parts.append(f"{where}: {problem['msg']}")
    return "; ".join(parts)


def _ok(body: Any, *, status: int = 200) -> Response:
    return JSONResponse(body, status_code=status)


def _error(status: int, type_: str, message: str) -> Response:
    return JSONResponse(failures.error(status, type_, message, []), status_code=status)
