"""The quick E.164 check says yes only where `normalize_phone` returns the text unchanged."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneNumberFormat, PhoneNumberType

from bot.domain import e164
from bot.domain.e164 import is_normalized_e164
from bot.domain.errors import InvalidPhone
from bot.domain.phones import normalize_phone

TYPES = [value for name, value in vars(PhoneNumberType).items() if name.isupper() and name != "UNKNOWN"]


def reference(text: str) -> str | None:
    try:
        return normalize_phone(text)
    except InvalidPhone:
        return None


def example_numbers() -> list[str]:
    """An example of every number type of every region, and of every non-geographic code."""
    found = []
    for code, regions in COUNTRY_CODE_TO_REGION_CODE.items():
        for region in regions:
            if region == "001":
                examples = [phonenumbers.example_number_for_non_geo_entity(code)]
            else:
                examples = [phonenumbers.example_number_for_type(region, kind) for kind in TYPES]
            found += [phonenumbers.format_number(n, PhoneNumberFormat.E164) for n in examples if n is not None]
    return sorted(set(found))


def numbers_around(examples: list[str], seed: int) -> list[str]:
    """Digits changed one at a time, tails replaced behind a shared start, and random digits."""
    rng = random.Random(seed)
    numbers = set()
    for number in examples:
        code = len(str(phonenumbers.parse(number).country_code))
        digits = list(number[1:])
        digits[rng.randrange(code, len(digits))] = rng.choice("0123456789")
        numbers.add("+" + "".join(digits))
        for keep in rng.sample(range(code + 1, len(number)), min(3, len(number) - code - 1)):
            tail = "".join(rng.choice("0123456789") for _ in range(len(number) - keep))
            numbers.add(number[:keep] + tail)
    for code in COUNTRY_CODE_TO_REGION_CODE:
        for length in range(max(7, len(str(code)) + 1), 16):
            rest = length - len(str(code))
            numbers.add(f"+{code}" + "".join(rng.choice("0123456789") for _ in range(rest)))
    return sorted(numbers)


EXAMPLES = example_numbers()


def test_yes_only_when_normalize_phone_keeps_the_text() -> None:
    numbers = EXAMPLES + numbers_around(EXAMPLES, seed=7)
    random.Random(7).shuffle(numbers)  # the remembered answers are reached in any order
    quick = {number: is_normalized_e164(number) for number in numbers}
    kept = {number for number in numbers if reference(number) == number}
    assert [number for number in numbers if quick[number] and number not in kept] == []
    assert len(kept) > 2000
    # the quick answer is no only where phonenumbers would look at a national prefix or a leading 0
    missed = [number for number in kept if not quick[number]]
    assert len(missed) < 0.05 * len(kept), missed[:20]


def test_remembered_answers_hold_for_every_digit_changed() -> None:
    """Numbers that differ in one digit: an answer remembered by too few digits would show."""
    regions = ("CN", "RU", "US", "GB", "DE", "JP", "IN", "BR", "FR", "KZ", "CA", "IT")
    examples = [
        phonenumbers.format_number(number, PhoneNumberFormat.E164)
        for region in regions
        for kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE)
        if (number := phonenumbers.example_number_for_type(region, kind)) is not None
    ]
    numbers = sorted({number[:i] + digit + number[i + 1:] for number in examples for i in range(2, len(number)) for digit in "0123456789"})
    random.Random(3).shuffle(numbers)
    assert [number for number in numbers if is_normalized_e164(number) and reference(number) != number] == []


def test_the_digits_remembered_by_decide_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the digits an answer is remembered by, no digit changes the answer the patterns give."""
    rng = random.Random(5)
    codes = sorted(COUNTRY_CODE_TO_REGION_CODE)
    decisive = {}
    for code in [1, 7, 44, 49, 55, 61, 81, 86, 91, 375, *rng.sample(codes, 30)]:
        country = e164._Country(code)
        for length in range(max(8, len(str(code)) + 3), 17):
            digits, known = country.memo(length)
            if known is not None:
                decisive[code, length] = digits
    assert len(decisive) > 100
    monkeypatch.setattr(e164, "_MAX_DECISIVE_DIGITS", -1)  # countries built now remember nothing
    for code in {code for code, _ in decisive}:
        country = e164._Country(code)
        for (same_code, length), digits in decisive.items():
            if same_code != code:
                continue
            for _ in range(20):
                text = f"+{code}" + "".join(rng.choice("0123456789") for _ in range(length - 1 - len(str(code))))
                other = text[:digits] + "".join(rng.choice("0123456789") for _ in range(length - digits))
                assert country.valid(text) == country.valid(other), (text, other, digits)


