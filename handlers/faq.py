"""Questions in the cardholder's own words, answered from the bank's knowledge base."""

from __future__ import annotations

from html import escape
from typing import Literal

from aiogram import F, Router
from aiogram.filters import Command, Filter, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.context import UpdateContext
from bot.desk import Desk
from bot.db.models import Account
from bot.domain.consequences import Outlook, outlook
from bot.domain.faq import Circumstances, Entry, MatchResult, faq_topics, knowledge_base, matcher_for, render_answer
from bot.domain.policy import Policy
from bot.formatting import day, days, money, years
from bot.services.arrangements import ArrangementService
from bot.services.faq_review import record_feedback, record_question, record_topic
from bot.settings import Settings
from handlers.balance import interest_rate
from handlers.fallback import LONGEST_TEXT_READ
from handlers.handoff import hand_off
from handlers.keyboards import PersonRequest, PlanMenuAction
from handlers.plans import payment_url
from handlers.prompts import ask_for_phone, reader_locale, show_current_step
from handlers.states import Verification


class FaqTopic(CallbackData, prefix="faq"):
    entry: str


class FaqFeedback(CallbackData, prefix="faqok"):
    entry: str
    helpful: bool


Reading = Literal["answered", "small_talk", "not_sure"]


class Question(Filter):
    """Free text read against the knowledge base, once per message: `answered` when an entry answers
    it, `small_talk` when it holds nothing to match ("hi", "ok thanks"), `not_sure` otherwise. Passes
    the readings it is given, with the match."""

    def __init__(self, *readings: Reading) -> None:
        self.readings = readings

    async def __call__(self, message: Message, ctx: UpdateContext) -> bool | dict[str, MatchResult]:
        text = message.text or ""
        if not text or text.startswith("/") or len(text) > LONGEST_TEXT_READ:
            return False
        result = matcher_for(reader_locale()).match(text, verified=ctx.account is not None)
        if result.best is not None:
            reading = "answered"
        else:
            reading = "small_talk" if result.small_talk else "not_sure"
        return {"match": result} if reading in self.readings else False


async def answer_entry(
    message: Message, entry: Entry, account: Account | None, state: FSMContext, arrangements: ArrangementService, policy: Policy, settings: Settings
) -> None:
    if entry.needs_account and account is None:
        await ask_for_phone(
            message,
            state,
            request=_(
                "To answer this I first need to confirm it's you. "
                "Please tap «{button}» below: it sends the phone number of this Telegram account."
            ),
        )
        return
    if account is None:
        text = render_answer(entry, bank_values(policy))
    else:
        next_installment = None
        if "next_installment" in entry.placeholders:
            next_installment = await next_installment_text(account, arrangements)
            if next_installment is None:
                await message.answer(
                    _("You have no installment due: there is no active plan on this account. See «{plans}» to set one up.").format(
                        plans=_("🧾 Ways to pay")
                    ),
                    reply_markup=answer_keyboard(entry, account, settings),
                )
                return
        facts = outlook(policy, account, arrangements.today())
        circumstances = Circumstances(facts.jurisdiction, facts.bureau.rule.rule, facts.thresholds_met)
        values = placeholder_values(account, facts, policy, next_installment)
        text = render_answer(entry, values, circumstances)
    await message.answer(escape(text), reply_markup=answer_keyboard(entry, account, settings))


async def next_installment_text(account: Account, arrangements: ArrangementService) -> str | None:
    """"$306.04 on Jan 2, 2027" for the active arrangement's next unpaid installment; None without one."""
    current = await arrangements.current(account)
    if current is None or current.arrangement.status != "active" or (due := current.next_due) is None:
        return None
    locale = reader_locale()
    return _("{amount} on {date}").format(
        amount=money(due.amount - due.paid, account.currency, locale), date=day(due.due_date, locale)
    )


def bank_values(policy: Policy) -> dict[str, str]:
    return {"bank_name": policy.bank.name, "bank_phone": policy.bank.phone, "bank_website": policy.bank.website}


def placeholder_values(account: Account, facts: Outlook, policy: Policy, next_installment: str | None = None) -> dict[str, str]:
    """The account's figures and its pack's bureau for answers, formatted for the reader; only ever
    for a verified chat."""
    locale = reader_locale()
    cash = lambda amount: money(amount, account.currency, locale)  # noqa: E731
    bureau = facts.bureau.rule
    return {
        **bank_values(policy),
        "overdue_amount": cash(account.overdue_amount),
        "minimum_due": cash(account.minimum_due),
        "daily_interest": cash(account.statement_balance * account.daily_interest_rate),
        "interest_rate": interest_rate(account.daily_interest_rate, locale),
        "bureau_name": bureau.name(locale),
        "bureau_years": years(bureau.years, locale),
        "bureau_offset_days": days(bureau.delinquency_offset_days, locale),
        "bureau_drop_off_date": day(facts.bureau.record_ends, locale),
        "next_installment": next_installment or "",
    }


