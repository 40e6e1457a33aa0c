"""Birth dates typed in the forms each supported language uses."""

from __future__ import annotations

from datetime import date

import pytest

from bot.domain.dates import check_birth_date, parse_birth_date, parse_date
from bot.domain.errors import InvalidDate

TODAY = date(2025, 6, 1)
BORN = date(1985, 3, 7)


@pytest.mark.parametrize("locale", ["en", "zh_CN", "ru"])
@pytest.mark.parametrize(
    "text",
    [
        "1985-03-07",
        "1985/3/7",
        "1985.03.07",
        "07.03.1985",
        "7.3.1985",
        " 7 . 3 . 1985 ",
        "7 March 1985",
        "7 march 1985",
        "March 7, 1985",
        "march 7 1985",
        "7 Mar 1985",
        "7 Mar. 1985",
        "7-Mar-1985",
        "7th March 1985",
        "Mar 7th, 1985",
        "1985 March 7",
        "7 марта 1985",
        "7 МАРТА 1985",
        "7 март 1985 г.",
        "7 марта 1985 года",
        "7 мар. 1985",
        "7 марте 1985",
        "1985年3月7日",
        "1985年03月07日",
        "１９８５年３月７日",
        "1985 年 3 月 7 日",
        "1985年3月7号",
        "１９８５－０３－０７",
    ],
)
def test_unambiguous_forms_in_every_locale(text: str, locale: str) -> None:
    assert parse_birth_date(text, locale, TODAY) == BORN


@pytest.mark.parametrize(
    ("text", "locale", "expected"),
    [
        # en: Babel's short pattern M/d/yy puts the month first
        ("03/07/1985", "en", BORN),
        ("3/7/1985", "en", BORN),
        ("03-07-1985", "en", BORN),
        ("07/03/1985", "en", date(1985, 7, 3)),
        # ru: dd.MM.y, day first
        ("07/03/1985", "ru", BORN),
        ("07-03-1985", "ru", BORN),
        ("03/07/1985", "ru", date(1985, 7, 3)),
        # zh_CN: y/M/d; with the year last, day first
        ("07/03/1985", "zh_CN", BORN),
        ("07-03-1985", "zh_CN", BORN),
        # dots are day first everywhere
        ("07.03.1985", "en", BORN),
        # when the locale's month field cannot be a month, the only possible reading wins
        ("25/03/1985", "en", date(1985, 3, 25)),
        ("03/25/1985", "ru", date(1985, 3, 25)),
        # other supported languages' month names, in any locale
        ("7 мая 1985", "en", date(1985, 5, 7)),
        ("7 May 1985", "ru", date(1985, 5, 7)),
        ("7 sept 1985", "en", date(1985, 9, 7)),
        ("7 сентября 1985", "zh_CN", date(1985, 9, 7)),
        ("7 三月 1985", "zh_CN", BORN),
        # locale spelled with a dash
        ("07/03/1985", "zh-CN", BORN),
    ],
)
def test_locale_order(text: str, locale: str, expected: date) -> None:
    assert parse_birth_date(text, locale, TODAY) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no date"),
        ("   ", "no date"),
        ("hello", "not a date"),
        ("1985", "not a date"),
        ("7 3 1985", "not a date"),
        ("1985-03", "not a date"),
        ("7 Foo 1985", "not a month"),
        ("7 ма 1985", "not a month"),
        ("31.02.1985", "no February 31"),
        ("1985-02-29", "no February 29"),
        ("1985-13-01", "no month 13"),
        ("13/13/1985", "no month 13"),
        ("32.01.1985", "no January 32"),
        ("07/03/85", "two-digit"),
        ("7 March 85", "two-digit"),
        ("07.03.19850", "four-digit year"),
        ("2030-01-01", "future"),
        ("2025-06-02", "future"),
        ("1899-12-31", "before 1900"),
        ("2015-01-01", "at least 14"),
        ("2011-06-02", "at least 14"),
    ],
)
def test_rejects_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidDate, match=reason):
        parse_birth_date(text, "en", TODAY)


def test_fourteenth_birthday_is_old_enough() -> None:
    assert parse_birth_date("2011-06-01", "en", TODAY) == date(2011, 6, 1)
    assert parse_birth_date("1900-01-01", "ru", TODAY) == date(1900, 1, 1)


def test_leap_day() -> None:
    assert parse_birth_date("29.02.1988", "ru", TODAY) == date(1988, 2, 29)


def test_check_birth_date_is_the_same_rule() -> None:
    assert check_birth_date(BORN, TODAY) == BORN
    with pytest.raises(InvalidDate, match="future"):
        check_birth_date(date(2026, 1, 1), TODAY)


def test_unknown_locale_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unsupported locale"):
        parse_birth_date("1985-03-07", "de", TODAY)


@pytest.mark.parametrize(
    ("text", "locale", "expected"),
    [
        ("December 12", "en", date(2026, 12, 12)),
        ("Dec 12th", "en", date(2026, 12, 12)),
        ("12th of December", "en", date(2026, 12, 12)),
        ("12/10", "en", date(2026, 12, 10)),
        ("10 декабря", "ru", date(2026, 12, 10)),
        ("10.12", "ru", date(2026, 12, 10)),
        ("1 декабря", "ru", date(2026, 12, 1)),
        ("30 ноября", "ru", date(2027, 11, 30)),
        ("12月5日", "zh_CN", date(2026, 12, 5)),
        ("1月5号", "zh_CN", date(2027, 1, 5)),
        ("29 February", "en", date(2028, 2, 29)),
        ("December 12, 2026", "en", date(2026, 12, 12)),
        ("\u200f10\u200b.12", "ru", date(2026, 12, 10)),
    ],
)
def test_a_future_date_without_its_year_is_the_next_such_day(text: str, locale: str, expected: date) -> None:
    assert parse_date(text, locale, today=date(2026, 12, 1)) == expected


@pytest.mark.parametrize("text", ["December 12", "10 декабря", "12月5日"])
def test_a_birth_date_needs_its_year(text: str) -> None:
    with pytest.raises(InvalidDate):
        parse_birth_date(text, "en", today=date(2026, 12, 1))


@pytest.mark.parametrize("text", ["31 ноября", "13/40", "Smarch 3"])
def test_a_day_that_does_not_exist_is_refused(text: str) -> None:
    with pytest.raises(InvalidDate):
        parse_date(text, "ru", today=date(2026, 12, 1))


@pytest.mark.parametrize("mark", ["\u200f", "\u200e", "\u200b", "\ufeff", "\u2066"])
def test_a_birth_date_with_an_invisible_mark_is_read(mark: str) -> None:
    assert parse_birth_date(f"{mark}07.03.1985{mark}", "ru", today=date(2026, 12, 1)) == date(1985, 3, 7)
    assert parse_birth_date(f"1985{mark}年3月7日", "zh_CN", today=date(2026, 12, 1)) == date(1985, 3, 7)
