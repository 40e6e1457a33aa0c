"""Phone numbers: one canonical form (E.164) for everything we store and compare, and a mask for logs.

Telegram's shared contact carries ``phone_number`` as bare digits without the ``+`` most of the
time, so digits with no region are read as an international number (country code first).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

from bot.domain.errors import InvalidPhone

FORMATTING = r"\s\-().\u2010-\u2015/"
"""Characters people put between digits, as a regular-expression class body; anything else
(letters, "#", "*") makes it not a phone. The masking of free text reads phones with it."""
_FORMATTING = re.compile(f"[{FORMATTING}]")
_SHAPE = re.compile(r"^\+?\d+$")
_E164_SHAPE = re.compile(r"^\+\d+$")
_LETTER = re.compile(r"[^\W\d_]")
MIN_DIGITS = 7
_MAX_DIGITS = 15  # E.164 limit, country code included

_POSSIBILITY_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.TOO_SHORT: "too short for its country",
    ValidationResult.TOO_LONG: "too long for its country",
    ValidationResult.INVALID_LENGTH: "wrong number of digits for its country",
}


def normalize_phone(raw: str, default_region: str | None = None) -> str:
    """Return ``raw`` in E.164 (``+8613800138000``) or raise `InvalidPhone` saying why not.

    Accepted: ``+`` or ``00`` international prefixes, spaces, dashes, dots and brackets, bare
    international digits (``8613800138000``) and, when ``default_region`` (ISO 3166 alpha-2,
    e.g. ``"RU"``) is given, national numbers of that region (``8 912 345-67-89``).
    """
    if raw is None:
        raise InvalidPhone("no phone number given")
    text = unicodedata.normalize("NFKC", str(raw)).strip()
    if not text:
        raise InvalidPhone("no phone number given")
    if _LETTER.search(text):
        raise InvalidPhone("not a phone number: it contains letters")
    compact = text if _E164_SHAPE.match(text) else _FORMATTING.sub("", text)
    if not _SHAPE.match(compact):
        raise InvalidPhone("not a phone number: only digits, spaces, dashes, brackets and a leading + are allowed")
    digits = compact.lstrip("+")
    if compact.startswith("+"):
        international = True
    elif digits.startswith("00"):
        digits = digits[2:]
        international = True
    else:
        international = False
    if len(digits) < MIN_DIGITS:
        raise InvalidPhone(f"too short to be a phone number ({len(digits)} digits)")
    if len(digits) > _MAX_DIGITS + (0 if international else 2):
        raise InvalidPhone(f"too long to be a phone number ({len(digits)} digits)")

    if international or not default_region:
        return _checked("+" + digits, None)
    # A national number of the given region first; failing that, bare international digits.
    try:
        return _checked(digits, default_region.upper())
    except InvalidPhone as national_problem:
        try:
            return _checked("+" + digits, None)
        except InvalidPhone:
            raise national_problem from None


def _checked(text: str, region: str | None) -> str:
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as error:
        if error.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            raise InvalidPhone("not a phone number: unknown country code") from None
        raise InvalidPhone("not a phone number") from None
    if phonenumbers.is_valid_number(number):
        return phonenumbers.format_number(number, PhoneNumberFormat.E164)
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason in _POSSIBILITY_REASONS:
        raise InvalidPhone(f"impossible phone number: {_POSSIBILITY_REASONS[reason]}")
    where = phonenumbers.region_code_for_country_code(number.country_code)
    suffix = f" for country code +{number.country_code}" + (f" ({where})" if where and where != "ZZ" else "")
    raise InvalidPhone(f"impossible phone number: no such number range{suffix}")


def mask_phone(e164: str) -> str:
    """``+8613800138000`` → ``+86 *** **** 8000``: the country code and the last four digits stay.

    Never raises: whatever is given, at most the last four digits are shown.
    """
    try:
        number = phonenumbers.parse(e164, None)
        formatted = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    except (NumberParseException, TypeError):
        digits = re.sub(r"\D", "", str(e164 or ""))
        if len(digits) < 8:
            return "***"
        return "*" * (len(digits) - 4) + digits[-4:]
    prefix = f"+{number.country_code}"
    rest = formatted[len(prefix):] if formatted.startswith(prefix) else formatted
    to_hide = sum(ch.isdigit() for ch in rest) - 4
    masked = []
    for ch in rest:
        if ch.isdigit() and to_hide > 0:
            masked.append("*")
            to_hide -= 1
        else:
            masked.append(ch)
    return prefix + "".join(masked)


def phone_digest(e164: str, key: bytes) -> str:
    """The keyed hash (HMAC-SHA256, hex) by which the bot refers to a phone it must not keep.

    Without the key a list of every possible number cannot be hashed to find which one it is.
    """
    return hmac.new(key, e164.encode(), hashlib.sha256).hexdigest()
