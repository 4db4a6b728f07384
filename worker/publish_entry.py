"""One input event on its way through a `publish` call: parsed or not, refused or not, and why.

Each step of the call (parsing, dedupe within the call, atomic batches, refs) refuses an entry
with the first problems it finds; later steps skip it, and the report reads what is left.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from api_client.ids import is_source_key
from worker.domain.events import ChangeEvent, Problem

__all__ = ["Entry"]


@dataclass
class Entry:
    """One input event on its way through the call."""

    index: int
    raw: Any
    event: ChangeEvent | None = None
    problems: tuple[Problem, ...] = ()
    duplicate_of: int | None = None
    refs_used: dict[str, str] = field(default_factory=dict)

    @property
    def event_id(self) -> str | None:
        """The event's id, as parsed or as given (None when it has none that is a string)."""
        if self.event is not None:
            return self.event.event_id
        given = self.raw.get("eventId") if isinstance(self.raw, Mapping) else None
        return given if isinstance(given, str) else None

    @property
    def source(self) -> str | None:
        """The event's source key, as parsed or as given (None unless it is a valid key)."""
        if self.event is not None:
            return self.event.source_key
        given = self.raw.get("sourceKey") if isinstance(self.raw, Mapping) else None
        return given if isinstance(given, str) and is_source_key(given) else None

    def refuse(self, *problems: Problem) -> None:
        """Refuse the entry, unless an earlier step already did: the first reason stands."""
        if not self.problems:
            self.problems = problems
