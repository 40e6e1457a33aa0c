"""Reading a birth date the way a person types it, in the conventions of their language.

Accepted, after Unicode NFKC normalisation (full-width digits become ASCII) and case folding:

* year first, always year-month-day: ``1985-03-07``, ``1985/3/7``, ``1985.03.07``,
  ``1985年3月7日`` (spaces allowed, ``日``/``号`` optional);
* dotted with the year last, always day first (the convention wherever dots are used):
  ``07.03.1985``, ``7.3.1985``;
* ``/`` or ``-`` with the year last, read in the order of the locale's Babel short date
  pattern: ``en`` (``M/d/yy``) month first, ``ru`` (``dd.MM.y``) day first. ``zh_CN``'s
  pattern (``y/M/d``) puts the year first, so a year-last date there is read day first,
  the usual order outside North America. If the field the locale puts the month in is above 12
  while the other is not (``25/03/1985`` in ``en``), the only possible reading is taken;
* month names of any supported language (Babel's wide and abbreviated, format and stand-alone
  forms, so Russian genitive ``марта`` and nominative ``март`` alike, plus unambiguous
  abbreviations and other case endings): ``7 March 1985``, ``March 7, 1985``, ``7 Mar 1985``,
  ``7-mar-1985``, ``7 марта 1985``, ``7 март 1985 г.``.

Two-digit years are refused: ``07/03/85`` could be 1885, 1985 or 2085. A text longer than
`MAX_LENGTH` is refused before it is read: no date is that long. Invisible marks (zero-width
spaces, direction marks) are removed first.

Where a future date is asked (a promise to pay), a date may also come without its year:
``December 12``, ``10 декабря``, ``12月5日``, ``10.12`` is the next such day.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from datetime import date
from functools import lru_cache

from babel.dates import get_date_format, get_month_names

from bot.domain.errors import InvalidDate
from bot.domain.text import strip_invisible
from bot.languages import SUPPORTED_LOCALES, language

MIN_YEAR = 1900
MIN_AGE = 14
MAX_LENGTH = 200
MIN_ABBREVIATION = 3
"""Month names are read from their first three letters on ("sept", "dec", "февр")."""

_SEP = r"\s*[-./]\s*"
_YEAR_FIRST = re.compile(rf"^(\d{{4}}){_SEP}(\d{{1,2}}){_SEP}(\d{{1,2}})$")
_CJK = re.compile(r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?$")
_YEAR_LAST = re.compile(r"^(\d{1,2})\s*([-./])\s*(\d{1,2})\s*\2\s*(\d+)$")
_ORDINAL = r"(?:st|nd|rd|th)?"
_WORD = r"([^\W\d_]+\.?)"
_DAY_MONTH_YEAR = re.compile(rf"^(\d{{1,2}}){_ORDINAL}(?:\s*[-./]\s*|\s+)(?:of\s+)?{_WORD}(?:\s*[-./,]\s*|\s+)(\d+)$")
_MONTH_DAY_YEAR = re.compile(rf"^{_WORD}\s*(\d{{1,2}}){_ORDINAL}\s*(?:,\s*|\s+)(\d+)$")
_YEAR_MONTH_DAY = re.compile(rf"^(\d{{4}})(?:\s*[-./,]\s*|\s+){_WORD}(?:\s*[-./,]\s*|\s+)(\d{{1,2}})$")
_RUSSIAN_YEAR_SUFFIX = re.compile(r"(?<=\d)\s*(?:г\.?|года|год)$")
_CJK_MONTH_DAY = re.compile(r"^(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?$")
_NUMERIC_MONTH_DAY = re.compile(r"^(\d{1,2})\s*([./])\s*(\d{1,2})$")
_DAY_MONTH = re.compile(rf"^(\d{{1,2}}){_ORDINAL}(?:\s*[-./]\s*|\s+)(?:of\s+)?{_WORD}$")
_MONTH_DAY = re.compile(rf"^{_WORD}\s*(\d{{1,2}}){_ORDINAL}$")


def parse_date(text: str, locale: str, *, today: date | None = None) -> date:
    """Read a calendar date typed in any common form for ``locale`` (en, zh_CN or ru).

    Given ``today``, a date asked for in the future may come without its year ("December 12",
    "10 декабря", "12月5日", "10.12"): it is the next such day, today included.
    """
    stripped = "" if text is None else strip_invisible(str(text)).strip()
    if not stripped:
        raise InvalidDate("no date given")
    if len(stripped) > MAX_LENGTH:
        raise InvalidDate(f"not a date: {len(stripped)} characters is longer than any date")
    cleaned = unicodedata.normalize("NFKC", stripped).strip().casefold()
    cleaned = _RUSSIAN_YEAR_SUFFIX.sub("", cleaned).strip()
    cleaned = re.sub(r"\s+", " ", cleaned)
    locale = _normalize_locale(locale)
    if today is not None and (month_day := _month_and_day(cleaned, locale)) is not None:
        return _next(today, *month_day)
    year, month, day = _fields(cleaned, locale)
    return _build(year, month, day)


def _month_and_day(text: str, locale: str) -> tuple[int, int] | None:
    """(month, day) of a date typed without a year, or None when the text has a year or is no date."""
    if match := _CJK_MONTH_DAY.match(text):
        return int(match[1]), int(match[2])
    if match := _NUMERIC_MONTH_DAY.match(text):
        return _order(int(match[1]), int(match[3]), match[2], locale)
    if match := _DAY_MONTH.match(text):
        return _month(match[2]), int(match[1])
    if match := _MONTH_DAY.match(text):
        return _month(match[1]), int(match[2])
    return None


def _next(today: date, month: int, day: int) -> date:
    """The next `day` of `month` from today on (29 February: the next year that has one)."""
    year = today.year
    while True:
        if not (month == 2 and day == 29 and not calendar.isleap(year)):
            candidate = _build(year, month, day)
            if candidate >= today:
                return candidate
        year += 1


def parse_birth_date(text: str, locale: str, today: date) -> date:
    """Read a birth date typed in ``locale`` and check it is plausible on ``today``."""
    return check_birth_date(parse_date(text, locale), today)


def check_birth_date(value: date, today: date) -> date:
    """Refuse a birth date in the future, before 1900, or of someone younger than 14 on ``today``."""
    if value > today:
        raise InvalidDate(f"{value.isoformat()} is in the future")
    if value.year < MIN_YEAR:
        raise InvalidDate(f"{value.isoformat()} is before {MIN_YEAR}")
    age = today.year - value.year - ((today.month, today.day) < (value.month, value.day))
    if age < MIN_AGE:
        raise InvalidDate(f"{value.isoformat()} means an age of {age}; the cardholder must be at least {MIN_AGE}")
    return value


def _normalize_locale(locale: str) -> str:
    wanted = str(locale or "").replace("-", "_").casefold()
    for known in SUPPORTED_LOCALES:
        if known.casefold() == wanted:
            return known
    raise ValueError(f"unsupported locale {locale!r}; expected one of {', '.join(SUPPORTED_LOCALES)}")


def _fields(text: str, locale: str) -> tuple[int, int, int]:
    if match := _CJK.match(text) or _YEAR_FIRST.match(text):
        year, month, day = match.groups()
        return _year(year), int(month), int(day)
    if match := _YEAR_LAST.match(text):
        first, separator, second, year = match.groups()
        return _year(year), *_order(int(first), int(second), separator, locale)
    if match := _DAY_MONTH_YEAR.match(text):
        day, word, year = match.groups()
        return _year(year), _month(word), int(day)
    if match := _MONTH_DAY_YEAR.match(text):
        word, day, year = match.groups()
        return _year(year), _month(word), int(day)
    if match := _YEAR_MONTH_DAY.match(text):
        year, word, day = match.groups()
        return _year(year), _month(word), int(day)
    raise InvalidDate("not a date; write it like " + _example(locale))


def _order(first: int, second: int, separator: str, locale: str) -> tuple[int, int]:
    """(month, day) from the two fields before a trailing year."""
    month_first = separator != "." and _month_first(locale)
    month, day = (first, second) if month_first else (second, first)
    if month > 12 and day <= 12:
        month, day = day, month
    return month, day


@lru_cache(maxsize=None)
def _month_first(locale: str) -> bool:
    """Whether the locale's short date pattern puts the month before the day (en: M/d/yy)."""
    pattern = re.sub(r"'[^']*'", "", get_date_format("short", locale=locale).pattern)
    positions = {field: pattern.find(field) for field in "yMd"}
    if positions["y"] < min(positions["M"], positions["d"]):
        return False  # year first (zh_CN): a year-last date is read day first
    return positions["M"] < positions["d"]


