"""A quick and exact answer to "is this text already a valid phone number in E.164?".

`bot.domain.phones.normalize_phone` parses with the ``phonenumbers`` library, which costs tens of
microseconds a number: an import of the bank's export, whose phones are nearly all written
``+<digits>`` already, spent most of its time there. `is_normalized_e164` decides from the same
metadata, with each region's validity patterns compiled once.

It answers True only when ``normalize_phone(text)`` would return ``text`` itself. False means
"not decided here": the text may still be a valid number (a national prefix the library strips,
a national number starting with 0), or invalid, and ``normalize_phone`` gives the answer and the
reason. The steps follow ``phonenumbers.parse`` (country code, national prefix) and
``phonenumbers.is_valid_number`` (the region of the number, then its number types); the tests
compare the two on numbers of every country code.

The answer for a national number of a given length depends on its first few digits only (the
patterns end in ``\\d{n}``); how many is read from the patterns (`_decisive_digits`), and answers
are remembered by those digits: the whole answer by the digits that decide all of it, and each
pattern's by the (fewer) digits that decide that pattern.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata
from phonenumbers.phonemetadata import REGION_CODE_FOR_NON_GEO_ENTITY

try:
    from re import _constants as _sre, _parser as _sre_parse
except ImportError:  # pragma: no cover - another Python: no remembering, the answers stay the same
    _sre = _sre_parse = None  # type: ignore[assignment]

_MAX_COUNTRY_CODE_DIGITS = 3
_MIN_NATIONAL_DIGITS = 2  # phonenumbers refuses a shorter national number
_MAX_NATIONAL_DIGITS = 17
_MAX_DECISIVE_DIGITS = 7
"""Answers are remembered when this many leading digits or fewer decide them."""
_MEMO_LIMIT = 100_000
"""Answers remembered in all."""

_remembered = [0]

# The number types `phonenumbers` tries after the general description; any one makes a number valid.
_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail", "fixed_line")


def is_normalized_e164(text: str) -> bool:
    """True when ``text`` is a valid number already written exactly as ``normalize_phone`` writes it."""
    if not (type(text) is str and 8 <= len(text) <= 16 and text[0] == "+" and text[1] != "0"):
        return False
    if not (text.isascii() and text[1:].isdigit()):
        return False
    country = (_COUNTRY_CODES or _country_codes()).get(text[1:4])
    if country is None:
        return False
    try:
        digits, known = country.memos[len(text)]
    except KeyError:
        digits, known = country.memos[len(text)] = country.memo(len(text))
    if known is None:
        return country.valid(text)
    key = text[:digits]
    answer = known.get(key)
    if answer is None:
        answer = country.valid(text)
        if _remembered[0] < _MEMO_LIMIT:
            known[key] = answer
            _remembered[0] += 1
    return answer


_COUNTRY_CODES: dict[str, _Country] = {}


def _country_codes() -> dict[str, _Country]:
    """The first three digits → the country code phonenumbers reads there (the shortest known)."""
    countries = {code: _Country(code) for code in COUNTRY_CODE_TO_REGION_CODE}
    for start in range(100, 1000):
        digits = str(start)
        for length in range(1, _MAX_COUNTRY_CODE_DIGITS + 1):
            code = int(digits[:length])
            if code in countries:
                _COUNTRY_CODES[digits] = countries[code]
                break
    return _COUNTRY_CODES


class _Country:
    """``+<country_code>`` numbers: whether one is valid, and by how many digits that is decided."""

    def __init__(self, country_code: int) -> None:
        self._code = country_code
        self._national_start = 1 + len(str(country_code))
        self._built = False
        self.memos: dict[int, tuple[int, dict[str, bool] | None]] = {}
        """Length of the number written ``+<digits>`` → (its leading characters that decide, answers by them)."""

    def valid(self, text: str) -> bool:
        """Whether ``+<digits>`` of this country is valid and written as phonenumbers writes it."""
        if not self._built:
            self._build()
        return self._decide(text[self._national_start:])

    def memo(self, text_length: int) -> tuple[int, dict[str, bool] | None]:
        digits, known = self._memo(text_length - self._national_start)
        return self._national_start + digits, known

    def _decide(self, national: str) -> bool:
        if len(national) < _MIN_NATIONAL_DIGITS or national[0] == "0":
            return False  # phonenumbers keeps leading zeros apart: leave it to normalize_phone
        if self._prefix is not None and (prefix := self._prefix.match(national)) and not self._keeps_prefix(national, prefix):
            return False  # phonenumbers strips it, and the E.164 form differs
        if self._single:
            return self._regions[0].valid(national)
        for region in self._regions:  # is_valid_number: the region the number belongs to, then its types
            if region.leading is not None:
                if region.leading.match(national):
                    return region.valid(national)
            elif region.types.match(national):
                return region.valid(national)
        return False

    def _build(self) -> None:
        regions = COUNTRY_CODE_TO_REGION_CODE[self._code]
        main = PhoneMetadata.metadata_for_region_or_calling_code(self._code, regions[0])
        self._prefix = self._viable = None
        self._transform = None
        if main is not None and main.national_prefix_for_parsing:
            self._prefix = re.compile(main.national_prefix_for_parsing)
            general = main.general_desc.national_number_pattern if main.general_desc else None
            self._viable = re.compile(general) if general else None
            self._transform = main.national_prefix_transform_rule
        if len(regions) == 1:
            metadata = PhoneMetadata.metadata_for_region_or_calling_code(self._code, regions[0].upper())
            self._regions = [_Region(metadata, self._code, regions[0])]
        else:
            self._regions = [
                _Region(metadata, self._code, region)
                for region in regions
                if (metadata := PhoneMetadata.metadata_for_region(region.upper(), None)) is not None
            ]
        self._single = len(regions) == 1
        self._built = True

    def _keeps_prefix(self, national: str, prefix: re.Match[str]) -> bool:
        """Whether phonenumbers leaves a number that starts like a national prefix as it is."""
        if self._viable is None or not self._viable.fullmatch(national):
            return False
        groups = prefix.groups()
        if self._transform and not groups:
            return False
        if self._transform and groups[-1] is not None:
            assert self._prefix is not None
            stripped = self._prefix.sub(self._transform, national, count=1)
        else:
            stripped = national[prefix.end():]
        return self._viable.fullmatch(stripped) is None

    def _memo(self, length: int) -> tuple[int, dict[str, bool] | None]:
        """How many leading national digits decide `_decide` at this length, and the answers by them."""
        if not self._built:
            self._build()
        needed = [1]
        if self._prefix is not None and not (_first_digits(self._prefix.pattern) or {"?"}) <= {"0"}:
            # a national prefix other than 0 (national numbers starting with 0 are not decided here)
            longest = _longest_match(self._prefix.pattern)
            if longest is None or self._transform:
                return 0, None
            viable = self._viable.pattern if self._viable is not None else None
            needed.append(longest)
            for end in range(min(longest, length) + 1):
                needed.append(end + (_decisive_digits(viable, length - end) if viable else 0))  # type: ignore[operator]
        for region in self._regions:
            needed.append(region.types.decisive_digits(length))  # type: ignore[arg-type]
            if region.leading is not None and not self._single:
                needed.append(_longest_match(region.leading.pattern))  # type: ignore[arg-type]
        if None in needed or max(needed) > _MAX_DECISIVE_DIGITS:
            return 0, None
        return max(needed), {}


class _Region:
    """One region of a country code: how numbers are assigned to it, and validated against it."""

    def __init__(self, metadata: PhoneMetadata | None, country_code: int, region: str) -> None:
        self.leading = re.compile(metadata.leading_digits) if metadata and metadata.leading_digits is not None else None
        self.types = _NumberTypes(metadata)
        self._checked = metadata is not None and (
            region == REGION_CODE_FOR_NON_GEO_ENTITY or metadata.country_code == country_code
        )

    def valid(self, national: str) -> bool:
        return self._checked and self.types.match(national)


class _NumberTypes:
    """Whether a national number matches the general description and one number type of a region."""

    def __init__(self, metadata: PhoneMetadata | None) -> None:
        self._metadata = metadata
        self._by_length: dict[int, tuple[_Pattern, list[_Pattern]] | None] = {}

    def match(self, national: str) -> bool:
        length = len(national)
        try:
            patterns = self._by_length[length]
        except KeyError:
            patterns = self._by_length[length] = self._compiled(length)
        if patterns is None:
            return False
        general, types = patterns
        if not general.match(national):
            return False
        for number_type in types:
            if number_type.match(national):
                return True
        return False

    def decisive_digits(self, length: int) -> int | None:
        """How many leading digits decide `match` for numbers of ``length`` digits (None: unknown)."""
        patterns = self._patterns(length)
        if patterns is None:
            return 0
        general, types = patterns
        needed = [_decisive_digits(pattern, length) for pattern in (general, *types)]
        return None if None in needed else max(needed)  # type: ignore[type-var]

    def _patterns(self, length: int) -> tuple[str, list[str]] | None:
        metadata = self._metadata
        if metadata is None:
            return None
        general = _pattern_for(metadata.general_desc, length)
        # mobile and fixed line first: most numbers are one or the other
        descriptions = [] if metadata.same_mobile_and_fixed_line_pattern else [metadata.mobile]
        descriptions += [getattr(metadata, name) for name in _TYPES]
        types = [pattern for pattern in (_pattern_for(desc, length) for desc in descriptions) if pattern]
        if general is None or not types:
            return None
        return general, types

    def _compiled(self, length: int) -> tuple[_Pattern, list[_Pattern]] | None:
        patterns = self._patterns(length)
        if patterns is None:
            return None
        general, types = patterns
        return _Pattern(general, length), [_Pattern(pattern, length) for pattern in types]


class _Pattern:
    """A full match of one pattern, for numbers of one length, remembered by the digits that decide it."""

    __slots__ = ("_regex", "_digits", "_known")

    def __init__(self, pattern: str, length: int) -> None:
        self._regex = re.compile(pattern)
        digits = _decisive_digits(pattern, length)
        self._digits = digits if digits is not None and digits <= _MAX_DECISIVE_DIGITS else None
        self._known: dict[str, bool] = {}

    def match(self, national: str) -> bool:
        if self._digits is None:
            return self._regex.fullmatch(national) is not None
        key = national[:self._digits]
        answer = self._known.get(key)
        if answer is None:
            answer = self._regex.fullmatch(national) is not None
            if _remembered[0] < _MEMO_LIMIT:
                self._known[key] = answer
                _remembered[0] += 1
        return answer


def _pattern_for(description: Any, length: int) -> str | None:
    """The description's pattern if a number of ``length`` digits can match it (as phonenumbers checks)."""
    if description is None:
        return None
    pattern = description.national_number_pattern
    possible = description.possible_length
    if not pattern or (len(possible) > 0 and length not in possible):
        return None
    return pattern


