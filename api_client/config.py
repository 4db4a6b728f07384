"""The client's configuration: a plain frozen object, built by whoever reads the environment.

`RegistryClient` never reads the environment itself; the worker's settings build a `ClientConfig`
once and pass it down. Validation errors never echo the input (`hide_input_in_errors`), so a
malformed API key cannot reach a log through a `ValidationError`.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from api_client.retry import RetryPolicy

__all__ = ["ClientConfig"]

_HEADER_VALUE: Final = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?", re.ASCII)
"""Visible ASCII, inner spaces allowed: nothing that could break a header line."""


class ClientConfig(BaseModel):
    """Where the Registry is, how to authenticate, and how long to wait for it."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    base_url: str
    """`https://{workspaceId}.clinia.cloud` (no trailing slash needed); http is for the emulator."""
    api_key: SecretStr
    """Sent as `X-Clinia-API-Key`; never printed."""
    connect_timeout_s: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    """Seconds to open a connection (a request that times out here was never sent)."""
    read_timeout_s: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    """Seconds to wait for each chunk of the answer."""
    write_timeout_s: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    """Seconds to send each chunk of the body."""
    pool_timeout_s: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    """Seconds to wait for a free pooled connection (a request that times out here was never
    sent)."""
    max_connections: int = Field(default=10, ge=1)
    """Pooled connections at most, per process."""
    max_keepalive_connections: int = Field(default=5, ge=0)
    """Idle connections kept open for reuse."""
    keepalive_expiry_s: float = Field(default=30.0, ge=0, allow_inf_nan=False)
    """Seconds an idle pooled connection is kept."""
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    """How each request is retried."""
    user_agent: str = "clinia-ingest/0.1"
    """The `User-Agent` header."""

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError("base_url must start with https:// (or http:// for a local emulator)")
        if not parts.hostname:
            raise ValueError("base_url has no host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("base_url must not carry credentials; use api_key")
        if parts.query or parts.fragment:
            raise ValueError("base_url must not carry a query or a fragment")
        return value.rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _check_api_key(cls, value: SecretStr) -> SecretStr:
        if not _HEADER_VALUE.fullmatch(value.get_secret_value()):
            raise ValueError(
                "api_key must be non-empty visible ASCII (no line breaks, no edge spaces)"
            )
        return value

    @field_validator("user_agent")
    @classmethod
    def _check_user_agent(cls, value: str) -> str:
        if not _HEADER_VALUE.fullmatch(value):
            raise ValueError("user_agent must be non-empty visible ASCII (no line breaks)")
        return value
