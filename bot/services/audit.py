"""The audit trail: every inbound and outbound message, masked, with the account once known."""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import Update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.models import AuditEvent
from bot.domain.masking import mask_text
from bot.domain.errors import InvalidPhone
from bot.domain.phones import mask_phone, normalize_phone

current_account: contextvars.ContextVar[int | None] = contextvars.ContextVar("current_account", default=None)
"""The account of the update being handled, so outbound messages are filed under it."""

PAYLOAD_LIMIT = 4096


class AuditTrail:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.session_factory = session_factory
        self.clock = clock

    async def record(self, direction: str, kind: str, chat_id: int | None, payload: str = "") -> None:
        async with self.session_factory() as session, session.begin():
            session.add(
                AuditEvent(
                    at=self.clock.now(),
                    direction=direction,
                    kind=kind,
                    chat_id=chat_id,
                    account_pk=current_account.get(),
                    payload=mask_text(payload)[:PAYLOAD_LIMIT],
                )
            )

    async def inbound(self, update: Update, chat_id: int | None) -> None:
        kind, payload = describe_update(update)
        await self.record("in", kind, chat_id, payload)


def describe_update(update: Update) -> tuple[str, str]:
    """What came in, with personal data masked: phones by `mask_phone`, the rest by `mask_text`."""
    if update.callback_query is not None:
        return "callback", update.callback_query.data or ""
    message = update.message or update.edited_message
    if message is None:
        return update.event_type, ""
    prefix = "edited_" if update.edited_message is not None else ""
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


class OutboundAuditMiddleware(BaseRequestMiddleware):
    """Records each message the bot sends or changes once Telegram has accepted it."""

    AUDITED = {
        "sendMessage", "editMessageText", "deleteMessage", "copyMessage", "forwardMessage",
        "sendPhoto", "sendDocument", "editMessageReplyMarkup",
    }

    def __init__(self, audit: AuditTrail) -> None:
        self.audit = audit

    async def __call__(
        self,
        make_request: Callable[[Bot, TelegramMethod[TelegramType]], Awaitable[Any]],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        response = await make_request(bot, method)
        name = method.__api_method__
        if name in self.AUDITED:
            chat_id = getattr(method, "chat_id", None)
            text = getattr(method, "text", None) or getattr(method, "caption", None) or ""
            await self.audit.record("out", name, chat_id if isinstance(chat_id, int) else None, text)
        return response
