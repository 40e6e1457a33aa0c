"""Masking of personal data for logs and the audit trail: dates, phone numbers and other long numbers.

Free text is read the way the parsers read a message, Unicode NFKC and case folded (so
``１９８５－０３－０７`` and ``7 MARCH 1985`` are dates here too), and masked with the parsers' own
vocabulary:

* every form `bot.domain.dates.parse_date` reads, with the month names it knows, and a few more
  (any word between a day and a four-digit year, two-digit years, mixed separators) becomes
  ``[date]``;
* every run of digits and the characters `bot.domain.phones` allows between them that holds
  `MIN_DIGITS` digits or more (phones, card and account numbers) keeps only its last two digits:
  ``+8613800138000`` becomes ``+***********00``. When such a run holds a date and other digits
  (``8 (912) 34-56-789``), or starts with ``+``, the whole run is a number.

The cost is linear in the length of the text by construction: each character is normalised once,
every quantifier is possessive or bounded, and a word is only looked at where a run of letters
starts, so no part of the text is read more than a few times.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

from bot.domain.dates import MIN_ABBREVIATION, month_words
from bot.domain.phones import FORMATTING, MIN_DIGITS

DATE_MASK = "[date]"


def _trie(words: frozenset[str] | set[str]) -> str:
    """A regular expression for exactly `words`, shaped as a trie so a match costs the word's length."""
    tree: dict[str, dict] = {}
    for word in words:
        node = tree
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def branch(node: dict[str, dict]) -> str:
        alternatives = [re.escape(char) + branch(child) for char, child in sorted(node.items()) if char]
        if not alternatives:
            return ""
        body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
        return f"(?:{body})?" if "" in node else body

    return branch(tree)


