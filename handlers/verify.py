"""Verification: /start, the cardholder's own contact, then the birth date."""

from __future__ import annotations

from html import escape

import logging
import re
from datetime import datetime

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from bot.clock import Clock
from bot.db.models import Account
from bot.domain.errors import InvalidDate, InvalidPhone
from bot.domain.dates import parse_birth_date
from bot.domain.phones import normalize_phone
from bot.domain.policy import Policy
from bot.formatting import in_about, when, zone_name
from bot.desk import Desk
from bot.context import UpdateContext
from bot.services.verification import Outcome, PhoneClaim
from handlers.handoff import hand_off
from handlers.keyboards import person_keyboard
from handlers.prompts import ask_for_birth_date, ask_for_phone, birth_date_example, reader_locale, show_main_menu
from handlers.states import Verification

log = logging.getLogger(__name__)


async def start(message: Message, state: FSMContext, policy: Policy, ctx: UpdateContext) -> None:
    await state.clear()
    assert ctx.profile is not None
    await ctx.verification.opt_in(ctx.profile)
    greeting = _("Hello! I am the payment assistant of {bank}.").format(bank=escape(policy.bank.name))
    if ctx.account is not None:
        await show_main_menu(message, ctx.account, greeting)
        return
    await ask_for_phone(message, state, greeting)


async def phone_shared(message: Message, state: FSMContext, ctx: UpdateContext, clock: Clock, policy: Policy) -> None:
    contact = message.contact
    assert contact is not None and message.from_user is not None
    if contact.user_id != message.from_user.id:
        await message.answer(
            _(
                "For your security I can only accept the phone number of your own Telegram account, "
                "not a contact from your address book. Please tap «{button}» below."
            ).format(button=_("📱 Share my phone number"))
        )
        return
    try:
        phone = normalize_phone(contact.phone_number)
    except InvalidPhone:
        await message.answer(_("I could not read that phone number. Please contact the bank by phone instead."))
        return
    shared = await ctx.verification.claim_phone(phone)
    if shared.locked_until is not None:
        await tell_locked(message, shared.locked_until, clock, policy)
        return
    await state.set_data(shared.claim.as_data())
    await state.set_state(Verification.typing_birth_date)
    await ask_for_birth_date(message, _("Thank you."))


TYPED_PHONE = re.compile(r"\+?[\d\s().\-]{7,30}")
"""Text that is a phone number typed by hand rather than shared with the button."""


async def phone_not_shared(message: Message, state: FSMContext) -> None:
    """Anything but the phone button while it is asked for: say what is needed, in answer to what came."""
    text = (message.text or "").strip()
    if TYPED_PHONE.fullmatch(text) and sum(char.isdigit() for char in text) >= 7:
        request = _("I can't accept a typed phone number: the button proves the number is yours. Please tap «{button}» below.")
    elif text.startswith("/"):
        request = _(
            "I can show your account once I have confirmed it's you. "
            "Please tap «{button}» below: it sends the phone number of this Telegram account."
        )
    elif message.text is None:
        request = _(
            "I can't use pictures, stickers or files to confirm it's you. "
            "Please tap «{button}» below: it sends the phone number of this Telegram account."
        )
    else:
        request = _(
            "I can help with your card account once I have confirmed it's you. "
            "Please tap «{button}» below: it sends the phone number of this Telegram account."
        )
    await ask_for_phone(message, state, request=request)


async def birth_date_typed(
    message: Message,
    state: FSMContext,
    bot: Bot,
    ctx: UpdateContext,
    clock: Clock,
    policy: Policy,
    desk: Desk | None,
) -> None:
    assert message.text is not None
    await forget_message(bot, message)
    locale = reader_locale()
    try:
        birth_date = parse_birth_date(message.text, locale, today=clock.now().date())
    except InvalidDate:
        await message.answer(
            _("I couldn't read that as a date of birth. Please type it like {example}.").format(
                example=birth_date_example()
            )
        )
        return
    claim = PhoneClaim.from_data(await state.get_data())
    if claim is None:
        await state.set_data({})
        await ask_for_phone(message, state)
        return
    assert ctx.profile is not None
    result = await ctx.verification.verify(ctx.profile, claim, birth_date)
    if result.outcome is Outcome.VERIFIED:
        assert result.account is not None
        await state.clear()
        log.info("chat %s verified", message.chat.id)
        lead = "\n\n".join(
            [_("Thank you, you are verified."), *disclosures(policy, result.account, "first_contact")]
        )
        await show_main_menu(message, result.account, lead)
    elif result.outcome is Outcome.LOCKED:
        assert result.locked_until is not None
        await state.clear()
        await tell_locked(message, result.locked_until, clock, policy)
        if desk is not None:
            await hand_off(message, reason="lockout", account=None, cases=ctx.cases, desk=desk, policy=policy)
    else:
        await message.answer(
            _(
                "Sorry, these details do not match our records. Please check your date of birth and type it "
                "again. Attempts left: {attempts}."
            ).format(attempts=result.attempts_left)
        )


async def birth_date_not_text(message: Message) -> None:
    await ask_for_birth_date(message, _("Please type your date of birth as text."))


async def tell_locked(message: Message, locked_until: datetime, clock: Clock, policy: Policy) -> None:
    locale = reader_locale()
    await message.answer(
        _(
            "For your security, verification is paused until {time} ({zone}), {relative}. "
            "You can try again then, or talk to a person at the bank."
        ).format(
            time=when(locked_until, locale, policy.bank.timezone),
            zone=zone_name(policy.bank.timezone, locale),
            relative=in_about(locked_until - clock.now(), locale),
        ),
        reply_markup=person_keyboard(),
    )


def disclosures(policy: Policy, account: Account, when: str) -> list[str]:
    """The policy's required texts for this account, in the reader's language."""
    return [escape(item.texts[reader_locale()]) for item in policy.disclosures_for(account, when)]


async def forget_message(bot: Bot, message: Message) -> None:
    """Delete a message that held personal data once it has been read."""
    try:
        await bot.delete_message(chat_id=message.chat.id, message_id=message.message_id)
    except TelegramBadRequest as error:
        log.warning("could not delete a message holding personal data in chat %s: %s", message.chat.id, error.message)


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(start, CommandStart())
    router.message.register(phone_shared, StateFilter(Verification.sharing_phone, None), F.contact)
    router.message.register(phone_not_shared, Verification.sharing_phone)
    router.message.register(birth_date_typed, Verification.typing_birth_date, F.text)
    router.message.register(birth_date_not_text, Verification.typing_birth_date)
    return router
