"""``format_time`` writes the same text as the strftime form it replaced (isoformat is half its cost)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

from csms.ocpp.convert import format_time, from_posix


def _strftime_form(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def test_format_time_matches_the_strftime_form() -> None:
    draws = random.Random(13)
    for _ in range(20_000):
        seconds = round(draws.uniform(0.0, 4.1e9), draws.choice((0, 1, 2, 3, 4, 6)))
        assert format_time(from_posix(seconds)) == _strftime_form(from_posix(seconds))
        local = datetime.fromtimestamp(seconds, timezone(timedelta(hours=draws.randint(-12, 14))))
        assert format_time(local) == _strftime_form(local)


def test_format_time_truncates_to_the_millisecond_and_keeps_short_years() -> None:
    assert format_time(datetime(2026, 12, 5, 7, 0, 59, 999_999, tzinfo=UTC)) == "2026-12-05T07:00:59.999Z"
    assert format_time(datetime(999, 1, 2, 3, 4, 5, 6_000, tzinfo=UTC)) == _strftime_form(
        datetime(999, 1, 2, 3, 4, 5, 6_000, tzinfo=UTC)
    )
