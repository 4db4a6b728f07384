"""Time as the Registry writes and reads it: RFC 3339 in UTC, and the profile date formats."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

from api_client.rfc3339 import parse_rfc3339

PARTIAL_DATE_PATTERN: Final = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?", re.ASCII)
TIME_PATTERN: Final = re.compile(r"(\d{2}):(\d{2})(:(\d{2})(\.\d{1,9})?)?", re.ASCII)


def utc_now() -> datetime:
    """The wall clock, in UTC; the default clock of the emulator (tests inject their own)."""
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with trailing zeros of the fraction trimmed, as the Registry's seeds show."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


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
