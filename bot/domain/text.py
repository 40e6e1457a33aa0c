"""What every typed value goes through before it is read."""

from __future__ import annotations

import re

_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
"""Soft hyphens, zero-width characters and direction marks: a copied or right-to-left text carries
them, and nobody sees them."""


def strip_invisible(text: str) -> str:
    return _INVISIBLE.sub("", text)
