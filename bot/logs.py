"""Logging that never holds full phone numbers, birth dates or names."""

from __future__ import annotations

import logging

from bot.domain.masking import mask_text


class MaskingFilter(logging.Filter):
    """Masks phones and dates in every record; names are never logged in the first place."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        return True


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
