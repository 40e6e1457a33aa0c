"""Amounts as people type them: `1500`, `1,500.50`, `1 500`, `1.500,50`, `１５００`, `1500元`, `¥1500`."""

from __future__ import annotations

import re
import unicodedata
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from bot.domain.calculator import currency_exponent
from bot.domain.errors import DomainError
from bot.languages import language


class InvalidAmount(DomainError):
    pass


class AmountTooLong(InvalidAmount):
    """More digits than any amount has: refused rather than read."""


class TooManyDecimals(InvalidAmount):
    """More decimals than the currency's minor unit: `nearest` is the amount cut to that unit."""

    def __init__(self, value: Decimal, currency: str, decimals: int) -> None:
        super().__init__(f"{value} has more decimals than {currency} has ({decimals})")
        self.currency = currency
        self.decimals = decimals
        self.nearest = value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_DOWN)


_CURRENCY_WORDS = re.compile(
    r"(?i)(rmb|cny|usd|eur|rub|jpy|yuan|dollars?|euros?|rubles?|roubles?|руб(лей|ля|ль)?\.?|р\.|₽|元|块钱?|圆|人民币|円|[¥$€£￥])"
)
_SPACES = re.compile(r"[\s\u00a0\u202f\u2009']+")
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*$")
LARGEST = Decimal("1e12")
MAX_DIGITS = 15
"""Digits an amount may have, leading zeros aside: `123456789.123456789` is no amount anyone owes."""
MAX_LENGTH = 200
"""A longer text is not an amount, and is refused before it is read."""


def parse_amount(text: str, locale: str, currency: str | None = None) -> Decimal:
    """Read one amount; the locale decides what `1.500` and `1,500` mean when they are ambiguous.

    With the account's `currency`, the amount is one that currency can hold (see `in_currency`).
    """
    cleaned = text.strip()
    if len(cleaned) > MAX_LENGTH:
        raise AmountTooLong(f"not an amount: {len(cleaned)} characters is longer than any amount")
    cleaned = unicodedata.normalize("NFKC", cleaned).strip()
    cleaned = _CURRENCY_WORDS.sub("", cleaned)
    cleaned = _SPACES.sub("", cleaned)
    if not cleaned or not _NUMBER.match(cleaned):
        raise InvalidAmount(f"not an amount: {text!r}")
    if len(re.sub(r"\D", "", cleaned).lstrip("0")) > MAX_DIGITS:
        raise AmountTooLong(f"not an amount: more than {MAX_DIGITS} digits")
    value = _to_decimal(cleaned, decimal_comma=language(locale).decimal_comma)
    if value <= 0:
        raise InvalidAmount("the amount must be more than zero")
    if value >= LARGEST:
        raise AmountTooLong("the amount is too large")
    return value if currency is None else in_currency(value, currency)


def in_currency(value: Decimal, currency: str) -> Decimal:
    """The amount as the account records and shows it, in the currency's minor unit (Babel's).

    An amount with more decimals than the currency has (JPY 8000.5, USD 35.005) is refused, not
    rounded: what the cardholder promises or offers is exactly what is recorded and shown, so
    they are asked to type it in the currency's form. Trailing zeros are no decimals (JPY 8000.00).
    """
    decimals = currency_exponent(currency)
    exact = value.quantize(Decimal(1).scaleb(-decimals))
    if exact != value:
        raise TooManyDecimals(value, currency, decimals)
    return exact


def _to_decimal(number: str, decimal_comma: bool) -> Decimal:
    separators = [char for char in number if char in ".,"]
    if not separators:
        return Decimal(number)
    last = separators[-1]
    whole, _, fraction = number.rpartition(last)
    if len(set(separators)) == 2:
        decimal_mark = last
    elif len(separators) > 1:
        decimal_mark = None
    elif len(fraction) == 3:
        decimal_mark = None if (last == "," and not decimal_comma) or (last == "." and decimal_comma) else last
    else:
        decimal_mark = last
    try:
        if decimal_mark is None:
            if any(len(group) != 3 for group in number.split(last)[1:]):
                raise InvalidAmount(f"not an amount: {number!r}")
            return Decimal(number.replace(last, ""))
        grouping = "," if decimal_mark == "." else "."
        return Decimal(whole.replace(grouping, "") + "." + fraction)
    except InvalidOperation:
        raise InvalidAmount(f"not an amount: {number!r}") from None


_MONTHLY = re.compile(r"(?i)(a month|per month|monthly|each month|every month|/mo\b|в месяц|ежемесячно|каждый месяц|в мес|每月|每个月|一个月|月供)")
# A token starts with a currency sign or a digit: with spaces allowed in front of the digit
# (`[¥$]?\s*[0-9]`) every space of a long run of spaces read the rest of the run again (quadratic).
_AMOUNT_TOKEN = re.compile(r"(?:[¥$€₽￥]\s*+[0-9０-９]|[0-9０-９])[0-9０-９\s.,\u00a0\u202f]*+(?:\s*+(?:元|块|руб\.?|р\.|₽|yuan|rub|usd|eur))?", re.IGNORECASE)


def monthly_budget(text: str, locale: str) -> Decimal | None:
    """The amount in "I can pay 1,500 a month", "могу платить 2 000 руб в месяц", "每月能还1500元"."""
    normalized = unicodedata.normalize("NFKC", text)
    if not _MONTHLY.search(normalized):
        return None
    tokens = [token.strip() for token in _AMOUNT_TOKEN.findall(normalized) if token.strip()]
    if len(tokens) != 1:
        return None
    try:
        return parse_amount(tokens[0], locale)
    except InvalidAmount:
        return None
