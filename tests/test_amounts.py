"""Amounts as people type them, and the amount in "I can pay … a month"."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.domain.amounts import InvalidAmount, monthly_budget, parse_amount


@pytest.mark.parametrize(
    ("text", "locale", "amount"),
    [
        ("1500", "en", "1500"),
        ("1,500.50", "en", "1500.50"),
        ("$1,500", "en", "1500"),
        ("1 500", "ru", "1500"),
        ("1.500,50", "ru", "1500.50"),
        ("1,5", "ru", "1.5"),
        ("2 000 руб", "ru", "2000"),
        ("１５００", "zh_CN", "1500"),
        ("1500元", "zh_CN", "1500"),
        ("¥1500", "zh_CN", "1500"),
    ],
)
def test_amounts_in_the_forms_people_type(text: str, locale: str, amount: str) -> None:
    assert parse_amount(text, locale) == Decimal(amount)


@pytest.mark.parametrize("text", ["lots", "0", "-5", "1,50,0", "", "9" * 40])
def test_junk_is_not_an_amount(text: str) -> None:
    with pytest.raises(InvalidAmount):
        parse_amount(text, "en")


@pytest.mark.parametrize(
    ("text", "locale", "amount"),
    [
        ("I can pay 1,500 a month", "en", Decimal(1500)),
        ("могу платить 2 000 руб в месяц", "ru", Decimal(2000)),
        ("我每个月只能还 ８００ 块", "zh_CN", Decimal(800)),
        ("I can pay 1500", "en", None),
        ("12 months for 500 a month", "en", None),
        ("what is my balance", "en", None),
    ],
)
def test_the_amount_in_a_monthly_offer(text: str, locale: str, amount: Decimal | None) -> None:
    assert monthly_budget(text, locale) == amount