def test_example_numbers_are_recognised() -> None:
    accepted = [number for number in EXAMPLES if is_normalized_e164(number)]
    assert len(accepted) > 0.9 * len(EXAMPLES)
    for number in ("+8613800138000", "+79123456789", "+14155550132", "+442079460958", "+819012345678"):
        assert is_normalized_e164(number), number


@pytest.mark.parametrize(
    "text",
    [
        "+86 138 0013 8000",  # formatted: normalize_phone's to read
        " +8613800138000",
        "8613800138000",
        "008613800138000",
        "+08613800138000",
        "+861380013800",  # one digit short
        "+70000000000",
        "+9991234567",  # no such country code
        "+1234567",
        "+1234567890123456",  # 16 digits
        "＋８６１３８００１３８０００",  # full width: NFKC first
        "+٨٦١٣٨٠٠١٣٨٠٠٠",  # Arabic-Indic digits
        "+390212345678",  # valid, but Italy's leading 0 is phonenumbers' business
        "",
    ],
)
def test_other_forms_are_left_to_normalize_phone(text: str) -> None:
    assert not is_normalized_e164(text)


def test_a_national_prefix_is_looked_at_as_phonenumbers_does() -> None:
    # Belarus: "+375 8 10..." starts like the national prefix 8; stripped, no valid number is left
    for number in ("+3758106625764", "+3758104311422", "+3758108653753"):
        assert reference(number) is None
        assert not is_normalized_e164(number)
    # St Petersburg: "8" starts the area code 812 and stays
    assert reference("+78123456789") == "+78123456789"
    assert is_normalized_e164("+78123456789")


def test_the_digits_that_decide_are_read_from_the_patterns() -> None:
    # "1[3-9]\d{9}": after two digits any digit is accepted
    assert e164._decisive_digits(r"1[3-9]\d{9}", 11) == 2
    assert e164._decisive_digits(r"(?:1[3-9]|2[0-4])\d{9}|3\d\d5\d{7}", 11) == 4
    assert e164._decisive_digits(r"\d{5}", 11) == 0  # no match of that length
    assert e164._decisive_digits(r"(?:\d{2}){1,3}", 4) == 0
    assert e164._decisive_digits(r"[2-9]\d{2}[2-9]\d{6}", 10) == 4
    assert e164._decisive_digits(r"\d{3}(?=5)\d", 4) is None  # not understood: no remembering
    assert e164._longest_match(r"8|7(?:00)?") == 3
    assert e164._longest_match(r"0\d*") is None
    assert e164._first_digits(r"(?:0|8(?:10)?)") == {"0", "8"}
    assert e164._first_digits(r"0?1") is None


def test_remembered_answers_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    number = "+4915987654321"
    assert is_normalized_e164("+4915123456789") is (reference("+4915123456789") == "+4915123456789")
    monkeypatch.setattr(e164, "_remembered", [e164._MEMO_LIMIT])
    assert is_normalized_e164(number) is (reference(number) == number)
    digits, known = e164._COUNTRY_CODES["491"].memos[len(number)]
    assert known is not None and "+4915123456789"[:digits] in known and number[:digits] not in known
