"""The bot's routers, in the order the dispatcher tries them."""

from __future__ import annotations

from aiogram import F, Router

from handlers import balance, common, desk, errors, fallback, faq, handoff, plans, session, verify


def get_routers(agent_chat_id: int | None) -> list[Router]:
    """Fresh routers, cardholder ones for private chats only, the catch-all last.

    Each module builds its router in `create_router()` rather than at import, so that several
    dispatchers (a restart, the tests) can be built in one process.
    """
    cardholder = Router(name="cardholder")
    cardholder.message.filter(F.chat.type == "private")
    cardholder.edited_message.filter(F.chat.type == "private")
    cardholder.callback_query.filter(F.message.chat.type == "private")
    cardholder.include_routers(
        session.create_router(),
        handoff.create_router(),
        common.create_router(),
        faq.create_router(),
        verify.create_router(),
        balance.create_router(),
        plans.create_router(),
        faq.create_questions_router(),
        fallback.create_router(),
    )
    return [errors.create_router(), desk.create_router(agent_chat_id), cardholder]
