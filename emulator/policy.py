"""How a request is answered before it runs: its size and count limits, and sync or async."""

from __future__ import annotations

from emulator.config import EmulatorConfig, SourceMode
from emulator.failures import CONTENT_TOO_LARGE, INVALID_ARGUMENT, refuse
from emulator.tasks import TaskOverride


def check_size(raw_size: int, limit: int, what: str) -> None:
    """Refuse (413 CONTENT_TOO_LARGE, no receipts) a body of more than `limit` bytes."""
    if raw_size > limit:
        raise refuse(
            CONTENT_TOO_LARGE,
            f"request body: {raw_size} bytes, more than the {what} limit of {limit} bytes",
            status=413,
        )


def check_count(count: int, limit: int | None, what: str) -> None:
    """Refuse (400 INVALID_ARGUMENT) a request of more than `limit` operations."""
    if limit is not None and count > limit:
        raise refuse(
            INVALID_ARGUMENT,
            f"{what}: {count} operations, more than the limit of {limit} per request",
        )


def answers_async(
    config: EmulatorConfig, source: str, op_count: int, override: TaskOverride | None
) -> bool:
    """Whether a bundle or single write is ACCEPTED (a task) rather than PERSISTED."""
    if override is not None and (override.force_async or override.pending_polls is not None):
        return True
    mode = config.mode_of(source)
    if mode == SourceMode.ASYNC_ABOVE:
        return op_count > config.async_above_ops
    return mode == SourceMode.ASYNC
