"""Logging that never holds full phone numbers, birth dates or names."""

from __future__ import annotations

import functools
import logging
from typing import Any, TextIO

from bot.domain.masking import mask_text


_TRACEBACKS = logging.Formatter()
DRIVER_LOGGERS = frozenset({"aiosqlite"})
"""Loggers whose DEBUG lines show each call to the database with its parameters: the rows the bot
reads and writes, the bank's accounts among them. Their records keep the statement, not the values."""


class MaskingFilter(logging.Filter):
    """Masks phones and dates in every record; names are never logged in the first place.

    The traceback and the stack are masked too: a formatter appends them after the message, from
    ``exc_text`` when it is set, so the filter formats the exception there first.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name in DRIVER_LOGGERS and isinstance(record.args, tuple):
            record.args = tuple(map(_without_parameters, record.args))
        record.msg = mask_text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


def _without_parameters(value: Any) -> Any:
    """A call queued for the database's thread, shown as its function and the SQL it runs."""
    if not isinstance(value, functools.partial):
        return value
    name = getattr(value.func, "__qualname__", type(value.func).__name__)
    statements = [argument for argument in value.args if isinstance(argument, str)]
    return f"{name}({', '.join(map(repr, statements))})"


def masked_handler(stream: TextIO | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    return handler


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, handlers=[masked_handler()], force=True)
