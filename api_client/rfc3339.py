"""RFC 3339 timestamps as the Registry documents them, for `meta` times and `instant` properties.

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
