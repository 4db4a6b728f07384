"""Settings of the emulated Registry: one object, mutable at run time, every field defaulted.

The choices the public documentation leaves open (when a write answers ACCEPTED, how a task
lingers in PENDING, legacy behaviours) are switches here, so tests can cover each variant.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class SourceMode(StrEnum):
    """Whether writes of a source answer PERSISTED (run now) or ACCEPTED (a task to poll)."""

    SYNC = "sync"
    ASYNC = "async"
    ASYNC_ABOVE = "async_above"


class DeletePolicy(StrEnum):
    """What deleting a resource that still has relationships does."""

    CASCADE = "cascade"
    REFUSE = "refuse"


class BundleFailures(StrEnum):
    """Which failing operations a refused bundle reports (either way nothing of it is applied)."""

    FIRST = "first"
    """The first failure: every other operation CANCELLED, as the documentation's example shows."""
    ALL = "all"
    """Every failing operation its own FAILURE, each judged in order as if the failing ones before
    it were not there; the rest CANCELLED."""


class EmulatorConfig(BaseModel):
    """Every knob of the emulated Registry; the HTTP layer may change fields between requests."""

    model_config = ConfigDict(validate_assignment=True)

    api_key: SecretStr = SecretStr("emulator-key")
    strict_sources: bool = False
    """True: a source must be created explicitly (`create_source`) before any other call."""
    mode: SourceMode = SourceMode.SYNC
    """The default answer mode; `source_modes` overrides it per source."""
    async_above_ops: int = Field(default=100, ge=0)
    """For ASYNC_ABOVE: a request with more operations than this answers ACCEPTED."""
    source_modes: dict[str, SourceMode] = Field(default_factory=dict)
    task_pending_polls: int = Field(default=1, ge=0)
    """An async task answers PENDING to this many status polls before it is processed."""
    task_pending_s: float = Field(default=0.0, ge=0.0)
    """... and stays PENDING at least this long after acceptance (by the injected clock)."""
    shuffle_receipts: bool = False
    """Task receipts in a seeded random order instead of operation order."""
    legacy_bulk_status: bool = False
    """A bulk task ends SUCCESS even with FAILURE receipts, as in the legacy bulk guide."""
    delete_policy: DeletePolicy = DeletePolicy.CASCADE
    bundle_failures: BundleFailures = BundleFailures.FIRST
    """Whether a refused bundle reports its first failing operation only, or every one."""
    bundle_failure_status: int = Field(default=400, ge=200, le=599)
    """HTTP status of a synchronous bundle answer that holds a FAILURE receipt (undocumented)."""
    max_bundle_bytes: int = Field(default=500_000, ge=1)
    max_bulk_bytes: int = Field(default=5_000_000_000, ge=1)
    max_ops_per_request: int | None = Field(default=None, ge=1)
    seed: int = 0
    """Every random choice (generated ids, shuffled receipts) is deterministic under it."""

    def mode_of(self, source: str) -> SourceMode:
        """The answer mode of one source, falling back to the default mode."""
        return self.source_modes.get(source, self.mode)
