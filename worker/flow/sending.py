"""How a claimed plan becomes a request: checked again when rebuilt, sent to its endpoint, and
the issuer its accepted task is polled through."""

from __future__ import annotations

from dataclasses import replace

from api_client import IssuedBy
from api_client.models import BulkRejected, BundleReceipts, TaskAccepted
from worker.domain.bulk import BulkPlan, BulkRequestPlan, validate_bulk_plan
from worker.domain.events import Target
from worker.domain.plan import Plan
from worker.domain.plan_check import validate_plan
from worker.flow.deps import Deps
from worker.flow.layout import Sendable

__all__ = ["issuer_of", "send", "validate_sendable"]


def validate_sendable(deps: Deps, source: str, plan: Sendable) -> None:
    """Refuse a plan rebuilt from its record that breaks a rule (`PlanError`)."""
    mode = deps.settings.coalesce_mode
    if isinstance(plan, BulkRequestPlan):
        validate_bulk_plan(BulkPlan(source, mode, (replace(plan, index=0),)), deps.bulk_caps)
    else:
        single = replace(plan, index=0)
        validate_plan(Plan(source, mode, (single,)), deps.settings.plan_caps())


def send(deps: Deps, source: str, plan: Sendable) -> TaskAccepted | BundleReceipts | BulkRejected:
    """Send a bundle, or a bulk request through the endpoint of its kind: the planned bytes."""
    if isinstance(plan, BulkRequestPlan):
        if plan.target is Target.RESOURCE:
            return deps.client.submit_bulk_body(source, "resources", plan.body)
        return deps.client.submit_bulk_body(source, "relationships", plan.body)
    return deps.client.submit_bundle_body(source, plan.body)


def issuer_of(plan: Sendable) -> IssuedBy:
    """Which endpoint issued the task a plan is accepted as (its poll route)."""
    if not isinstance(plan, BulkRequestPlan):
        return IssuedBy.BUNDLE
    if plan.target is Target.RESOURCE:
        return IssuedBy.RESOURCES_BULK
    return IssuedBy.RELATIONSHIPS_BULK
