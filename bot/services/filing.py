"""Which account the records being written belong to: the audit trail and the outbox file them under it."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

current_account: contextvars.ContextVar[int | None] = contextvars.ContextVar("current_account", default=None)
"""The account of the update being handled, so outbound messages are filed under it."""


@contextmanager
def filed_under(account_pk: int | None) -> Iterator[None]:
    """What is sent inside is filed under `account_pk` (when given): an agent's update or the
    courier has no account of its own, and a record filed under none outlives the account's
    retention (`bot.services.retention`)."""
    token = current_account.set(account_pk if account_pk is not None else current_account.get())
    try:
        yield
    finally:
        current_account.reset(token)
