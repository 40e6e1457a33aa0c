"""What the bot asks at each step, so every answer can end by showing the way forward."""

from __future__ import annotations

from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.types import Message, ReplyKeyboardRemove
from aiogram.utils.i18n import get_i18n
from aiogram.utils.i18n import gettext as _

from bot.db.models import Account
from handlers.keyboards import main_menu_keyboard, share_phone_keyboard
from handlers.states import Verification


def reader_locale() -> str:
    """The locale the current update is answered in (chosen by the locale middleware)."""
    return get_i18n().current_locale


async def edit_once(message: Message, text: str) -> bool:
    """Replace a message's text and buttons; False when it already says that (a double tap)."""
    try:
        await message.edit_text(text)
    except TelegramBadRequest as error:
        if "message is not modified" in error.message:
            return False
        raise
    return True


def birth_date_example() -> str:
    return _("7 March 1985 or 03/07/1985")


async def ask_for_phone(message: Message, state: FSMContext, lead: str = "", request: str | None = None) -> None:
    """Ask for the phone button. `request` says why in one sentence with the button's place
    (``{button}``); by default, that the account is protected."""
    await state.set_state(Verification.sharing_phone)
    if request is None:
        request = _(
            "To protect your account I first need to confirm it's you. "
            "Please tap «{button}» below: it sends the phone number of this Telegram account."
        )
    text = request.format(button=_("📱 Share my phone number"))
    await message.answer(f"{lead}\n\n{text}" if lead else text, reply_markup=share_phone_keyboard())


async def ask_for_birth_date(message: Message, lead: str = "") -> None:
    text = _(
        "Please type your date of birth, for example {example}. "
        "I will delete your message as soon as I have read it."
    ).format(example=birth_date_example())
    await message.answer(f"{lead}\n\n{text}" if lead else text, reply_markup=ReplyKeyboardRemove())


async def show_main_menu(message: Message, account: Account, lead: str = "") -> None:
    text = _("You are signed in for the card ending {last4}. Choose what you would like to do below.").format(
        last4=account.card_last4
    )
    await message.answer(f"{lead}\n\n{text}" if lead else text, reply_markup=main_menu_keyboard())


async def show_current_step(message: Message, state: FSMContext, account: Account | None, lead: str = "") -> None:
    """Repeat what the bot is waiting for, after `lead` explains why the last input did not fit."""
    current = await state.get_state()
    if account is not None:
        await show_main_menu(message, account, lead)
    elif current == Verification.typing_birth_date.state:
        await ask_for_birth_date(message, lead)
    else:
        await ask_for_phone(message, state, lead)
