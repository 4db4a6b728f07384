"""The worker's Redis state: key names, the Lua scripts, and `Store`, their Python face."""

from __future__ import annotations

from worker.store.store import EvictionPolicyError, InvalidEntry, Store

__all__ = ["EvictionPolicyError", "InvalidEntry", "Store"]
