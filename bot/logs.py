"""Logging that never holds full phone numbers, birth dates or names."""

from __future__ import annotations

import contextvars
import functools
import json
import logging
from datetime import datetime, timezone
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


CURRENT_UPDATE: contextvars.ContextVar[tuple[int, int | None] | None] = contextvars.ContextVar("current_update", default=None)
"""The update being handled (its id and its chat's id), set by bot/middlewares.py UpdateLogContext."""


class JsonFormatter(logging.Formatter):
    """One JSON object a line; runs after MaskingFilter, so message and exception are masked already."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        update = CURRENT_UPDATE.get()
        if update is not None:
            line["update_id"], line["chat_id"] = update
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_text(self.formatException(record.exc_info))
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False)


def masked_handler(stream: TextIO | None = None, log_format: str = "text") -> logging.Handler:
    handler = logging.StreamHandler(stream)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    return handler


def setup_logging(level: str, log_format: str = "text") -> None:
    logging.basicConfig(level=level, handlers=[masked_handler(log_format=log_format)], force=True)