def answer_keyboard(entry: Entry, account: Account | None, settings: Settings) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("👍 Yes, this helped"), callback_data=FaqFeedback(entry=entry.id, helpful=True))
    builder.button(text=_("🙋 Talk to a person"), callback_data=PersonRequest())
    if account is not None and "plans" in entry.buttons:
        builder.button(text=_("🧾 Ways to pay"), callback_data=PlanMenuAction(action="menu"))
    if account is not None and "pay" in entry.buttons:
        builder.button(text=_("💳 Pay now"), url=payment_url(settings, account, account.overdue_amount))
    builder.adjust(1)
    return builder.as_markup()


PERSON_TOPIC = "talk_to_person"
"""Asking for a person in any words does what the button does."""


async def question(
    message: Message,
    match: MatchResult,
    ctx: UpdateContext,
    state: FSMContext,
    policy: Policy,
    settings: Settings,
    desk: Desk | None,
) -> None:
    """Answer the question, greet small talk with the current step, or offer the likeliest topics."""
    account = ctx.account
    if match.small_talk:
        await show_current_step(
            message, state, account, _("I'm here to help. You can ask a question in your own words at any time.")
        )
        return
    record_question(ctx.audit, message.chat.id, reader_locale(), message.text or "", match)
    if match.best is not None and match.best.id == PERSON_TOPIC:
        await hand_off(message, reason="person", account=account, cases=ctx.cases, desk=desk, policy=policy)
    elif match.best is not None:
        await answer_entry(message, match.best, account, state, ctx.arrangements, policy, settings)
    else:
        await not_sure(message, match)


async def not_sure(message: Message, match: MatchResult) -> None:
    builder = InlineKeyboardBuilder()
    for entry in [entry for entry, _score in match.candidates if entry.id != PERSON_TOPIC][:3]:
        builder.button(text=entry.title, callback_data=FaqTopic(entry=entry.id))
    builder.button(text=_("🙋 Talk to a person"), callback_data=PersonRequest())
    builder.adjust(1)
    await message.answer(_("I'm not sure I understood. Is it one of these?"), reply_markup=builder.as_markup())


async def list_topics(message: Message) -> None:
    builder = InlineKeyboardBuilder()
    for entry in faq_topics(reader_locale()):
        if entry.id != PERSON_TOPIC:  # the button below is the way to a person
            builder.button(text=entry.title, callback_data=FaqTopic(entry=entry.id))
    builder.button(text=_("🙋 Talk to a person"), callback_data=PersonRequest())
    builder.adjust(1)
    await message.answer(_("What would you like to know?"), reply_markup=builder.as_markup())


async def topic_chosen(
    query: CallbackQuery,
    callback_data: FaqTopic,
    ctx: UpdateContext,
    state: FSMContext,
    policy: Policy,
    settings: Settings,
    callback_answer: CallbackAnswer,
    desk: Desk | None,
) -> None:
    entry = knowledge_base(reader_locale()).get(callback_data.entry)
    if entry is None or not isinstance(query.message, Message):
        callback_answer.text = _("This button is no longer active.")
        if isinstance(query.message, Message):
            await show_current_step(query.message, state, ctx.account)
        return
    record_topic(ctx.audit, query.message.chat.id, reader_locale(), entry.id)
    if entry.id == PERSON_TOPIC:
        await hand_off(query.message, reason="person", account=ctx.account, cases=ctx.cases, desk=desk, policy=policy)
        return
    await answer_entry(query.message, entry, ctx.account, state, ctx.arrangements, policy, settings)


async def feedback(query: CallbackQuery, callback_data: FaqFeedback, callback_answer: CallbackAnswer, ctx: UpdateContext) -> None:
    """Once per answer: the buttons go, so a second tap (or forged data) finds none to press."""
    message = query.message
    if not isinstance(message, Message) or not shows_button(message, query.data):
        callback_answer.text = _("This button is no longer active.")
        return
    callback_answer.text = _("Thank you!")
    record_feedback(ctx.audit, message.chat.id, callback_data.entry, callback_data.helpful)
    await message.edit_reply_markup(reply_markup=None)
    await message.answer(_("I'm glad it helped. You can ask me something else at any time, or see /faq."))


def shows_button(message: Message, data: str | None) -> bool:
    """Whether the message, as Telegram has it now, carries a button with this data."""
    markup = message.reply_markup
    rows = markup.inline_keyboard if markup is not None else []
    return any(button.callback_data == data for row in rows for button in row)


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(list_topics, Command("faq"))
    router.callback_query.register(topic_chosen, FaqTopic.filter())
    router.callback_query.register(feedback, FaqFeedback.filter())
    waiting_for_phone = StateFilter(Verification.sharing_phone)
    router.message.register(question, waiting_for_phone, F.text, Question("answered", "small_talk"))
    return router


def create_questions_router() -> Router:
    """After the menus, before the catch-all: free text is a question, answered or narrowed down."""
    router = Router(name=f"{__name__}.questions")
    every_reading = Question("answered", "small_talk", "not_sure")
    router.message.register(question, StateFilter(None), F.text, every_reading)
    return router
