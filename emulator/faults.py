"""Fault injection rules: which request misbehaves, and how, decided deterministically under a seed.

Pure: no HTTP and no clock. The HTTP layer describes each request as `RequestFacts`, asks
`FaultPlan.decide()` what to do, and carries out the returned `FaultDecision` (sleep, answer an
error, drop the connection, or pass a task override to the registry).

A rule has optional *filters* (route, source, op_id, min_ops) that decide which requests it looks
at, and optional *triggers* (calls, every, first, probability) evaluated on the requests that
passed the filters; every given condition must hold. `times` caps how often the rule fires.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

MAX_FAULT_SECONDS = 3600.0
"""The longest latency or late answer a rule may ask for, so a typo cannot hang a test run."""

_METHODS = frozenset({"*", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class _Effect(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LatencyEffect(_Effect):
    """Delay the request by `seconds` before handling it (it is then handled normally)."""

    kind: Literal["latency"] = "latency"
    seconds: float = Field(gt=0, le=MAX_FAULT_SECONDS)


class StatusEffect(_Effect):
    """Answer an HTTP error without touching the registry (unless `apply_first`).

    Covers 429 (with Retry-After), 500/502/503/504, 401/403, and a whole request refused with
    400 or 413 and no receipts. `apply_first` applies the request first, then answers the error:
    the "maybe applied" case a client must resolve by reading back.
    """

    kind: Literal["status"] = "status"
    status: int = Field(ge=400, le=599)
    retry_after: str | None = None
    message: str | None = None
    error_type: str | None = None
    text_body: str | None = None
    apply_first: bool = False

    @field_validator("retry_after")
    @classmethod
    def _check_retry_after(cls, value: str | None) -> str | None:
        if value is None or value.isdigit():
            return value
        try:
            parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            raise ValueError("must be whole seconds or an HTTP date") from None
        return value


class DropEffect(_Effect):
    """Close the connection without any answer (after applying the request if `apply_first`)."""

    kind: Literal["drop"] = "drop"
    apply_first: bool = False


class PendingEffect(_Effect):
    """Make the submitted task answer PENDING (receipts IN_REVIEW) to this many polls."""

    kind: Literal["pending"] = "pending"
    polls: PositiveInt


class TaskFailureEffect(_Effect):
    """End the submitted task FAILURE with this error on every operation (nothing applied)."""

    kind: Literal["task_failure"] = "task_failure"
    error: dict[str, Any] = Field(
        default_factory=lambda: {
            "code": 500,
            "message": "injected task failure",
            "type": "INTERNAL",
            "details": [],
        }
    )

    @field_validator("error")
    @classmethod
    def _check_error(cls, value: dict[str, Any]) -> dict[str, Any]:
        missing = [key for key in ("code", "message", "type") if key not in value]
        if missing:
            raise ValueError(f"an error object needs {', '.join(missing)}")
        return {"details": [], **value}


class ForceAsyncEffect(_Effect):
    """Answer ACCEPTED with a task id whatever the source's mode."""

    kind: Literal["force_async"] = "force_async"


class LateEffect(_Effect):
    """Apply the request, then hold the answer `seconds`: the applied-but-timed-out case."""

    kind: Literal["late"] = "late"
    seconds: float = Field(gt=0, le=MAX_FAULT_SECONDS)
    force_async: bool = False


Effect = Annotated[
    LatencyEffect
    | StatusEffect
    | DropEffect
    | PendingEffect
    | TaskFailureEffect
    | ForceAsyncEffect
    | LateEffect,
    Field(discriminator="kind"),
]
"""Every effect a rule can have, told apart by `kind`."""

_OVERRIDE_EFFECTS = (PendingEffect, TaskFailureEffect, ForceAsyncEffect)


