"""A verified chat that sat idle too long is signed out and asked to prove who it is again."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, Filter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, TelegramObject
from aiogram.utils.i18n import gettext as _

from bot.context import UpdateContext
from handlers.prompts import ask_for_phone



class SessionExpired(Filter):
    """The chat was verified but idle for too long: it must prove who it is again."""

    async def __call__(self, event: TelegramObject, ctx: UpdateContext) -> bool:
        return ctx.chat is not None and ctx.chat.expired


async def session_expired(message: Message, state: FSMContext, session_idle_minutes: int) -> None:
    await state.clear()
    lead = _("For your security, you were signed out after {minutes} minutes without activity.").format(
        minutes=session_idle_minutes
    )
    await ask_for_phone(message, state, lead)


async def session_expired_button(query: CallbackQuery, state: FSMContext, session_idle_minutes: int) -> None:
    if isinstance(query.message, Message):
        await session_expired(query.message, state, session_idle_minutes)


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(session_expired, SessionExpired(), ~Command("stop"))  # an opt-out needs no sign-in
    router.callback_query.register(session_expired_button, SessionExpired())
    return router
