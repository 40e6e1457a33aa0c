"""The audit trail: every inbound and outbound message, masked, with the account once known."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.exceptions import TelegramAPIError
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import Update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.models import AuditEvent
from bot.db.unit_of_work import UnitOfWork, current_unit, unit_of_work
from bot.domain.errors import InvalidPhone
from bot.domain.masking import mask_text
from bot.domain.phones import mask_phone, normalize_phone
from bot.services.filing import current_account

log = logging.getLogger(__name__)

PAYLOAD_LIMIT = 4096


class AuditTrail:
    """Adds audit events to a unit of work, which writes them with its next commit."""

    def __init__(self, unit: UnitOfWork, clock: Clock) -> None:
        self.unit = unit
        self.clock = clock

    def record(
        self, direction: str, kind: str, chat_id: int | None, payload: str = "", update_id: int | None = None,
        account_pk: int | None = None,
    ) -> None:
        """`account_pk`: the account the event is about, when it is not the update's own (an agent's decision)."""
        self.unit.insert_later(
            AuditEvent,
            {
                "at": self.clock.now(),
                "direction": direction,
                "kind": kind,
                "chat_id": chat_id,
                "account_pk": account_pk if account_pk is not None else current_account.get(),
                "payload": mask_text(payload[: PAYLOAD_LIMIT * 2])[:PAYLOAD_LIMIT],
                "update_id": update_id,
            },
        )

    def inbound(self, update: Update, chat_id: int | None, step_holds: str | None = None) -> None:
        """Records the update; a second delivery of it fails at its first commit (`ux_audit_update`)."""
        kind, payload = describe_update(update, step_holds)
        self.record("in", kind, chat_id, payload, update.update_id)


def describe_update(update: Update, step_holds: str | None = None) -> tuple[str, str]:
    """What came in, with personal data masked: phones by `mask_phone`, the rest by `mask_text`.

    `step_holds` names what a message sent at the chat's current step is (``[birth date]``): then
    the message is recorded as that, whatever it says, and not read for patterns at all.
    """
    if update.callback_query is not None:
        return "callback", update.callback_query.data or ""
    message = update.message or update.edited_message
    if message is None:
        return update.event_type, ""
    prefix = "edited_" if update.edited_message is not None else ""
    if step_holds is not None and message.contact is None:
        return f"{prefix}{message.content_type}", step_holds
    if message.contact is not None:
        try:
            phone = mask_phone(normalize_phone(message.contact.phone_number))
        except InvalidPhone:
            phone = "[unreadable phone]"
        own = message.contact.user_id == (message.from_user.id if message.from_user else None)
        return f"{prefix}contact", f"{phone} own={own}"
    if message.text is not None:
        return f"{prefix}text", message.text
    return f"{prefix}{message.content_type}", message.caption or ""


class OutboundMiddleware(BaseRequestMiddleware):
    """Every call to Telegram passes here: nothing is said before it is recorded.

    Inside an update, the message is added to the update's audit trail and the update's unit of
    work is committed *before* the call, so a confirmation never goes out for something that is
    not durable, and no HTTP call is made while a write transaction is open. Outside an update
    (background work) the record is a short transaction of its own.
    """

    AUDITED = {
        "sendMessage", "editMessageText", "deleteMessage", "copyMessage", "forwardMessage",
        "sendPhoto", "sendDocument", "editMessageReplyMarkup",
    }

    def __init__(self, session_factory: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.session_factory = session_factory
        self.clock = clock

    async def __call__(
        self,
        make_request: Callable[[Bot, TelegramMethod[TelegramType]], Awaitable[Any]],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        name = method.__api_method__
        unit = current_unit.get()
        if unit is None:
            response = await make_request(bot, method)
            if name in self.AUDITED:
                async with unit_of_work(self.session_factory) as own:
                    self._record(AuditTrail(own, self.clock), name, method)
            return response
        if name in self.AUDITED:
            self._record(AuditTrail(unit, self.clock), name, method)
        await unit.commit()
        try:
            return await make_request(bot, method)
        except TelegramAPIError as error:
            if name in self.AUDITED:
                self._record(AuditTrail(unit, self.clock), f"{name}_failed", method, error.message)
            raise

    @staticmethod
    def _record(audit: AuditTrail, name: str, method: TelegramMethod[Any], text: str | None = None) -> None:
        chat_id = getattr(method, "chat_id", None)
        if text is None:
            text = getattr(method, "text", None) or getattr(method, "caption", None) or ""
        audit.record("out", name, chat_id if isinstance(chat_id, int) else None, text)
