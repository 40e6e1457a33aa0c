"""Keyboards and callback data shared by the cardholder's routers."""

from __future__ import annotations

from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup, ReplyKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import lazy_gettext as __
from aiogram.utils.keyboard import InlineKeyboardBuilder, KeyboardButton, ReplyKeyboardBuilder
from pydantic import Field

from bot.domain.calculator import MAX_PROMISE_DAYS
from bot.i18n import LANGUAGE_NAMES

MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]
"""A row's id as the database holds it (INTEGER: int4 on PostgreSQL).

Callback data comes from the client. A value out of range (a 20-digit or negative id) makes the
data fail to parse, so no handler's filter matches it and it never reaches SQL; the catch-all
handlers answer it as a button that is no longer active.
"""


class LanguageChoice(CallbackData, prefix="lang"):
    locale: str


class PersonRequest(CallbackData, prefix="person"):
    """"Talk to a person"; the handoff to agents builds on this button."""


class OfferAction(CallbackData, prefix="offer"):
    """A button on an offer: only the id travels; the server reloads and checks the offer."""

    action: str  # "view", "accept" or "replace"
    offer_id: RowId


class PlanMenuAction(CallbackData, prefix="plans"):
    action: str  # "menu", "budget" or "promise"


class PromiseDay(CallbackData, prefix="ptp"):
    days: Annotated[int, Field(ge=1, le=MAX_PROMISE_DAYS)]  # from today


class PromiseAmount(CallbackData, prefix="ptpa"):
    choice: str  # "minimum" or "overdue"


class CaseAction(CallbackData, prefix="case"):
    action: str  # "claim" or "resolve"
    case_id: RowId


class ProposalAction(CallbackData, prefix="prop"):
    """An agent's answer to a request outside self-service policy."""

    action: str  # "approve", "change" or "decline"
    offer_id: RowId


class FlagAction(CallbackData, prefix="flag"):
    """An agent's choice of a special situation for a case's account (`bot.services.contact.FLAGS`)."""

    case_id: RowId
    flag: str


class SupervisorAction(CallbackData, prefix="sup"):
    """A supervisor's answer to an agent's offer outside the policy: ids only, the server checks again."""

    action: str  # "approve" or "decline"
    offer_id: RowId
    case_id: RowId


class RateCase(CallbackData, prefix="rate"):
    case_id: RowId
    score: Annotated[int, Field(ge=1, le=5)]


SHARE_PHONE = __("📱 Share my phone number")
BALANCE = __("💳 Balance")
PLANS = __("🧾 Ways to pay")
MY_PLAN = __("📌 My plan")
CONTACT_BANK = __("☎️ Contact the bank")
SIGN_OUT = __("🚪 Sign out")


def share_phone_keyboard() -> ReplyKeyboardMarkup:
    builder = ReplyKeyboardBuilder()
    builder.button(text=str(SHARE_PHONE), request_contact=True)
    return builder.as_markup(resize_keyboard=True, one_time_keyboard=False, is_persistent=True)


def main_menu_keyboard() -> ReplyKeyboardMarkup:
    builder = ReplyKeyboardBuilder()
    builder.row(KeyboardButton(text=str(BALANCE)), KeyboardButton(text=str(PLANS)))
    builder.row(KeyboardButton(text=str(MY_PLAN)), KeyboardButton(text=str(CONTACT_BANK)))
    builder.row(KeyboardButton(text=str(SIGN_OUT)))
    return builder.as_markup(resize_keyboard=True, is_persistent=True)


def language_keyboard() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for locale, name in LANGUAGE_NAMES.items():
        builder.button(text=name, callback_data=LanguageChoice(locale=locale))
    builder.adjust(3)
    return builder.as_markup()


def person_keyboard() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("🙋 Talk to a person"), callback_data=PersonRequest())
    return builder.as_markup()
