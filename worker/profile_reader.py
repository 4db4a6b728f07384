"""Reading one profile or relationship definition from the Registry, for publish's cache.

`RegistryProfileReader.read(source, field)` answers the body as the Registry serves it (a JSON
object), `MISSING` when the Registry says the source has no such key, or `Unreadable` with a
reason safe to log (an HTTP status and an error class, never a key or a payload) when it cannot
be read: 401/403, a 404 that does not name the key (an unknown route or source), 501, a throttle,
an unreachable Registry, an answer that is not a profile. One attempt within
`profile_timeout_s`: publish never waits long for a profile.

A 404 counts as "this source has no such key" only when the Registry's error message names the
key as a profile (`profile '<key>' ...`) or a definition (`definition '<key>' ...`), as the
emulator's does (`profile 'clinic' not found`); any other 404 says the route or the source is
missing, and publish then goes on without pre-validation rather than refuse on a guess.
"""

from __future__ import annotations

import atexit
import os
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from api_client import RegistryClient
from api_client.errors import NotFoundError, RegistryError
from worker.domain.profiles import MISSING, Missing
from worker.settings import IngestSettings, SettingsError

__all__ = ["Fetched", "ProfileReader", "RegistryProfileReader", "Unreadable", "reader_for"]

PROFILE = "p"
DEFINITION = "r"


@dataclass(frozen=True)
class Unreadable:
    """The Registry could not say: why, safe to log."""

    reason: str


Fetched = dict[str, Any] | Missing | Unreadable


class ProfileReader(Protocol):
    """Reads `p:<key>` (a profile) or `r:<key>` (a relationship definition) of a source."""

    def read(self, source: str, name: str) -> Fetched:
        """The body, MISSING, or Unreadable; never raises for the Registry's answers."""
        ...

    def close(self) -> None:
        """Close what it holds open."""
        ...


class RegistryProfileReader:
    """`ProfileReader` over a `RegistryClient` (build it with `profile_client_config`)."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    def close(self) -> None:
        """Close the client's pool."""
        self.client.close()

    def read(self, source: str, name: str) -> Fetched:
        """The body, MISSING, or Unreadable; never raises for the Registry's answers."""
        kind, _, key = name.partition(":")
        try:
            body: BaseModel = (
                self.client.get_profile(source, key)
                if kind == PROFILE
                else self.client.get_relationship_definition(source, key)
            )
        except NotFoundError as exc:
            if _names_key(exc, kind, key):
                return MISSING
            return Unreadable(_reason(exc))
        except RegistryError as exc:
            return Unreadable(_reason(exc))
        dumped: dict[str, Any] = body.model_dump(mode="json", by_alias=True, exclude_none=True)
        return dumped


def _names_key(exc: NotFoundError, kind: str, key: str) -> bool:
    message = exc.error.message if exc.error is not None else ""
    what = "profile" if kind == PROFILE else "definition"
    return f"{what} '{key}'" in (message or "")


def _reason(exc: RegistryError) -> str:
    status = f"{exc.status} " if exc.status is not None else ""
    return f"{status}{type(exc).__name__}"


_lock = threading.Lock()
_readers: dict[tuple[int, int], tuple[IngestSettings, RegistryProfileReader | None]] = {}
"""(pid, id(settings)) -> the settings (kept, so that their id is never reused) and the reader."""


def reader_for(settings: IngestSettings) -> RegistryProfileReader | None:
    """This process's reader for `settings` (built again after a fork); None without an API key
    or with pre-validation off: publish then uses only what is cached."""
    key = (os.getpid(), id(settings))
    with _lock:
        if key not in _readers:
            _readers[key] = (settings, _build(settings))
        return _readers[key][1]


@atexit.register
def _close_readers() -> None:
    """Close this process's readers' pools at exit (a forked child's belong to its parent)."""
    with _lock:
        for (pid, _), (_, reader) in _readers.items():
            if reader is not None and pid == os.getpid():
                reader.close()


def _build(settings: IngestSettings) -> RegistryProfileReader | None:
    if not settings.profile_validation or not settings.api_key.get_secret_value():
        return None
    try:
        return RegistryProfileReader(RegistryClient(settings.profile_client_config()))
    except SettingsError:
        return None
