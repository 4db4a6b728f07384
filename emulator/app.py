"""The emulator's ASGI app: the Registry's HTTP surface over `Registry`, with auth and faults.

Each request goes: request log and per-task in-flight count (`EmulatorApp.__call__`), the API key,
then its route's handler: read the body, consult the fault plan, check the path ids and the JSON
(`request_inputs`), call the registry in a worker thread (`routes.call_registry`), answer. The
admin API under `/_emulator/` needs no Registry key and is never logged. See docs/emulator.md for
every choice made here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Message, Receive, Scope, Send

from emulator import admin
from emulator.auth import ADMIN_TOKEN_HEADER, API_KEY_HEADER, check_key, header_values
from emulator.config import EmulatorConfig
from emulator.faults import DropEffect, FaultDecision, FaultPlan, RequestFacts
from emulator.http_errors import fault_response, http_error, internal_error
from emulator.registry import Registry, Reply, TaskOverride
from emulator.request_inputs import check_path_params, parse_body, parse_with_receipts, summarise
from emulator.requestlog import ConcurrencyTracker, RequestLog, RequestRecord
from emulator.routes import ROUTE_NAMES, ROUTES, Call, RouteSpec, call_registry
from emulator.times import utc_now

ADMIN_PREFIX = "/_emulator/"
"""Paths under this prefix are the admin API: no Registry key, no faults, not logged."""
_RECORD_KEY = "emulator.record"

Sleep = Callable[[float], Awaitable[None]]
"""An awaitable sleep, injectable so latency faults can be tested without waiting."""


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
    handlers = {HTTPException: http_error, Exception: internal_error}
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
    body, body_error = parse_body(raw) if spec.body else (None, None)
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
        return fault_response(terminal)
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


class _NoAnswer(Response):
    """A response that sends nothing, so the app can tell the server to drop the connection."""

    def __init__(self) -> None:
        super().__init__(status_code=500)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None