def _year(digits: str) -> int:
    if len(digits) == 2:
        raise InvalidDate("two-digit years are ambiguous; write the year in full, e.g. 1985")
    if len(digits) != 4:
        raise InvalidDate(f"{digits} is not a four-digit year")
    return int(digits)


def _build(year: int, month: int, day: int) -> date:
    if not 1 <= month <= 12:
        raise InvalidDate(f"there is no month {month}")
    try:
        return date(year, month, day)
    except ValueError:
        name = get_month_names("wide", locale="en")[month]
        raise InvalidDate(f"there is no {name} {day} in {year:04d}") from None


def _month(word: str) -> int:
    table, stems = _month_tables()
    token = word.rstrip(".")
    if token in table:
        return table[token]
    candidates: set[int] = set()
    if len(token) >= MIN_ABBREVIATION:
        # an abbreviation of a known name ("sept", "dec", "февр") ...
        candidates |= {month for name, month in table.items() if name.startswith(token)}
        # ... or another case ending of a known stem ("январе", "марте")
        candidates |= {month for stem, month in stems if token.startswith(stem)}
    if len(candidates) == 1:
        return candidates.pop()
    raise InvalidDate(f"{word!r} is not a month name")


def month_words() -> tuple[frozenset[str], frozenset[str]]:
    """The folded month names `parse_date` reads, and the stems it reads with any ending.

    A word is a month when it is a name, the first `MIN_ABBREVIATION` letters or more of a name
    (if only one month starts so), or a stem with an ending; the masking finds dates with these.
    """
    table, stems = _month_tables()
    return frozenset(table), frozenset(stem for stem, _ in stems)


@lru_cache(maxsize=1)
def _month_tables() -> tuple[dict[str, int], tuple[tuple[str, int], ...]]:
    """Every month name Babel knows for the supported locales, folded, without trailing dots."""
    table: dict[str, int] = {}
    stems: set[tuple[str, int]] = set()
    for locale in SUPPORTED_LOCALES:
        for context in ("format", "stand-alone"):
            for width in ("wide", "abbreviated"):
                for month, name in get_month_names(width, context, locale).items():
                    folded = unicodedata.normalize("NFKC", name).casefold().rstrip(".")
                    if any(ch.isdigit() for ch in folded):
                        continue  # zh "3月" is covered by the 年月日 form
                    table.setdefault(folded, month)
                    if width == "wide" and context == "stand-alone":
                        stem = folded.rstrip("ьйа")
                        if len(stem) >= 3:
                            stems.add((stem, month))
    return table, tuple(sorted(stems))


def _example(locale: str) -> str:
    return language(locale).birth_date_example


def add_years(start: date, years: int) -> date:
    """The same calendar day `years` later (29 February becomes 28 February)."""
    try:
        return start.replace(year=start.year + years)
    except ValueError:
        return start.replace(year=start.year + years, day=28)
