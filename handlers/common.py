"""Commands that work in every state: /help, /language, /cancel."""

from __future__ import annotations

from datetime import datetime, time
from html import escape
from zoneinfo import ZoneInfo

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from babel.dates import format_time

from bot.db.models import Account
from bot.domain.policy import Policy
from bot.formatting import zone_name
from bot.i18n import LANGUAGE_NAMES
from bot.context import UpdateContext
from handlers.keyboards import CONTACT_BANK, SIGN_OUT, LanguageChoice, language_keyboard
from handlers.prompts import ask_for_phone, edit_once, reader_locale, show_current_step



async def help_command(message: Message, state: FSMContext, ctx: UpdateContext) -> None:
    text = _(
        "I help you settle an overdue card payment safely in this chat.\n\n"
        "First I confirm it's you with your phone number and date of birth. "
        "Then you can see what you owe and the ways to pay.\n\n"
        "/start – begin again\n/balance – what you owe\n/plans – ways to pay\n/myplan – your arrangement\n"
        "/faq – questions people often ask\n/agent – talk to a person\n"
        "/language – change the language\n/cancel – stop what we are doing\n/stop – no more messages from us\n"
        "/help – this message"
    )
    await show_current_step(message, state, ctx.account, text)


async def cancel_command(message: Message, state: FSMContext, ctx: UpdateContext) -> None:
    await state.clear()
    await show_current_step(message, state, ctx.account, _("Cancelled."))


async def stop_command(message: Message, ctx: UpdateContext) -> None:
    assert ctx.profile is not None
    await ctx.verification.opt_out(ctx.profile)
    await message.answer(
        _(
            "Done: we will not send you messages in this chat until you write here again. "
            "Whatever you write next, or /start, turns them back on."
        ),
        reply_markup=ReplyKeyboardRemove(),
    )


async def language_command(message: Message) -> None:
    await message.answer(_("Choose your language:"), reply_markup=language_keyboard())


async def language_chosen(
    query: CallbackQuery,
    callback_data: LanguageChoice,
    state: FSMContext,
    ctx: UpdateContext,
    i18n: I18n,
    callback_answer: CallbackAnswer,
) -> None:
    if not isinstance(query.message, Message):
        callback_answer.text = _("This button is no longer active.")
        return
    if callback_data.locale not in LANGUAGE_NAMES:
        callback_answer.text = _("This button is no longer active.")
        await show_current_step(query.message, state, ctx.account)
        return
    assert ctx.profile is not None
    await ctx.verification.set_locale(ctx.profile, callback_data.locale)
    with i18n.use_locale(callback_data.locale):
        chosen = _("Language: {name}").format(name=LANGUAGE_NAMES[callback_data.locale])
        if await edit_once(query.message, chosen):
            await show_current_step(query.message, state, ctx.account)


async def contact_bank(message: Message, policy: Policy, ctx: UpdateContext) -> None:
    await message.answer(bank_contact_text(policy, ctx.account))


async def sign_out(message: Message, state: FSMContext, ctx: UpdateContext) -> None:
    assert ctx.profile is not None
    await ctx.verification.sign_out(ctx.profile)
    await state.clear()
    await ask_for_phone(message, state, _("You are signed out."))


def bank_contact_text(policy: Policy, account: Account | None = None) -> str:
    """The bank's phone, hours and website; the hours in the cardholder's own time zone once the
    account (and so the zone) is known, else in the desk's."""
    bank = policy.bank
    zone = account.timezone if account is not None else bank.timezone
    today = datetime.now(ZoneInfo(bank.timezone)).date()

    def local(moment: time) -> str:
        opened = datetime.combine(today, moment, ZoneInfo(bank.timezone)).astimezone(ZoneInfo(zone))
        return format_time(opened, "short", locale=reader_locale())

    return _(
        "You can talk to a person at {bank}: call {phone} between {start} and {end} ({zone}), "
        "or visit {website}. The bank will never ask you for your card PIN or a one-time code."
    ).format(
        bank=escape(bank.name),
        phone=escape(bank.phone),
        start=local(bank.hours_start),
        end=local(bank.hours_end),
        zone=zone_name(zone, reader_locale()),
        website=escape(bank.website),
    )


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(help_command, Command("help"))
    router.message.register(cancel_command, Command("cancel"))
    router.message.register(stop_command, Command("stop"))
    router.message.register(language_command, Command("language"))
    router.callback_query.register(language_chosen, LanguageChoice.filter())
    router.message.register(contact_bank, F.text == CONTACT_BANK)
    router.message.register(sign_out, F.text == SIGN_OUT)
    return router
