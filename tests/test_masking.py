"""Masking of free text for logs and the audit trail: whatever the parsers read as a date or a phone is hidden."""

from __future__ import annotations

import io
import logging
import re
import unicodedata
from datetime import date

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from bot.domain.dates import MIN_ABBREVIATION, month_words, parse_birth_date
from bot.domain.errors import InvalidDate, InvalidPhone
from bot.domain.masking import mask_text
from bot.domain.phones import FORMATTING, MIN_DIGITS, normalize_phone
from bot.logs import masked_handler

TODAY = date(2025, 6, 1)
PROPERTIES = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def digits(text: str) -> str:
    """The digits of `text` as the parsers read them (full-width, circled and such included)."""
    return "".join(char for char in unicodedata.normalize("NFKC", text) if char.isdigit())


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # what the journeys expect of the audit trail and the logs
        ("my nephew says +8613800138000 keeps ringing", "my nephew says +***********00 keeps ringing"),
        ("1985-03-07", "[date]"),
        ("born 7 March 1985, call +7 (912) 345-67-89", "born [date], call +*********89"),
        # the forms parse_birth_date reads
        ("1961 February 2", "[date]"),
        ("2nd of February 1961", "[date]"),
        ("2-feb-1961", "[date]"),
        ("on １９６１－０２－０２ I", "on [date] I"),
        ("我的生日是1961年2月2日。", "我的生日是[date]。"),
        ("1961年2月2号", "[date]"),
        ("1985年㋂7日", "[date]"),
        ("родилась 7 марта 1985 г.", "родилась [date] г."),
        ("7 МАРТ 1985 года", "[date] года"),
        ("7 марте 1985", "[date]"),
        ("7 ма\u0438\u0306 1985", "[date]"),  # й as и and a combining breve
        ("7 三月 1985", "[date]"),
        ("March 7th, 1985", "[date]"),
        ("march7, 1985", "[date]"),
        ("7 Mar.1985", "[date]"),
        ("7 . 3 . 1985", "[date]"),
        ("03/07/1985 and 07.03.85", "[date] and [date]"),
        # phones in the forms normalize_phone reads, and other long numbers
        ("8 (912) 345-67-89", "*********89"),
        ("(415) 555-0132!", "(********32!"),
        ("＋８６ １３８ ００１３ ８０００", "+***********00"),
        ("0421/123456", "********56"),
        ("+7 912 345\u201167\u201189", "+*********89"),
        ("008613800138000", "*************00"),
        ("card 4276 1234 5678 9012", "card **************12"),
        # a run of digits that holds a date and more is one number, not a date and a leak
        ("8 (912) 34-56-789", "*********89"),
        ("+33-6-10 00-00-00", "+*********00"),
        ("from 01.02.2024 - 05.02.2024", "from [date] - [date]"),
        ("phone +8613800138000 born 1985-03-07", "phone +***********00 born [date]"),
    ],
)
def test_masks_dates_and_long_numbers(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "",
        "what is my balance?",
        "I can pay 1,500 a month",
        "12 months for 500 a month",
        "order 123456 is six digits",
        "你好，我想还款。……",
        "Ёлки-палки… straße ǅ ﬁne 😀🎉",
        "call me in March",
    ],
)
def test_leaves_other_text_as_it_is(text: str) -> None:
    assert mask_text(text) == text


def test_what_surrounds_a_mask_is_kept_exactly() -> None:
    assert mask_text("Ёлки… ⑩, 1985-03-07 …ß ＋８６ １３８ ００１３ ８０００。") == "Ёлки… ⑩, [date] …ß +***********00。"


# --- Every date parse_birth_date accepts is masked wherever it stands ------------------------------

NAMES, STEMS = month_words()
ABBREVIATIONS = sorted({name[:length] for name in NAMES for length in range(MIN_ABBREVIATION, len(name))})
SPACES = st.sampled_from(["", " ", "  "])
FULL_WIDTH = {code: code + 0xFEE0 for code in range(0x21, 0x7F)} | {0x20: 0x3000}


