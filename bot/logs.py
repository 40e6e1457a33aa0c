"""Logging that never holds full phone numbers, birth dates or names."""

from __future__ import annotations

import logging
from typing import TextIO

from bot.domain.masking import mask_text


class MaskingFilter(logging.Filter):
    """Masks phones and dates in every record; names are never logged in the first place."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        return True


def masked_handler(stream: TextIO | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    return handler


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, handlers=[masked_handler()], force=True)
