"""Everything a person reads is formatted here, by Babel, for the reader's locale.

Amounts, days and rates repeat from message to message (an account's figures, a schedule's
dates), and Babel works out its patterns on every call, so those results are kept; equal values
always read the same.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel.dates import (
    format_date,
    format_skeleton,
    format_time,
    format_timedelta,
    get_datetime_format,
    get_timezone,
    get_timezone_name,
)
from babel.numbers import format_currency, format_decimal, get_currency_name


def when(moment: datetime, locale: str, zone: str) -> str:
    """A moment to the minute as the reader would write it, in the given time zone:
    `Nov 29, 2026, 3:15 PM`, `29 нояб. 2026 г., 15:15`, `2026年11月29日 15:15`."""
    local = moment.astimezone(ZoneInfo(zone))
    pattern = get_datetime_format("medium", locale=locale)
    return pattern.replace("{1}", day(local.date(), locale)).replace("{0}", format_time(local, "short", locale=locale))


@lru_cache(maxsize=256)
def zone_name(zone: str, locale: str) -> str:
    """A time zone as the reader calls it: `China Time`, `Москва`, `北美太平洋时间`, never `Asia/Shanghai`."""
    return get_timezone_name(get_timezone(zone), "long", locale=locale)


def clock_at(moment: datetime, locale: str, zone: ZoneInfo, reference: datetime) -> str:
    """A moment's time in `zone` (`8:00 AM`, `08:00`), with its day when that is not `reference`'s
    day there (`Thu, Dec 3, 8:00 AM`, `чт, 3 дек., 08:00`, `12月3日周四 08:00`)."""
    clock = format_time(moment, format="short", tzinfo=zone, locale=locale)
    if moment.astimezone(zone).date() == reference.astimezone(zone).date():
        return clock
    on = format_skeleton("MMMEd", moment, tzinfo=zone, locale=locale)
    return str(get_datetime_format("medium", locale=locale)).replace("{1}", on).replace("{0}", clock)


def in_about(delta: timedelta, locale: str) -> str:
    """A duration from now, e.g. `in 30 minutes`, `через 30 минут`, `30分钟后`."""
    return format_timedelta(delta, add_direction=True, threshold=1.5, locale=locale)


def duration(delta: timedelta, locale: str) -> str:
    """How long something has lasted: `30 minutes`, `2 часа`, `3天`."""
    return format_timedelta(delta, threshold=1.5, locale=locale)


@lru_cache(maxsize=8192)
def money(amount: Decimal, currency: str, locale: str) -> str:
    """`¥12,345.60`, `12 345,60 ₽`, `$1,234.00`: the account's currency in the reader's locale."""
    return format_currency(amount, currency, locale=locale, currency_digits=True)


def currency_name(currency: str, locale: str) -> str:
    """`US Dollar`, `японская иена`, `日元`."""
    return get_currency_name(currency, locale=locale)


@lru_cache(maxsize=4096)
def day(value: date, locale: str) -> str:
    """A calendar date in the reader's style: `Dec 29, 2026`, `29 дек. 2026 г.`, `2026年12月29日`."""
    return format_date(value, format="medium", locale=locale)


@lru_cache(maxsize=1024)
def percent(value: Decimal, locale: str) -> str:
    """A rate given in percent (13.03 means 13.03 %) in the reader's style, with at least two
    decimals and every further one it has: 0.068 reads `0.068%`, never `0.07%` beside an amount
    computed from 0.068 %. Round a rate first where fewer digits are meant."""
    return format_decimal(value, format="#,##0.00########", locale=locale) + "%"


def days(count: int, locale: str) -> str:
    """A number of days with the locale's plural: `180 days`, `180 дней`, `180天`."""
    return format_timedelta(timedelta(days=count), granularity="day", threshold=10**9, format="long", locale=locale)


def years(count: int, locale: str) -> str:
    """A number of years with the locale's plural: `1 year`, `5 лет`, `2 года`, `5年`."""
    return format_timedelta(timedelta(days=round(365.25 * count)), threshold=1, format="long", locale=locale)