def _date_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The dates that start with a digit, and those that start with a word (a month first).

    Two patterns rather than one, so that each position of the text is tried against few
    alternatives: digits first, then a word only where a run of letters starts. A date does not
    start inside a number: ``…138000 born 1985`` is the end of a phone, not "00 born 1985".
    """
    names, stems = month_words()
    abbreviations = {name[:length] for name in names for length in range(MIN_ABBREVIATION, len(name))}
    letter = r"[^\W\d_]"
    month = rf"(?:{_trie(names | abbreviations)}(?!{letter})|{_trie(stems)}{letter}*+)\.?"
    ordinal = r"(?:st|nd|rd|th)?+"
    year = r"(?:\d{4}|\d{2})(?!\d)"
    after_day = r"(?:\s*+[-./]\s*+|\s++)"
    between = r"(?:\s*+[-./,]\s*+|\s++)"
    year_first = (
        # 1985-03-07, 1985.3.7, 1985年3月7日 (or 号)
        r"\s*+[-./年]\s*+\d{1,2}+\s*+[-./月]\s*+\d{1,2}+(?:\s*+[日号])?+",
        # 1985 March 7, 1985-mar-07
        rf"{between}{month}{between}\d{{1,2}}+",
    )
    day_first = (
        # 07.03.1985, 3/7/1985, 07-03-85
        r"\s*+[-./]\s*+\d{1,2}+\s*+[-./]\s*+\d{2,4}+",
        # 7 March 1985, 7th of March 1985, 7-mar-1985, 7 марта 1985, 7 三月 1985
        rf"{ordinal}{after_day}(?:of\s++)?+{month}{between}{year}",
        # any word between a day and a year: 7 Foo 1985
        rf"\s++{letter}{{3,}}+\.?\s++\d{{4}}",
    )
    word_first = (
        # March 7, 1985, mar 7th 1985, марта 7 1985
        rf"{month}\s*+\d{{1,2}}+{ordinal}(?:\s*+,\s*+|\s++){year}",
        # any word before a day and a year: Foo 7, 1985
        rf"{letter}{{3,}}+\.?\s++\d{{1,2}}+,?\s++\d{{4}}",
    )
    # The first digit comes before the look back (no digit before it) so that the search can skip
    # from digit to digit; then three more for a year, or one more at most for a day.
    by_digit = rf"\d(?<!\d\d)(?:\d{{3}}(?:{'|'.join(year_first)})|\d?+(?:{'|'.join(day_first)}))"
    by_word = rf"(?={letter})(?<!{letter})(?:{'|'.join(word_first)})"
    return re.compile(by_digit), re.compile(by_word)


_DATE_BY_DIGIT, _DATE_BY_WORD = _date_patterns()
_NUMBER = re.compile(rf"\+?+\d(?:[{FORMATTING}]*+\d){{{MIN_DIGITS - 1},}}+")
_DIGIT = re.compile(r"\d")
_NOT_DIGIT = re.compile(r"\D+")


def mask_text(text: str) -> str:
    """Hide dates (birth dates) and runs of seven or more digits (phones, ids), keeping the last two."""
    if not _DIGIT.search(text if text.isascii() else unicodedata.normalize("NFKC", text)):
        return text  # every date and number has a digit
    folded, bounds, offsets = _fold(text)
    pieces: list[str] = []
    done = 0
    for start, end, replacement in _masks(folded):
        if bounds is not None:
            start, end = bounds[bisect_right(offsets, start) - 1], bounds[bisect_right(offsets, end - 1)]
            while end > start and unicodedata.combining(text[end - 1]):
                end -= 1  # a mark on the last digit stays: it parts the masked run from what follows
        start = max(start, done)
        pieces.append(text[done:start])
        pieces.append(replacement)
        done = max(end, done)
    pieces.append(text[done:])
    return "".join(pieces)


def _fold(text: str) -> tuple[str, Sequence[int] | None, list[int]]:
    """`text` as the parsers read it (NFKC, case folded), and where each folded piece came from.

    The folded text is made of pieces: piece ``k`` is ``folded[offsets[k]:offsets[k + 1]]`` and
    came from ``text[bounds[k]:bounds[k + 1]]`` (a character, with its combining marks if it has
    any; ``…`` folds to three characters). ``bounds`` is None when nothing moved.
    """
    if text.isascii():
        return text.lower(), None, []
    if unicodedata.is_normalized("NFKC", text):
        folded = text.casefold()
        if len(folded) == len(text):
            return folded, None, []
    table = {char: unicodedata.normalize("NFKC", char).casefold() for char in set(text)}
    marks = {char for char in table if unicodedata.combining(char)}
    if not marks and all(len(folded) == 1 for folded in table.values()):
        folded = unicodedata.normalize("NFKC", text).casefold()
        if len(folded) == len(text):  # nothing composed (Hangul jamo would)
            return folded, None, []
    bounds: Sequence[int]
    if marks:
        bounds = [index for index, char in enumerate(text) if index == 0 or char not in marks]
        bounds.append(len(text))
        pieces = [
            table[text[start]] if end == start + 1 else unicodedata.normalize("NFKC", text[start:end]).casefold()
            for start, end in zip(bounds, bounds[1:])
        ]
    else:
        bounds = range(len(text) + 1)
        pieces = list(map(table.__getitem__, text))
    return "".join(pieces), bounds, list(accumulate(map(len, pieces), initial=0))


def _masks(folded: str) -> list[tuple[int, int, str]]:
    """(start, end, replacement) of each date and long number in `folded`, in order, not overlapping."""
    dates = _dates(folded)
    found: list[tuple[int, int, bool]] = []  # start, end, whether it is a number
    next_date = 0
    for number in _NUMBER.finditer(folded):
        start, end = number.span()
        while next_date < len(dates) and dates[next_date][1] <= start:
            found.append((*dates[next_date], False))
            next_date += 1
        past = next_date  # dates[next_date:past] overlap the number
        date_digits = 0
        while past < len(dates) and dates[past][0] < end:
            date_digits += _count_digits(folded[max(start, dates[past][0]):min(end, dates[past][1])])
            past += 1
        if date_digits == _count_digits(number.group()) and not number.group().startswith("+"):
            found.extend((*span, False) for span in dates[next_date:past])
        elif past > next_date:
            found.append((min(start, dates[next_date][0]), max(end, dates[past - 1][1]), True))
        else:
            found.append((start, end, True))
        next_date = past
    found.extend((*span, False) for span in dates[next_date:])

    merged: list[tuple[int, int, bool]] = []
    for start, end, is_number in sorted(found):
        if merged and start < merged[-1][1]:  # a number that took in a date reaching into the next one
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]), True)
        else:
            merged.append((start, end, is_number))
    return [(start, end, _mask_number(folded[start:end]) if is_number else DATE_MASK) for start, end, is_number in merged]


def _dates(folded: str) -> list[tuple[int, int]]:
    """The spans of the dates in `folded`, in order; two forms found over the same text are one date."""
    spans = [match.span() for match in _DATE_BY_DIGIT.finditer(folded)]
    spans += [match.span() for match in _DATE_BY_WORD.finditer(folded)]
    spans.sort()
    dates: list[tuple[int, int]] = []
    for start, end in spans:
        if dates and start < dates[-1][1]:
            dates[-1] = (dates[-1][0], max(end, dates[-1][1]))
        else:
            dates.append((start, end))
    return dates


def _count_digits(text: str) -> int:
    return len(_NOT_DIGIT.sub("", text))


def _mask_number(text: str) -> str:
    digits = _NOT_DIGIT.sub("", text)
    sign = "+" if text.startswith("+") else ""
    return sign + "*" * (len(digits) - 2) + digits[-2:]
