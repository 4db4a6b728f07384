"""The Registry's rules on a write's `meta`, in one copy for the worker and the emulator.

The documented rules (docs/emulator.md section 3) and the documented shape of meta
(the seeds: `createdAt` and `updatedAt` as RFC 3339 timestamps, `identifier` as a list of
`{id, system, value, use, period: {id, start, end}}` with string fields). The emulator refuses a
write that breaks one of them; the worker refuses the event at publish for the very same reasons,
so a meta problem never first shows up as a dead letter. Every rule judges the meta and the clock
alone, never stored records. Reasons never echo a value: identifiers may be health data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from api_client.rfc3339 import parse_rfc3339

META_FIELDS: Final = frozenset({"createdAt", "updatedAt", "identifier"})
"""What a write may name in `meta`; `source` is the Registry's own (read-only)."""
IDENTIFIER_FIELDS: Final = frozenset({"id", "system", "value", "use", "period", "type"})
"""What one identifier may hold (the seeds' fields, and `type` as in FHIR)."""
PERIOD_FIELDS: Final = frozenset({"id", "start", "end"})
"""What an identifier's `period` may hold; its dates stay free text (partial dates exist)."""
_IDENTIFIER_STRINGS: Final = ("id", "system", "value", "use")
_TIMES: Final = ("createdAt", "updatedAt")


@dataclass(frozen=True)
class MetaProblem:
    """One broken rule: the field (a dotted path from `meta`) and why, never the value."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


def meta_problems(meta: Any, now: datetime | None) -> list[MetaProblem]:
    """Every rule `meta` breaks; empty when the Registry may accept it.

    Args:
        meta: a write's `meta`, as decoded from JSON.
        now: the clock that decides "in the future" (timezone-aware); None skips that rule.
    """
    if not isinstance(meta, Mapping):
        return [MetaProblem("meta", "must be a JSON object")]
    problems = [
        MetaProblem(f"meta.{key}", _unknown_meta_reason(key))
        for key in meta
        if key not in META_FIELDS
    ]
    moments: dict[str, datetime] = {}
    for key in _TIMES:
        if key not in meta:
            continue
        value = meta[key]
        moment = parse_rfc3339(value) if isinstance(value, str) else None
        if moment is None:
            reason = "must be an RFC 3339 timestamp (date, 'T', time with seconds, zone)"
            problems.append(MetaProblem(f"meta.{key}", reason))
            continue
        if now is not None and moment > now:
            problems.append(MetaProblem(f"meta.{key}", "is in the future"))
        moments[key] = moment
    if "updatedAt" in meta and "createdAt" not in meta:
        problems.append(MetaProblem("meta.createdAt", "is required when meta.updatedAt is given"))
    if len(moments) == len(_TIMES) and moments["updatedAt"] < moments["createdAt"]:
        problems.append(MetaProblem("meta.updatedAt", "is before meta.createdAt"))
    if "identifier" in meta:
        problems.extend(_identifier_problems(meta["identifier"]))
    return problems


def _unknown_meta_reason(key: str) -> str:
    return "is set by the Registry (read-only)" if key == "source" else "unknown field"


def _identifier_problems(identifiers: Any) -> Iterator[MetaProblem]:
    if not isinstance(identifiers, list):
        yield MetaProblem("meta.identifier", "must be a list")
        return
    seen: set[tuple[str | None, str | None, str | None]] = set()
    for index, entry in enumerate(identifiers):
        where = f"meta.identifier[{index}]"
        if not isinstance(entry, Mapping):
            yield MetaProblem(where, "must be an object")
            continue
        yield from _entry_problems(entry, where)
        triple = (entry.get("system"), entry.get("use"), entry.get("value"))
        if not all(part is None or isinstance(part, str) for part in triple):
            continue  # already refused as not a string; no identity to compare
        if triple in seen:
            yield MetaProblem(where, "repeats an earlier identifier's (system, use, value)")
        seen.add(triple)


def _entry_problems(entry: Mapping[str, Any], where: str) -> Iterator[MetaProblem]:
    for key in entry:
        if key not in IDENTIFIER_FIELDS:
            yield MetaProblem(f"{where}.{key}", "unknown field")
    for key in _IDENTIFIER_STRINGS:
        if key in entry and not isinstance(entry[key], str):
            yield MetaProblem(f"{where}.{key}", "must be a string")
    if "value" not in entry:
        yield MetaProblem(f"{where}.value", "is required")
    if entry.get("use") == "source":
        yield MetaProblem(f"{where}.use", "'source' is reserved")
    if entry.get("system") == "mdm":
        yield MetaProblem(f"{where}.system", "'mdm' is reserved")
    if "period" in entry:
        yield from _period_problems(entry["period"], f"{where}.period")


def _period_problems(period: Any, where: str) -> Iterator[MetaProblem]:
    if not isinstance(period, Mapping):
        yield MetaProblem(where, "must be an object")
        return
    for key, value in period.items():
        if key not in PERIOD_FIELDS:
            yield MetaProblem(f"{where}.{key}", "unknown field")
        elif not isinstance(value, str):
            yield MetaProblem(f"{where}.{key}", "must be a string")
