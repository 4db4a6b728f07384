"""Import boundaries: modules that must stay importable without heavy or effectful dependencies.

Each check imports one module in a fresh interpreter and lists what it dragged into `sys.modules`.
To add a boundary, append a `(module, forbidden top-level packages)` pair to `BOUNDARIES`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
IMPORT_TIMEOUT_S = 30.0

BOUNDARIES: list[tuple[str, tuple[str, ...]]] = [
    # The models are shared with the pure core and the emulator: pydantic only, never httpx.
    ("api_client.models", ("httpx",)),
    ("api_client.ids", ("httpx",)),
    # The meta rules are shared by the worker's publish checks and the emulator: the stdlib only.
    ("api_client.meta_rules", ("httpx", "pydantic", "worker", "emulator")),
]

_PROBE = (
    "import importlib, json, sys; "
    "importlib.import_module(sys.argv[1]); "
    "print(json.dumps(sorted(sys.modules)))"
)


def modules_loaded_by(module: str) -> list[str]:
    """Every module in `sys.modules` after importing `module` in a fresh interpreter."""
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE, module],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=IMPORT_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, f"importing {module} failed:\n{completed.stderr}"
    loaded: list[str] = json.loads(completed.stdout)
    return loaded


def leaked(loaded: list[str], forbidden: tuple[str, ...]) -> list[str]:
    """The loaded modules that are, or live inside, a forbidden package."""
    return [
        name
        for name in loaded
        if any(name == package or name.startswith(f"{package}.") for package in forbidden)
    ]


@pytest.mark.parametrize(
    ("module", "forbidden"), BOUNDARIES, ids=[f"{m}-without-{'-'.join(f)}" for m, f in BOUNDARIES]
)
def test_import_boundary_module_leaves_forbidden_packages_out(
    module: str, forbidden: tuple[str, ...]
) -> None:
    loaded = modules_loaded_by(module)

    assert module in loaded
    assert leaked(loaded, forbidden) == []


def test_import_boundary_probe_detects_a_forbidden_import() -> None:
    loaded = modules_loaded_by("httpx")

    assert "httpx" in leaked(loaded, ("httpx",))
    assert leaked(loaded, ("httpx_not_a_package",)) == []


def test_api_client_package_exports_lazily() -> None:
    # Given a fresh interpreter, importing the package face pulls in no httpx ...
    code = (
        "import sys, api_client\n"
        "assert 'httpx' not in sys.modules, 'import api_client imported httpx'\n"
        "assert set(api_client.__all__) == set(dir(api_client)) & set(api_client.__all__)\n"
        "client_class = api_client.RegistryClient\n"
        "assert 'httpx' in sys.modules\n"
        "assert client_class.__name__ == 'RegistryClient'\n"
    )
    # ... and asking for the client is what loads it.
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=PROJECT_ROOT
    )
    assert result.returncode == 0, result.stderr


def test_api_client_exports_resolve_to_real_objects() -> None:
    import api_client

    for name in api_client.__all__:
        assert getattr(api_client, name) is not None, name
