"""The last router: whatever nobody else handled gets a helpful answer, never silence."""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from bot.context import UpdateContext
from handlers.prompts import show_current_step


LONGEST_TEXT_READ = 1000


async def edited(message: Message) -> None:
    await message.answer(_("I only act on new messages. If you changed something, please send it again."))


async def unknown_command(message: Message, state: FSMContext, ctx: UpdateContext) -> None:
    command = (message.text or "").split()[0][:64]
    await show_current_step(
        message, state, ctx.account, _("I don't know the command {command}. See /help.").format(command=escape(command))
    )


async def too_long(message: Message, state: FSMContext, ctx: UpdateContext) -> None:
    await show_current_step(
        message,
        state,
        ctx.account,
        _("That message is too long for me. Please keep it under {limit} characters.").format(limit=LONGEST_TEXT_READ),
    )


async def not_understood(message: Message, state: FSMContext, ctx: UpdateContext) -> None:
    await show_current_step(message, state, ctx.account, _("Sorry, I didn't understand that."))


async def not_text(message: Message, state: FSMContext, ctx: UpdateContext) -> None:
    await show_current_step(
        message, state, ctx.account, _("I can only read text messages and the buttons in this chat.")
    )


async def stale_button(query: CallbackQuery, state: FSMContext, ctx: UpdateContext, callback_answer: CallbackAnswer) -> None:
    """An old button, or data no button of the bot carries: said so, and the way forward shown."""
    callback_answer.text = _("This button is no longer active.")
    if isinstance(query.message, Message):
        await show_current_step(query.message, state, ctx.account)


def create_router() -> Router:
    router = Router(name=__name__)
    router.edited_message.register(edited)
    router.message.register(unknown_command, F.text.startswith("/"))
    router.message.register(too_long, F.text.len() > LONGEST_TEXT_READ)
    router.message.register(not_understood, F.text)
    router.message.register(not_text)
    router.callback_query.register(stale_button)
    return router