# --------------------------------------------------------------------------- reading the patterns


class _Unknown(Exception):
    """A construct the analysis below does not follow (anchors, lookarounds, back-references...)."""


def _decisive_digits(pattern: str, length: int) -> int | None:
    """For strings of ``length`` ASCII digits: how many leading ones decide a full match.

    Every way the pattern matches ``length`` characters ends in some run of "any digit" positions;
    past the shortest such run's start nothing is checked. None when the pattern is not understood.
    """
    paths = _paths(pattern)
    if paths is None:
        return None
    free = [any_digits for matched, any_digits in paths if matched == length]
    return length - min(free) if free else 0


def _longest_match(pattern: str) -> int | None:
    """The most characters a (prefix) match of the pattern reads, if known and below the limit."""
    paths = _paths(pattern)
    if not paths or max(matched for matched, _ in paths) >= _MAX_NATIONAL_DIGITS:
        return None
    return max(matched for matched, _ in paths)


@lru_cache(maxsize=None)
def _paths(pattern: str) -> frozenset[tuple[int, int]] | None:
    """(length, how many final positions accept any digit) of each way the pattern matches."""
    if _sre_parse is None:
        return None
    try:
        return frozenset(_sequence(_sre_parse.parse(pattern)))
    except (_Unknown, re.error, RecursionError):
        return None


