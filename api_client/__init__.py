"""The Clinia Registry HTTP contract: typed models, a client, errors, retries and task references.

The public names are exported lazily (PEP 562), so that `import api_client.models` in the pure core
never drags in httpx. Knows nothing of `worker`.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it; filled in as the modules land.
_EXPORTS: dict[str, str] = {}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'api_client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
