"""Amounts as people type them, and the amount in "I can pay … a month"."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.domain.amounts import AmountTooLong, InvalidAmount, TooManyDecimals, in_currency, monthly_budget, parse_amount


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
        ("20k", "en", "20000"),
        ("1.5k", "en", "1500"),
        ("1.5K", "en", "1500"),
        ("$2.25k", "en", "2250"),
        ("30 тысяч", "ru", "30000"),
        ("1,5 тыс.", "ru", "1500"),
        ("2 тысячи руб", "ru", "2000"),
        ("0,5 млн", "ru", "500000"),
        ("一千五", "zh_CN", "1500"),
        ("1千5", "zh_CN", "1500"),
        ("两千块", "zh_CN", "2000"),
        ("1.5万", "zh_CN", "15000"),
        ("一万二", "zh_CN", "12000"),
        ("2万5千", "zh_CN", "25000"),
        ("三千零五十", "zh_CN", "3050"),
        ("一千零五", "zh_CN", "1005"),
        ("十五元", "zh_CN", "15"),
        ("三千五百", "zh_CN", "3500"),
        ("\u200f1500\u200b", "en", "1500"),
    ],
)
def test_amounts_in_the_forms_people_type(text: str, locale: str, amount: str) -> None:
    assert parse_amount(text, locale) == Decimal(amount)


@pytest.mark.parametrize("text", ["lots", "0", "-5", "1,50,0", "", "9" * 40, "k", "тысяч", "20kk", "万", "一个"])
def test_junk_is_not_an_amount(text: str) -> None:
    with pytest.raises(InvalidAmount):
        parse_amount(text, "en")


@pytest.mark.parametrize(
    ("text", "locale", "amount"),
    [
        ("I can pay 1,500 a month", "en", Decimal(1500)),
        ("могу платить 2 000 руб в месяц", "ru", Decimal(2000)),
        ("我每个月只能还 ８００ 块", "zh_CN", Decimal(800)),
        ("I can pay 20k a month", "en", Decimal(20000)),
        ("могу платить 30 тысяч рублей в месяц", "ru", Decimal(30000)),
        ("могу 1,5 тыс. в месяц", "ru", Decimal(1500)),
        ("我每月只能还一千五", "zh_CN", Decimal(1500)),
        ("我一个月只能还一千五", "zh_CN", Decimal(1500)),
        ("每月能还1千5", "zh_CN", Decimal(1500)),
        ("我每月最多还两千块", "zh_CN", Decimal(2000)),
        ("每月还1.5万", "zh_CN", Decimal(15000)),
        ("I can pay 1500", "en", None),
        ("12 months for 500 a month", "en", None),
        ("what is my balance", "en", None),
    ],
)
def test_the_amount_in_a_monthly_offer(text: str, locale: str, amount: Decimal | None) -> None:
    assert monthly_budget(text, locale) == amount


@pytest.mark.parametrize(
    ("text", "currency", "amount"),
    [("8000", "JPY", "8000"), ("8000.00", "JPY", "8000"), ("35.5", "USD", "35.50"), ("1 500", "USD", "1500.00"), ("1.234", "KWD", "1.234")],
)
def test_an_amount_for_a_currency_is_in_its_minor_unit(text: str, currency: str, amount: str) -> None:
    parsed = parse_amount(text, "ru" if " " in text else "en", currency)
    assert str(parsed) == amount


@pytest.mark.parametrize(
    ("text", "currency", "decimals", "nearest"),
    [("8000.5", "JPY", 0, "8000"), ("35.005", "USD", 2, "35.00"), ("100.123456789", "USD", 2, "100.12"), ("0.001", "CNY", 2, "0.00")],
)
def test_more_decimals_than_the_currency_has_are_refused(text: str, currency: str, decimals: int, nearest: str) -> None:
    with pytest.raises(TooManyDecimals) as refused:
        parse_amount(text, "en", currency)
    assert refused.value.decimals == decimals and str(refused.value.nearest) == nearest
    with pytest.raises(TooManyDecimals):
        in_currency(Decimal(text), currency)


@pytest.mark.parametrize("text", ["1" * 16, "123456789.123456789", "1.000000000000000000000", "9" * 40, "1" + " " * 300 + "1"])
def test_more_digits_than_an_amount_has_are_refused(text: str) -> None:
    with pytest.raises(AmountTooLong):
        parse_amount(text, "en", "USD")


def test_fifteen_digits_and_leading_zeros_are_read() -> None:
    assert parse_amount("0001234567890.12", "en", "USD") == Decimal("1234567890.12")
