"""Amounts as people type them: `1500`, `1,500.50`, `1 500`, `1.500,50`, `１５００`, `1500元`, `¥1500`,
and in words and abbreviations: `20k`, `1.5k`, `30 тысяч`, `1,5 тыс.`, `一千五`, `1千5`, `两千块`, `1.5万`."""

from __future__ import annotations

import re
import unicodedata
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from bot.domain.calculator import currency_exponent
from bot.domain.errors import DomainError
from bot.domain.text import strip_invisible
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
    cleaned = strip_invisible(_CURRENCY_WORDS.sub("", cleaned))
    cleaned = _SPACES.sub("", cleaned)
    if len(re.sub(r"\D", "", cleaned).lstrip("0")) > MAX_DIGITS:
        raise AmountTooLong(f"not an amount: more than {MAX_DIGITS} digits")
    decimal_comma = language(locale).decimal_comma
    if _NUMBER.match(cleaned):
        value = _to_decimal(cleaned, decimal_comma=decimal_comma)
    elif scaled := _SCALED.fullmatch(cleaned):
        value = _whole(_to_decimal(scaled["number"], decimal_comma=decimal_comma) * _SCALES[scaled["scale"].rstrip(".").lower()])
    elif _CHINESE_NUMBER.fullmatch(cleaned) and _CHINESE_SIGN.match(cleaned):
        value = _whole(_chinese_number(cleaned))
    else:
        raise InvalidAmount(f"not an amount: {text!r}")
    if value <= 0:
        raise InvalidAmount("the amount must be more than zero")
    if value >= LARGEST:
        raise AmountTooLong("the amount is too large")
    return value if currency is None else in_currency(value, currency)


_SCALES = {
    "k": 1000, "к": 1000, "тыс": 1000, "тысяча": 1000, "тысячи": 1000, "тысяч": 1000, "thousand": 1000,
    "млн": 10**6, "миллион": 10**6, "миллиона": 10**6, "миллионов": 10**6, "million": 10**6,
    "mln": 10**6,
}
_SCALE_WORDS = "|".join(sorted((re.escape(word) for word in _SCALES), key=len, reverse=True))
_SCALED = re.compile(rf"(?i)(?P<number>\d+(?:[.,]\d+)?)(?P<scale>(?:{_SCALE_WORDS})\.?)")
"""`20k`, `1.5k`, `30тысяч`, `1,5тыс.` (spaces already removed): a number and a word for its scale."""
_CHINESE_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CHINESE_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10_000}
_CHINESE_NUMBER = re.compile(r"(?:[零〇一二两三四五六七八九十百千万]|\d+(?:\.\d+)?)+")
_CHINESE_SIGN = re.compile(r"(?=.*[零〇一二两三四五六七八九十百千万])(?:.*[0-9零〇一二两三四五六七八九]|十)", re.DOTALL)
"""Chinese numerals with a digit in them (万 alone is no amount; 十 is ten)."""


def _whole(value: Decimal) -> Decimal:
    """1.5k is 1500, not 1500.0: a scaled amount keeps only the decimals it has."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def _chinese_number(text: str) -> Decimal:
    """一千五 1500, 1千5 1500, 两千 2000, 1.5万 15000, 一万二 12000, 三千零五十 3050, 十五 15.

    A digit after a unit without 零 between them is the next lower unit's ("一千五" is 1,500),
    as people say amounts; otherwise digits and units add up as they are written.
    """
    total = Decimal(0)
    section = Decimal(0)
    number: Decimal | None = None
    last_unit = 0
    after_zero = False
    for part in re.findall(r"\d+(?:\.\d+)?|.", text):
        if part[0].isdigit():
            number = Decimal(part)
        elif part in _CHINESE_DIGITS:
            if _CHINESE_DIGITS[part] == 0:
                after_zero = True
                number = None
                continue
            number = Decimal(_CHINESE_DIGITS[part])
        elif part == "万":
            section += number if number is not None else (Decimal(0) if section else Decimal(1))
            total += section * 10_000
            section, number, last_unit, after_zero = Decimal(0), None, 10_000, False
        else:
            unit = _CHINESE_UNITS[part]
            section += (number if number is not None else Decimal(1)) * unit
            number, last_unit, after_zero = None, unit, False
    if number is not None:
        abbreviated = last_unit >= 100 and not after_zero and number < 10 and number == number.to_integral_value()
        section += number * (last_unit // 10) if abbreviated else number
    return total + section


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
_AMOUNT_TOKEN = re.compile(
    r"(?:(?:[¥$€₽￥]\s*+[0-9０-９]|[0-9０-９])[0-9０-９\s.,\u00a0\u202f]*+"
    rf"(?:(?:{_SCALE_WORDS})\.?(?![^\W\d_])|[十百千万][0-9零〇一二两三四五六七八九十百千万.]*+)?"
    r"|[零〇一二两三四五六七八九]*+[十百千万][零〇一二两三四五六七八九十百千万]*+"
    r"|[零〇一二两三四五六七八九]++(?=\s*+(?:元|块)))"
    r"(?:\s*+(?:元|块|руб\.?|р\.|₽|yuan|rub|usd|eur))?",
    re.IGNORECASE,
)


def monthly_budget(text: str, locale: str) -> Decimal | None:
    """The amount in "I can pay 1,500 a month", "могу платить 2 000 руб в месяц", "每月能还1500元"."""
    normalized = strip_invisible(unicodedata.normalize("NFKC", text))
    if not _MONTHLY.search(normalized):
        return None
    tokens = [token.strip() for token in _AMOUNT_TOKEN.findall(normalized) if token.strip()]
    if len(tokens) != 1:
        return None
    try:
        return parse_amount(tokens[0], locale)
    except InvalidAmount:
        return None
