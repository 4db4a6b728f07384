"""The pure core imports no celery, redis, kombu or httpx, even indirectly.

The boundaries are in docs/architecture.md.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import worker.domain

FORBIDDEN = ("celery", "redis", "kombu", "httpx", "httpcore")


def test_domain_modules_import_no_infrastructure_in_a_fresh_interpreter():
    modules = sorted(
        f"worker.domain.{info.name}" for info in pkgutil.iter_modules(worker.domain.__path__)
    )
    assert len(modules) >= 10, modules
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(json.dumps(bad))\n"
    )
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert json.loads(result.stdout) == []
