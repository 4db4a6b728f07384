"""The ingestion worker: a pure domain core (`worker.domain`) and its Celery, Redis and CLI shells.

`publish` and `status` are what a producer in Python calls; `app` is the Celery application. All
are exported lazily (PEP 562), so `celery -A worker worker` works, `worker.publish` needs no
Celery, and importing `worker.domain` imports neither.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real names for type checkers; at run time they load on first use
    from worker.celery_app import (
        app,
    )
    from worker.producer import (
        publish,
        status,
    )

# public name -> defining module.
_EXPORTS: dict[str, str] = {
    "app": "worker.celery_app",
    "publish": "worker.producer",
    "status": "worker.producer",
}

__all__ = [
    "app",
    "publish",
    "status",
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