class FaultRule(BaseModel):
    """One fault: which requests it looks at, when it fires among them, and what it does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = Field(default=None, min_length=1, max_length=64)
    route: str | None = None
    source: str | None = None
    op_id: str | None = None
    min_ops: PositiveInt | None = None
    """Only requests carrying at least this many operations (as the request log's `opCount`)."""
    calls: tuple[PositiveInt, ...] | None = None
    every: PositiveInt | None = None
    first: PositiveInt | None = None
    probability: float | None = Field(default=None, gt=0, le=1)
    times: PositiveInt | None = None
    effect: Effect

    @field_validator("route")
    @classmethod
    def _check_route(cls, value: str | None) -> str | None:
        if value is None:
            return None
        method, _, pattern = value.strip().rpartition(" ")
        if method and method.upper() not in _METHODS:
            raise ValueError(f"unknown method {method!r}; use one of {sorted(_METHODS)}")
        if not pattern:
            raise ValueError("must be a route name, a path pattern, or 'METHOD /path/pattern'")
        if method and not pattern.startswith("/"):
            raise ValueError("a pattern after a method must start with '/'")
        return value.strip()

    @model_validator(mode="after")
    def _check_calls(self) -> FaultRule:
        if self.calls is not None and not self.calls:
            raise ValueError("calls: give at least one call number, or leave it out")
        return self

    @property
    def route_name(self) -> str | None:
        """The route name this rule filters on, if it names one rather than a path pattern."""
        if self.route is None or " " in self.route or self.route.startswith("/"):
            return None
        return self.route

    @property
    def needs_write(self) -> bool:
        """Whether the effect only makes sense on a write that creates a task."""
        return isinstance(self.effect, _OVERRIDE_EFFECTS)


@dataclass(frozen=True)
class RequestFacts:
    """What a rule may look at in a request (ids only: never a key, never data)."""

    method: str
    path: str
    route: str | None = None
    source: str | None = None
    op_ids: frozenset[str] = frozenset()
    op_count: int = 0
    accepts_override: bool = False


@dataclass(frozen=True)
class FaultDecision:
    """What the HTTP layer must do to one request; the default does nothing."""

    latency_s: float = 0.0
    terminal: StatusEffect | DropEffect | None = None
    pending_polls: int | None = None
    failure: dict[str, Any] | None = None
    force_async: bool = False
    late_s: float = 0.0
    fired: tuple[str, ...] = ()

    @property
    def has_override(self) -> bool:
        """Whether the registry must be given a task override for this request."""
        return self.pending_polls is not None or self.failure is not None or self.force_async


@dataclass
class _RuleState:
    rule: FaultRule
    rng: random.Random
    seen: int = 0
    fired: int = 0


@dataclass
class _Builder:
    latency_s: float = 0.0
    terminal: StatusEffect | DropEffect | None = None
    pending_polls: int | None = None
    failure: dict[str, Any] | None = None
    force_async: bool = False
    late_s: float = 0.0
    fired: list[str] = field(default_factory=list)

    def accepts(self, effect: _Effect) -> bool:
        return not (isinstance(effect, StatusEffect | DropEffect) and self.terminal is not None)

    def add(self, rule_id: str, effect: _Effect) -> None:
        self.fired.append(rule_id)
        if isinstance(effect, LatencyEffect):
            self.latency_s += effect.seconds
        elif isinstance(effect, StatusEffect | DropEffect):
            self.terminal = effect
        elif isinstance(effect, PendingEffect):
            self.pending_polls = max(self.pending_polls or 0, effect.polls)
            self.force_async = True
        elif isinstance(effect, TaskFailureEffect):
            self.failure = self.failure or effect.error
        elif isinstance(effect, ForceAsyncEffect):
            self.force_async = True
        elif isinstance(effect, LateEffect):
            self.late_s += effect.seconds
            self.force_async = self.force_async or effect.force_async

    def build(self) -> FaultDecision:
        return FaultDecision(
            latency_s=self.latency_s,
            terminal=self.terminal,
            pending_polls=self.pending_polls,
            failure=self.failure,
            force_async=self.force_async,
            late_s=self.late_s,
            fired=tuple(self.fired),
        )


class UnknownRouteError(ValueError):
    """A rule names a route the emulator does not have."""


class FaultPlan:
    """The active fault rules and their counters; deterministic under `seed`.

    Each rule draws from its own generator seeded by `(seed, rule id)`, so adding a rule never
    changes when another fires. Thread-safe: the admin API edits it while requests consult it.
    """

    def __init__(self, rules: Iterable[FaultRule] = (), *, seed: int = 0) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self._states: list[_RuleState] = []
        self._next = 1
        self._known_routes: frozenset[str] | None = None
        for rule in rules:
            self.add(rule)

    @property
    def seed(self) -> int:
        """The seed every rule's random draws derive from."""
        return self._seed

    def restrict_routes(self, names: Collection[str]) -> None:
        """Reject, from now on and for the rules already held, route names not in `names`."""
        with self._lock:
            self._known_routes = frozenset(names)
            for state in self._states:
                self._check_route_name(state.rule)

    def add(self, rule: FaultRule) -> FaultRule:
        """Activate `rule` (after every rule already held) and return it with its id."""
        with self._lock:
            self._check_route_name(rule)
            if rule.id is None:
                rule = rule.model_copy(update={"id": self._fresh_id()})
            elif any(state.rule.id == rule.id for state in self._states):
                raise ValueError(f"id: a fault rule with id {rule.id!r} already exists")
            rng = random.Random(f"{self._seed}:{rule.id}")  # noqa: S311 - test determinism
            self._states.append(_RuleState(rule=rule, rng=rng))
            return rule

    def remove(self, rule_id: str) -> bool:
        """Deactivate one rule; False when no rule has that id."""
        with self._lock:
            kept = [state for state in self._states if state.rule.id != rule_id]
            removed = len(kept) != len(self._states)
            self._states = kept
            return removed

    def clear(self) -> None:
        """Deactivate every rule."""
        with self._lock:
            self._states = []

    def describe(self) -> list[dict[str, Any]]:
        """Every rule with how many requests it looked at and how often it fired."""
        with self._lock:
            return [
                {
                    **state.rule.model_dump(mode="json", exclude_none=True),
                    "seen": state.seen,
                    "fired": state.fired,
                }
                for state in self._states
            ]

    def decide(self, facts: RequestFacts) -> FaultDecision:
        """Count `facts` against every rule and combine the effects of those that fire.

        Latencies and late delays add up; the first status or drop wins, and later ones do not
        fire (nor use up their `times`); task overrides merge.
        """
        builder = _Builder()
        with self._lock:
            for state in self._states:
                rule = state.rule
                if not _passes_filters(rule, facts):
                    continue
                state.seen += 1
                triggered = _triggered(rule, state.seen, state.rng)
                if not triggered or not builder.accepts(rule.effect):
                    continue
                if rule.times is not None and state.fired >= rule.times:
                    continue
                state.fired += 1
                builder.add(rule.id or "", rule.effect)
        return builder.build()

    def _fresh_id(self) -> str:
        taken = {state.rule.id for state in self._states}
        while f"f{self._next}" in taken:
            self._next += 1
        rule_id = f"f{self._next}"
        self._next += 1
        return rule_id

    def _check_route_name(self, rule: FaultRule) -> None:
        name = rule.route_name
        if name is not None and self._known_routes is not None and name not in self._known_routes:
            known = ", ".join(sorted(self._known_routes))
            raise UnknownRouteError(f"route: unknown route name {name!r}; known: {known}")


def _passes_filters(rule: FaultRule, facts: RequestFacts) -> bool:
    if rule.needs_write and not facts.accepts_override:
        return False
    if rule.source is not None and rule.source != facts.source:
        return False
    if rule.op_id is not None and rule.op_id not in facts.op_ids:
        return False
    if rule.min_ops is not None and facts.op_count < rule.min_ops:
        return False
    return rule.route is None or _route_matches(rule.route, facts)


def _route_matches(route: str, facts: RequestFacts) -> bool:
    method, _, pattern = route.rpartition(" ")
    if not method and not pattern.startswith("/"):
        return facts.route == pattern
    if method and method.upper() not in {"*", facts.method.upper()}:
        return False
    return fnmatch.fnmatchcase(facts.path, pattern)


def _triggered(rule: FaultRule, seen: int, rng: random.Random) -> bool:
    # The draw happens on every request the rule looks at, so the sequence of outcomes depends
    # only on the seed, the rule id and the sequence of matching requests.
    draw = rng.random() if rule.probability is not None else 0.0
    if rule.calls is not None and seen not in rule.calls:
        return False
    if rule.every is not None and seen % rule.every != 0:
        return False
    if rule.first is not None and seen > rule.first:
        return False
    return rule.probability is None or draw < rule.probability