@st.composite
def month_names(draw: st.DrawFn) -> str:
    word = draw(
        st.one_of(
            st.sampled_from(sorted(NAMES)),
            st.sampled_from(ABBREVIATIONS).map(lambda word: word + "."),
            st.tuples(st.sampled_from(sorted(STEMS)), st.sampled_from(["", "е", "ом", "у", "s"])).map("".join),
        )
    )
    return draw(st.sampled_from([word, word.upper(), word.title()]))


@st.composite
def typed_dates(draw: st.DrawFn) -> str:
    """A birth date as a person types it, in any form parse_birth_date reads (others are thrown away)."""
    born = draw(st.dates(date(1900, 1, 1), date(2011, 5, 31)))
    year = str(born.year)
    month, day = (draw(st.sampled_from([str(n), f"{n:02d}"])) for n in (born.month, born.day))
    space = lambda: draw(SPACES)  # noqa: E731
    between = draw(st.sampled_from([" ", ", ", ",", "-", ".", "/", " - ", "  "]))
    after_day = draw(st.sampled_from([" ", "-", ".", "/", " . ", "  "]))
    ordinal = draw(st.sampled_from(["", "", "st", "nd", "rd", "th"]))
    word = draw(month_names())
    forms = {
        "year first": f"{year}{space()}{draw(st.sampled_from('-./'))}{space()}{month}{space()}{draw(st.sampled_from('-./'))}{space()}{day}",
        "chinese": f"{year}{space()}年{space()}{month}{space()}月{space()}{day}{space()}{draw(st.sampled_from(['', '日', '号']))}",
        "year last": (lambda sep: f"{day}{space()}{sep}{space()}{month}{space()}{sep}{space()}{year}")(draw(st.sampled_from("-./"))),
        "day month year": f"{day}{ordinal}{after_day}{draw(st.sampled_from(['', 'of ']))}{word}{between}{year}",
        "month day year": f"{word}{space()}{day}{ordinal}{draw(st.sampled_from([' ', ', ', ',', ' ,  ']))}{year}",
        "year month day": f"{year}{between}{word}{between}{day}",
    }
    text = forms[draw(st.sampled_from(sorted(forms)))]
    if text.endswith(year):
        text += draw(st.sampled_from(["", "", " г.", "г", " года"]))
    if draw(st.booleans()):
        text = text.translate(FULL_WIDTH)
    try:
        parse_birth_date(text, draw(st.sampled_from(["en", "ru", "zh_CN"])), TODAY)
    except InvalidDate:
        assume(False)
    return text


def without_digits(text: str) -> bool:
    return not digits(text)


# Text around a date or a phone: anything but digits (of any script or width), ending or starting
# with a character that cannot belong to a word or a number.
prose = st.text(st.characters(blacklist_categories=("Nd", "No", "Nl", "Cs", "Co", "Cn")), max_size=25).filter(without_digits)
before = st.tuples(prose, st.sampled_from([" ", "\n", ": ", "(", "，"])).map("".join)
after = st.tuples(st.sampled_from([" ", ".", "\n", ", ", ")", "。"]), prose).map("".join)


@PROPERTIES
@given(before, typed_dates(), after)
@example("I was born on ", "2nd of February 1961", ".")
@example("", "１９６１－０２－０２", "")
@example("生日", "1961年2月2日", "")
def test_every_birth_date_the_bot_reads_is_masked_in_free_text(head: str, typed: str, tail: str) -> None:
    masked = mask_text(head + typed + tail)
    assert "[date]" in masked
    assert not digits(masked), f"{typed!r} leaked into {masked!r}"


# --- Every phone normalize_phone accepts is masked wherever it stands --------------------------------

REGIONS = ("RU", "CN", "US", "GB", "DE", "FR", "IN", "BR", "KZ", "JP", "AE", "NG", "AU", "IT", "ES")
SEPARATORS = [" ", "-", ".", "/", "\u2010", "\u2013", "  ", " - "]


