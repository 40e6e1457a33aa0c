"""Moments and time zones as each reader writes them."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bot.formatting import when, zone_name

MOMENT = datetime(2026, 12, 2, 15, 19, 50, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("locale", "zone", "written", "named"),
    [
        ("en", "Asia/Shanghai", "Dec 2, 2026, 11:19 PM", "China Time"),
        ("ru", "Europe/Moscow", "2 дек. 2026 г., 18:19", "Москва"),
        ("zh_CN", "Asia/Shanghai", "2026年12月2日 23:19", "中国时间"),
        ("en", "America/Los_Angeles", "Dec 2, 2026, 7:19 AM", "Pacific Time"),
    ],
)
def test_a_moment_is_written_to_the_minute_in_the_readers_words(locale: str, zone: str, written: str, named: str) -> None:
    assert when(MOMENT, locale, zone).replace("\u202f", " ").replace("\u00a0", " ") == written
    assert zone_name(zone, locale) == named
    assert "/" not in zone_name(zone, locale)
