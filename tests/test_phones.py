"""Phone numbers as people and Telegram give them, normalised to E.164, and masked for logs."""

from __future__ import annotations

import pytest

from bot.domain.errors import InvalidPhone
from bot.domain.phones import mask_phone, normalize_phone


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+86 138 0013 8000", None, "+8613800138000"),
        ("008613800138000", None, "+8613800138000"),
        ("+7 (912) 345-67-89", None, "+79123456789"),
        ("8613800138000", None, "+8613800138000"),  # Telegram contact: digits, no "+"
        ("79123456789", None, "+79123456789"),
        ("+1 (415) 555-0132", None, "+14155550132"),
        ("14155550132", None, "+14155550132"),
        ("＋８６ １３８ ００１３ ８０００", None, "+8613800138000"),  # full-width
        ("  +44 20 7946 0958 ", None, "+442079460958"),
        ("8 912 345-67-89", "RU", "+79123456789"),  # national, with a region
        ("138 0013 8000", "CN", "+8613800138000"),
        ("(415) 555-0132", "us", "+14155550132"),
        ("8613800138000", "RU", "+8613800138000"),  # international digits despite a region
    ],
)
def test_normalizes_to_e164(raw: str, region: str | None, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "no phone number"),
        ("   ", "no phone number"),
        ("call me", "letters"),
        ("+1 800 FLOWERS", "letters"),
        ("#123*456#7", "not a phone number"),
        ("++8613800138000", "not a phone number"),
        ("12345", "too short"),
        ("+86 138", "too short"),
        ("+999 123456789", "country code"),
        ("+1 415 555 01", "impossible"),
        ("+86 1380013800099", "impossible"),
        ("+7 000 000 00 00", "impossible"),
        ("1234567890123456789", "too long"),
    ],
)
def test_rejects_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidPhone, match=reason):
        normalize_phone(raw)


def test_national_number_without_region_is_read_as_international() -> None:
    # "8 912 ..." is a Russian national number; without a region "89..." is not a country code
    with pytest.raises(InvalidPhone):
        normalize_phone("8 912 345-67-89")


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        ("+8613800138000", "+86 *** **** 8000"),
        ("+14155550132", "+1 ***-***-0132"),
        ("+79123456789", "+7 *** ***-67-89"),
    ],
)
def test_mask_keeps_country_code_and_last_four(e164: str, masked: str) -> None:
    assert mask_phone(e164) == masked
    assert e164[1:-4] not in mask_phone(e164).replace(" ", "").replace("-", "")


def test_mask_never_raises_nor_leaks() -> None:
    assert mask_phone("garbage") == "***"
    assert mask_phone("") == "***"
    assert mask_phone("99912345678") == "*******5678"
