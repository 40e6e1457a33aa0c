"""Logging that never holds full phone numbers, birth dates or names."""

from __future__ import annotations

import logging
from typing import TextIO

from bot.domain.masking import mask_text


_TRACEBACKS = logging.Formatter()


class MaskingFilter(logging.Filter):
    """Masks phones and dates in every record; names are never logged in the first place.

    The traceback and the stack are masked too: a formatter appends them after the message, from
    ``exc_text`` when it is set, so the filter formats the exception there first.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


def masked_handler(stream: TextIO | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    return handler


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, handlers=[masked_handler()], force=True)
