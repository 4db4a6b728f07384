"""The Lua scripts: read from `lua/`, each prefixed with `lua/_lib.lua`, registered once per client.

redis-py's `Script` runs `EVALSHA` and loads the script on `NOSCRIPT`, also inside a pipeline, so a
Redis restart (which forgets loaded scripts) costs one extra round trip, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final

import redis
from redis.commands.core import Script

SCRIPT_NAMES: Final = (
    "publish",
    "refused",
    "read",
    "events",
    "field",
    "commit",
    "claim",
    "mark",
    "record",
    "settle",
    "release",
    "take_due",
    "refusals",
)


@cache
def script_source(name: str) -> str:
    """The full text sent to Redis: the shared helpers, then the script."""
    folder = resources.files("worker.store").joinpath("lua")
    library = folder.joinpath("_lib.lua").read_text(encoding="utf-8")
    body = folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return f"{library}\n{body}"


@dataclass(frozen=True)
class Scripts:
    """Every script, registered on one client."""

    publish: Script
    refused: Script
    read: Script
    events: Script
    field: Script
    commit: Script
    claim: Script
    mark: Script
    record: Script
    settle: Script
    release: Script
    take_due: Script
    refusals: Script

    @classmethod
    def register(cls, client: redis.Redis) -> Scripts:
        """Register every script on `client` (nothing is sent until the first call)."""
        return cls(**{name: client.register_script(script_source(name)) for name in SCRIPT_NAMES})