@st.composite
def typed_phones(draw: st.DrawFn) -> tuple[str, str]:
    """(phone as typed, its digits) for a number normalize_phone accepts, formatted the ways people do."""
    region = draw(st.sampled_from(REGIONS))
    kind = draw(st.sampled_from([PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE]))
    example_number = phonenumbers.example_number_for_type(region, kind)
    national = str(example_number.national_number)
    keep = draw(st.integers(2, len(national)))
    national = national[:keep] + draw(st.text("0123456789", min_size=len(national) - keep, max_size=len(national) - keep))
    number = phonenumbers.parse(national, region)
    style = draw(st.sampled_from([PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.NATIONAL]))
    typed = phonenumbers.format_number(number, style)
    typed = re.sub(" ", lambda _: draw(st.sampled_from(SEPARATORS)), typed)
    if style == PhoneNumberFormat.E164 and draw(st.booleans()):
        typed = "00" + typed[1:]
    if draw(st.booleans()):
        typed = typed.translate(FULL_WIDTH)
    try:
        normalize_phone(typed, region if style == PhoneNumberFormat.NATIONAL else None)
    except InvalidPhone:
        assume(False)
    return typed, digits(typed)


@PROPERTIES
@given(before, typed_phones(), after)
@example("call ", ("+7 (912) 345-67-89", "79123456789"), " please")
@example("", ("８ ９１２ ３４５-６７-８９", "89123456789"), "")
def test_every_phone_the_bot_reads_is_masked_in_free_text(head: str, phone: tuple[str, str], tail: str) -> None:
    typed, phone_digits = phone
    masked = mask_text(head + typed + tail)
    shown = digits(masked)
    assert len(shown) <= 2 and phone_digits.endswith(shown), f"{typed!r} leaked into {masked!r}"


# --- Nothing long survives, and the rest is untouched ----------------------------------------------

RUN = re.compile(rf"\d(?:[{FORMATTING}]*\d){{{MIN_DIGITS - 1}}}")
PIECES = [*"0123456789０１ -./()+年月日号,:a…⑩\u0306\n", "march ", "of ", "марта ", "三月", "1985"]
messy = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


@PROPERTIES
@given(messy)
def test_no_run_of_seven_digits_survives(text: str) -> None:
    masked = unicodedata.normalize("NFKC", mask_text(text))
    assert RUN.search(masked) is None, masked


@PROPERTIES
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=60).filter(without_digits))
def test_text_without_digits_is_left_exactly_as_it_is(text: str) -> None:
    assert mask_text(text) == text


# --- The logs --------------------------------------------------------------------------------------


def logged(emit) -> str:
    output = io.StringIO()
    logger = logging.getLogger("tests.masking")
    logger.propagate = False
    handler = masked_handler(output)
    logger.addHandler(handler)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return output.getvalue()


def test_log_messages_and_their_arguments_are_masked() -> None:
    text = logged(lambda logger: logger.warning("verifying %s born %s", "+8613800138000", "7 марта 1985"))
    assert "verifying +***********00 born [date]" in text
    assert "13800138000" not in text and "1985" not in text


def test_tracebacks_are_masked() -> None:
    def emit(logger: logging.Logger) -> None:
        try:
            raise ValueError("no account for +8613800138000 born 1985-03-07")
        except ValueError:
            logger.exception("lookup failed")

    text = logged(emit)
    assert "Traceback" in text and "ValueError: no account for +***********00 born [date]" in text
    assert "13800138000" not in text and "1985-03-07" not in text


def test_stacks_are_masked() -> None:
    text = logged(lambda logger: logger.warning("calling %s", "+8613800138000", stack_info=True))
    stack = text.split("Stack (most recent call last)")[1]
    assert '"+***********00"' in stack, "the source line of the call shows in the stack, masked"
    assert "13800138000" not in text


def test_a_mark_after_a_number_still_parts_it_from_the_next_digits() -> None:
    masked = unicodedata.normalize("NFKC", mask_text("0000000\u0306000\u2469"))
    assert RUN.search(masked) is None, masked
