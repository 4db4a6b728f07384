"""Time as the Registry writes and reads it: RFC 3339 in UTC, and the profile date formats."""

from __future__ import annotations

from datetime import UTC, datetime

from api_client.rfc3339 import is_datetime, is_instant, is_partial_date, is_time

__all__ = ["format_time", "is_datetime", "is_instant", "is_partial_date", "is_time", "utc_now"]


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
