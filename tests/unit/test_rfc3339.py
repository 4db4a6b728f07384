"""RFC 3339 timestamps: the documented form parses; what only `fromisoformat` takes does not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from api_client.rfc3339 import parse_rfc3339


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2023-11-07T05:31:56Z", datetime(2023, 11, 7, 5, 31, 56, tzinfo=UTC)),
        ("2023-11-07t05:31:56z", datetime(2023, 11, 7, 5, 31, 56, tzinfo=UTC)),
        ("2023-11-07T05:31:56.5Z", datetime(2023, 11, 7, 5, 31, 56, 500_000, tzinfo=UTC)),
        (
            "2024-11-27T15:43:09.438665+01:00",
            datetime(2024, 11, 27, 15, 43, 9, 438_665, tzinfo=timezone(timedelta(hours=1))),
        ),
        (
            "2024-11-27T15:43:09.123456789-05:30",
            datetime(2024, 11, 27, 15, 43, 9, 123_456, tzinfo=timezone(-timedelta(hours=5.5))),
        ),
        ("2024-02-29T00:00:00+00:00", datetime(2024, 2, 29, tzinfo=UTC)),
    ],
)
def test_parse_rfc3339_reads_the_documented_form(text: str, moment: datetime) -> None:
    parsed = parse_rfc3339(text)

    assert parsed == moment
    assert parsed is not None
    assert parsed.utcoffset() == moment.utcoffset()


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-01 00:00:00Z",  # a space for T: fromisoformat takes it
        "2024-01-01T00:00Z",  # no seconds: fromisoformat takes it
        "20240101T000000Z",  # the basic format: fromisoformat takes it
        "2024-01-01T00:00:00+0000",  # an offset without colon: fromisoformat takes it
        "2024-01-01T00:00:00,5Z",  # a comma before the fraction: fromisoformat takes it
        "2024-W01-1T00:00:00Z",  # a week date: fromisoformat takes it
        "2024-01-01T00:00:00+00:00:30",  # an offset with seconds: fromisoformat takes it
        "2024-01-01T00:00:00",  # no zone
        "2024-01-01",  # a date alone
        "2024-01-01T00:00:00.Z",  # an empty fraction
        "2024-01-01T00:00:00.1234567890Z",  # ten fraction digits
        "2023-02-29T00:00:00Z",  # no such day
        "2024-01-01T24:00:00Z",  # hour 24
        "2016-12-31T23:59:60Z",  # a leap second (Python has none)
        "2024-01-01T00:00:00+24:00",  # an offset of a whole day
        " 2024-01-01T00:00:00Z",  # surrounding space
        "\uff12\uff10\uff12\uff14-01-01T00:00:00Z",  # fullwidth (non-ASCII) digits
        "yesterday",
        "",
    ],
)
def test_parse_rfc3339_refuses_everything_else(text: str) -> None:
    assert parse_rfc3339(text) is None
