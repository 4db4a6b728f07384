"""The ingestion worker: a pure domain core (`worker.domain`) and its Celery, Redis and CLI shells.

`app` (the Celery application) is exported lazily (PEP 562) so that `celery -A worker worker` works
while importing `worker.domain` never imports Celery.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real names for type checkers; at run time they load on first use
    from worker.celery_app import (
        app,
    )

# public name -> defining module.
_EXPORTS: dict[str, str] = {
    "app": "worker.celery_app",
}

__all__ = [
    "app",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'worker' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
