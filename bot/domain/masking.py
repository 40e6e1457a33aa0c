"""Masking of personal data for logs and the audit trail: phone numbers, dates and long numbers."""

from __future__ import annotations

import re

_DATE = re.compile(
    r"\d{4}\s*[-./年]\s*\d{1,2}\s*[-./月]\s*\d{1,2}\s*日?"
    r"|\d{1,2}\s*[-./]\s*\d{1,2}\s*[-./]\s*\d{2,4}"
    r"|\d{1,2}\s+[^\W\d_]{3,}\.?\s+\d{4}"
    r"|[^\W\d_]{3,}\.?\s+\d{1,2},?\s+\d{4}"
)
_LONG_NUMBER = re.compile(r"\+?\d[\d\s().-]{5,}\d")


def mask_text(text: str) -> str:
    """Hide dates (birth dates) and runs of seven or more digits (phones, ids), keeping the last two."""
    text = _DATE.sub("[date]", text)

    def _number(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        if len(digits) < 7:
            return match.group()
        sign = "+" if match.group().startswith("+") else ""
        return sign + "*" * (len(digits) - 2) + digits[-2:]

    return _LONG_NUMBER.sub(_number, text)
