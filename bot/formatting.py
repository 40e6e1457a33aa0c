"""Everything a person reads is formatted here, by Babel, for the reader's locale."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_timedelta


def when(moment: datetime, locale: str, zone: str) -> str:
    """A moment as the reader would write it, in the given time zone, e.g. `Nov 29, 2026, 3:15 PM`."""
    return format_datetime(moment, format="medium", tzinfo=ZoneInfo(zone), locale=locale)


def in_about(delta: timedelta, locale: str) -> str:
    """A duration from now, e.g. `in 30 minutes`, `через 30 минут`, `30分钟后`."""
    return format_timedelta(delta, add_direction=True, threshold=1.5, locale=locale)


def long_date(day: datetime, locale: str) -> str:
    return format_date(day, format="long", locale=locale)