def _sequence(items: Any) -> set[tuple[int, int]]:
    paths = {(0, 0)}
    for op, argument in items:
        paths = _then(paths, _item(op, argument))
    return paths


def _then(first: set[tuple[int, int]], second: set[tuple[int, int]]) -> set[tuple[int, int]]:
    return {
        (length + more, more + free if more_free == more else more_free)
        for length, free in first
        for more, more_free in second
        if length + more <= _MAX_NATIONAL_DIGITS
    }


def _item(op: Any, argument: Any) -> set[tuple[int, int]]:
    if op is _sre.LITERAL or op is _sre.NOT_LITERAL:
        return {(1, 0)}
    if op is _sre.IN:
        return {(1, 1 if _any_digit(argument) else 0)}
    if op is _sre.SUBPATTERN:
        return _sequence(argument[-1])
    if op is _sre.BRANCH:
        return set().union(*(_sequence(alternative) for alternative in argument[1]))
    if op is _sre.MAX_REPEAT or op is _sre.MIN_REPEAT:
        low, high, item = argument
        once = _sequence(item)
        paths: set[tuple[int, int]] = set()
        power, count = {(0, 0)}, 0
        while power:
            if count >= low:
                if power <= paths:
                    break  # every further repetition is covered as well
                paths |= power
            if count == high:
                break
            power, count = _then(power, once), count + 1
        return paths
    raise _Unknown(op)


def _any_digit(items: Any) -> bool:
    """Whether a character class surely accepts every ASCII digit (when unsure: no)."""
    if any(op is _sre.NEGATE for op, _ in items):
        return False
    return any(
        (op is _sre.CATEGORY and argument is _sre.CATEGORY_DIGIT)
        or (op is _sre.RANGE and argument[0] <= ord("0") and argument[1] >= ord("9"))
        for op, argument in items
    )


@lru_cache(maxsize=None)
def _first_digits(pattern: str) -> frozenset[str] | None:
    """The characters a match of the pattern can start with; None if it may be empty, or unknown."""
    if _sre_parse is None:
        return None
    try:
        return _starts(_sre_parse.parse(pattern))
    except (_Unknown, re.error, RecursionError):
        return None


def _starts(items: Any) -> frozenset[str] | None:
    for op, argument in items:
        if op is _sre.LITERAL:
            return frozenset(chr(argument))
        if op is _sre.SUBPATTERN:
            return _starts(argument[-1])
        if op is _sre.BRANCH:
            starts = [_starts(alternative) for alternative in argument[1]]
            return None if None in starts else frozenset().union(*starts)  # type: ignore[arg-type]
        if op is _sre.MAX_REPEAT or op is _sre.MIN_REPEAT:
            return _starts(argument[2]) if argument[0] > 0 else None
        raise _Unknown(op)
    return None
