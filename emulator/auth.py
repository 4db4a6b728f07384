"""The API key: where the emulator takes it from, and how a request's key is checked.

The accepted key lives in `EmulatorConfig.api_key` (a `SecretStr`), so the admin API can change it
while the emulator runs, as when an operator fixes a key. The key never appears in a log line, an
answer, an exception or a repr.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

API_KEY_HEADER = "x-clinia-api-key"
"""The Registry's key header, lowercased (header names are case-insensitive)."""

ADMIN_TOKEN_HEADER = "x-emulator-admin-token"  # noqa: S105 - a header name
"""The optional header that guards the admin API."""

KEY_ENV = "CLINIA_API_KEY"
KEY_FILE_ENV = "CLINIA_API_KEY_FILE"
ADMIN_TOKEN_ENV = "CLINIA_EMULATOR_ADMIN_TOKEN"  # noqa: S105 - a variable name
ADMIN_TOKEN_FILE_ENV = "CLINIA_EMULATOR_ADMIN_TOKEN_FILE"  # noqa: S105 - a variable name


class KeySourceError(ValueError):
    """The key could not be read; the message names the variable or file, never the key."""


def unauthenticated(message: str) -> dict[str, Any]:
    """The 401 body, in the Registry's error shape."""
    return {"code": 401, "message": message, "type": "UNAUTHENTICATED", "details": []}


def check_key(presented: list[bytes], expected: SecretStr) -> dict[str, Any] | None:
    """None when exactly one header value equals `expected`; otherwise the 401 body.

    The comparison runs in constant time for a given length (`hmac.compare_digest`).
    """
    if not presented:
        return unauthenticated("missing API key: send the X-Clinia-API-Key header")
    wanted = expected.get_secret_value().encode()
    if len(presented) != 1 or not hmac.compare_digest(presented[0], wanted):
        return unauthenticated("invalid API key")
    return None


def header_values(headers: list[tuple[bytes, bytes]], name: str) -> list[bytes]:
    """Every value of header `name` (lowercase) in raw ASGI headers."""
    wanted = name.encode()
    return [value for key, value in headers if key.lower() == wanted]


def resolve_secret(
    *,
    flag: str | None,
    flag_name: str,
    environ: Mapping[str, str],
    env: str,
    file_env: str,
    read_file: Callable[[Path], str] = lambda path: path.read_text(encoding="utf-8"),
) -> SecretStr | None:
    """The secret from the flag, else `env`, else the file named by `file_env`, else None.

    Setting both `env` and `file_env` is an error, as is an empty value or an unreadable file.
    """
    if flag is not None:
        return _non_empty(flag, flag_name)
    value, path = environ.get(env), environ.get(file_env)
    if value is not None and path is not None:
        raise KeySourceError(f"set {env} or {file_env}, not both")
    if value is not None:
        return _non_empty(value, env)
    if path is None:
        return None
    try:
        text = read_file(Path(path))
    except OSError as exc:
        raise KeySourceError(f"{file_env}: cannot read {path}: {exc.strerror}") from None
    return _non_empty(text.strip(), f"{file_env} ({path})")


def _non_empty(value: str, origin: str) -> SecretStr:
    if not value:
        raise KeySourceError(f"{origin}: the key is empty")
    return SecretStr(value)
