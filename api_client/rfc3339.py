"""RFC 3339 timestamps as the Registry documents them, for `meta` times and `instant` properties,
and the other date formats of profile properties (`date`, `datetime`, `time`).

Stricter than `datetime.fromisoformat`, which also takes a space for `T`, missing seconds, the
basic format (`20240101T000000Z`), `+0000` offsets and week dates: the Registry does not promise
any of those, so neither the worker nor the emulator accepts them. Pure: the standard library only.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

RFC3339_PATTERN: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)
"""`date-time` of RFC 3339 section 5.6: full date, `T`, full time with seconds, a zone."""
PARTIAL_DATE_PATTERN: Final = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?", re.ASCII)
TIME_PATTERN: Final = re.compile(r"(\d{2}):(\d{2})(:(\d{2})(\.\d{1,9})?)?", re.ASCII)


def parse_rfc3339(value: str) -> datetime | None:
    """The moment a full RFC 3339 timestamp names, or None when it is not one.

    Fractions finer than a microsecond are truncated (Python keeps six digits); an impossible
    date or time (February 30th, hour 24, a leap second) is None.
    """
    match = RFC3339_PATTERN.fullmatch(value)
    if match is None:
        return None
    fraction = (match.group(7) or ".0")[1:7].ljust(6, "0")
    zone = match.group(8).upper()
    iso = value[:19].replace("t", "T") + "." + fraction + ("+00:00" if zone == "Z" else zone)
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        return None


def is_partial_date(value: str) -> bool:
    """Whether `value` is a date, possibly partial: YYYY, YYYY-MM or YYYY-MM-DD."""
    if PARTIAL_DATE_PATTERN.fullmatch(value) is None:
        return False
    parts = [int(part) for part in value.split("-")]
    parts += [1] * (3 - len(parts))
    try:
        datetime(parts[0], parts[1], parts[2])  # a calendar check only
    except ValueError:
        return False
    return True


def is_datetime(value: str) -> bool:
    """Whether `value` is a datetime: a partial date, or a full timestamp with its zone."""
    return is_partial_date(value) or parse_rfc3339(value) is not None


def is_instant(value: str) -> bool:
    """Whether `value` is an instant: a full RFC 3339 timestamp with its zone."""
    return parse_rfc3339(value) is not None


def is_time(value: str) -> bool:
    """Whether `value` is a time of day: hh:mm, hh:mm:ss or hh:mm:ss.fff."""
    match = TIME_PATTERN.fullmatch(value)
    if match is None:
        return False
    hours, minutes, seconds = int(match.group(1)), int(match.group(2)), int(match.group(4) or 0)
    return hours < 24 and minutes < 60 and seconds < 60
