"""The bot's routers, in the order the dispatcher tries them."""

from __future__ import annotations

from aiogram import F, Router

from handlers import common, errors, fallback, session, verify


def get_routers() -> list[Router]:
    """Cardholder routers serve private chats only; the catch-all comes last."""
    cardholder = Router(name="cardholder")
    cardholder.message.filter(F.chat.type == "private")
    cardholder.edited_message.filter(F.chat.type == "private")
    cardholder.callback_query.filter(F.message.chat.type == "private")
    cardholder.include_routers(session.router, common.router, verify.router, fallback.router)
    return [errors.router, cardholder]
