"""How an interest rate is stated to a cardholder: the annual rate first, a daily rate beside it
with every digit it has, so that it agrees with the amounts computed from it."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

DAYS_A_YEAR = 365
"""A daily rate's annual rate is the daily rate x 365: China's 日利率 x 365, the US APR of a daily
periodic rate (Regulation Z), and Russia's «% годовых» of a daily rate."""


def annual_percent(daily_rate: Decimal) -> Decimal:
    """The annual rate, in percent, of interest charged at `daily_rate` (a fraction) a day, half-up
    to two decimals: 0.00068 -> 24.82."""
    return (daily_rate * DAYS_A_YEAR * 100).quantize(Decimal("0.01"), ROUND_HALF_UP)


def daily_percent(daily_rate: Decimal) -> Decimal:
    """The daily rate in percent, every digit kept, so it agrees with the amounts computed from it:
    0.00068 -> 0.068 (never 0.07)."""
    return (daily_rate * 100).normalize()
