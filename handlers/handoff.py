"""Handing the chat to a person: triggers, the case topic, and relaying the cardholder's messages."""

from __future__ import annotations

from html import escape

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from aiogram import F, Router
from aiogram.filters import Command, Filter, MagicData, StateFilter
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, TelegramObject
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.context import UpdateContext
from bot.db.models import Account, Case
from bot.desk import Desk
from bot.domain.masking import mask_text
from bot.domain.phones import mask_phone
from bot.domain.policy import Policy
from bot.formatting import money, when
from bot.services.cases import DISPUTE, CaseHistory, CaseService
from handlers.common import bank_contact_text
from handlers.keyboards import CaseAction, PersonRequest, RateCase
from handlers.prompts import reader_locale

class HandoffWords(Filter):
    """Text that asks for a person, or tells of hardship, a dispute, a complaint or anger.

    A command is not words: `/agent@other_bot` is meant for another bot, `/stop_now` is unknown.
    """

    async def __call__(self, message: Message, policy: Policy) -> bool | dict[str, str]:
        text = message.text or ""
        if text.startswith("/"):
            return False
        reason = policy.handoff.reason_in(text, reader_locale())
        return {"reason": reason} if reason else False


class AccountFlagged(Filter):
    """The chat's account carries a special-situation flag: whatever its cardholder writes goes to a person."""

    async def __call__(self, event: TelegramObject, ctx: UpdateContext) -> bool:
        return ctx.account is not None and ctx.account.contact_flag is not None


class CaseOpen(Filter):
    """The chat has an open case; with `claimed=True`, one an agent is handling."""

    def __init__(self, claimed: bool = False) -> None:
        self.claimed = claimed

    async def __call__(self, event: TelegramObject, ctx: UpdateContext) -> bool:
        if ctx.open_case is None:
            return False
        return ctx.open_case.status == "claimed" if self.claimed else True


# -- the case card, read by agents in the desk's language ---------------------------------------


def case_title(case: Case, account: Account | None, policy: Policy) -> str:
    stage = policy.stage_for(account.days_past_due) if account else None
    label = stage.name if stage else (_("current") if account else _("not verified"))
    return f"#{case.id} · {label} · {case.reason}"


def case_card(case: Case, account: Account | None, history: CaseHistory, policy: Policy, locale: str) -> str:
    lines = [_("Case #{id}: {reason}").format(id=case.id, reason=case.reason)]
    if account is None:
        lines.append(_("NOT VERIFIED: the person has not proved who they are. No account data is shown."))
    else:
        stage = policy.stage_for(account.days_past_due)
        lines += [
            _("Verified cardholder of account {account} (card ending {last4}), phone {phone}.").format(
                account=escape(account.account_id), last4=account.card_last4, phone=mask_phone(account.phone)
            ),
            _("Stage {stage}, {days} days past due, overdue {overdue}, minimum due {minimum}.").format(
                stage=stage.name if stage else "—",
                days=account.days_past_due,
                overdue=money(account.overdue_amount, account.currency, locale),
                minimum=money(account.minimum_due, account.currency, locale),
            ),
        ]
        if account.contact_flag:
            lines.append(
                _("FLAGGED: {flag}. The bank starts no messages to this account; everything its cardholder writes comes here.").format(
                    flag=Desk.flag_name(account.contact_flag)
                )
            )
        if account.payment_claimed_at:
            lines.append(_("The cardholder says they have paid: check the proof in this topic."))
        if history.offers:
            lines.append(_("Offered by the bot: {offers}.").format(offers=", ".join(sorted({offer.kind for offer in history.offers}))))
        for arrangement in history.arrangements:
            lines.append(
                _("Arrangement: {kind}, {status}, {total}.").format(
                    kind=arrangement.kind, status=arrangement.status, total=money(arrangement.total, arrangement.currency, locale)
                )
            )
    if history.last_messages:
        lines += ["", _("Last messages:")]
        for event in history.last_messages:
            speaker = "👤" if event.direction == "in" else "🤖"
            lines.append(f"{speaker} {escape(mask_text(event.payload)[:200])}")
    text = "\n".join(lines)
    return text[:4000]


def claim_keyboard(case: Case) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("🙋 Claim"), callback_data=CaseAction(action="claim", case_id=case.id))
    return builder.as_markup()


def resolve_keyboard(case: Case) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("✅ Resolve"), callback_data=CaseAction(action="resolve", case_id=case.id))
    return builder.as_markup()


def rating_keyboard(case: Case) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for score in range(1, 6):
        builder.button(text="⭐" * score, callback_data=RateCase(case_id=case.id, score=score))
    builder.adjust(1)
    return builder.as_markup()


def back_at(policy: Policy, now: datetime) -> datetime | None:
    """When the desk opens next, or None while it is open."""
    zone = ZoneInfo(policy.bank.timezone)
    local = now.astimezone(zone)
    start, end = policy.bank.hours_start, policy.bank.hours_end
    if start <= local.time() < end:
        return None
    day = local.date() if local.time() < start else local.date() + timedelta(days=1)
    return datetime.combine(day, time(start.hour, start.minute), tzinfo=zone)


# -- handing off --------------------------------------------------------------------------------


def no_desk_acknowledgement(reason: str) -> str:
    """What the cardholder said is answered as what it is, before the bank's number."""
    if reason == "hardship":
        return _(
            "I'm sorry you are going through this. A person at the bank should look at your situation with you; "
            "it is not something I can decide on my own."
        )
    if reason == "dispute":
        return _("Thank you for telling me. A person at the bank needs to look into a transaction you dispute.")
    if reason in ("complaint", "anger"):
        return _("I'm sorry this has been frustrating. A person at the bank will listen to you.")
    return ""


async def hand_off(
    message: Message,
    *,
    reason: str,
    account: Account | None,
    cases: CaseService,
    desk: Desk | None,
    policy: Policy,
    relay_message: bool = False,
) -> Case | None:
    """Open (or join) the chat's case, put it in front of the agents, and tell the cardholder."""
    if desk is None:
        acknowledgement = no_desk_acknowledgement(reason)
        contact = bank_contact_text(policy, account)
        await message.answer(f"{acknowledgement}\n\n{contact}" if acknowledgement else contact)
        return None
    locale = reader_locale()
    opened = await cases.open(message.chat.id, account, reason, locale, (message.text or "") if relay_message else "")
    case = opened.case
    with desk.speaking():
        if opened.created:
            await open_case_topic(desk, cases, case, account, policy)
        else:
            await desk.post(case, _("New request in this case: {reason}.").format(reason=reason))
    if relay_message:
        await relay_to_agents(message, case, cases, desk)
    if case.status == "claimed":
        await message.answer(_("The person handling your case has been told and will answer here."))
        return case
    position = await cases.queue_position(case)
    lines = [_("A person from the bank will answer you here. You are number {position} in the queue.").format(position=position)]
    opens = back_at(policy, cases.clock.now())
    if opens is not None:
        lines.append(
            _("Our agents are away now; they are back at {time}. You can keep writing: they will see everything.").format(
                time=when(opens, locale, policy.bank.timezone)
            )
        )
    else:
        lines.append(_("You can keep writing meanwhile: they will see everything."))
    await message.answer("\n".join(lines))
    return case


async def open_case_topic(desk: Desk, cases: CaseService, case: Case, account: Account | None, policy: Policy) -> bool:
    """The case's topic with its card, in the desk's language (now, or later by the courier)."""
    with desk.speaking():
        history = await cases.history(case)
        card = case_card(case, account, history, policy, desk.locale)
        return await desk.open_case_topic(cases, case, case_title(case, account, policy), card, claim_keyboard(case))


async def relay_to_agents(message: Message, case: Case, cases: CaseService, desk: Desk) -> str:
    text = message.text or message.caption or f"[{message.content_type}]"
    delivery = await desk.relay_to_agents(cases, case, message.chat.id, message.message_id, text)
    return delivery.status


# -- handlers -----------------------------------------------------------------------------------


async def person_command(message: Message, ctx: UpdateContext, desk: Desk | None, policy: Policy) -> None:
    await hand_off(message, reason="person", account=ctx.account, cases=ctx.cases, desk=desk, policy=policy)


async def person_button(query: CallbackQuery, ctx: UpdateContext, desk: Desk | None, policy: Policy) -> None:
    if isinstance(query.message, Message):
        await hand_off(query.message, reason="person", account=ctx.account, cases=ctx.cases, desk=desk, policy=policy)


async def words_trigger(message: Message, reason: str, ctx: UpdateContext, desk: Desk | None, policy: Policy) -> None:
    await hand_off(
        message, reason=reason, account=ctx.account, cases=ctx.cases, desk=desk, policy=policy, relay_message=True
    )


async def payment_proof(message: Message, ctx: UpdateContext, desk: Desk | None, policy: Policy) -> None:
    """A receipt or screenshot of a transfer: the account is marked, and an agent checks it."""
    account = ctx.account
    assert account is not None
    await ctx.cases.mark_payment_claimed(account)
    await hand_off(
        message, reason="payment_proof", account=account, cases=ctx.cases, desk=desk, policy=policy, relay_message=True
    )


async def relay_cardholder(message: Message, ctx: UpdateContext, desk: Desk | None, policy: Policy) -> None:
    """Carry the cardholder's message into the case topic.

    While the case waits, the bot confirms it was added; once an agent owns the case the bot says
    nothing of its own, only relays. Words of a dispute make the case a dispute case.
    """
    open_case, cases, account = ctx.open_case, ctx.cases, ctx.account
    if desk is None or open_case is None:
        return
    if account is not None and (message.photo or message.document):
        await cases.mark_payment_claimed(account)
    if policy.handoff.reason_in(message.text or message.caption or "", reader_locale()) == DISPUTE and cases.raise_dispute(open_case):
        with desk.speaking():
            await desk.post(open_case, _("New request in this case: {reason}.").format(reason=DISPUTE))
    status = await relay_to_agents(message, open_case, cases, desk)
    if status == "failed":
        await message.answer(_("Sorry, your message could not be passed on. Please send it again in a moment."))
    elif status in ("sent", "queued") and open_case.status == "waiting":
        await message.answer(_("Added to your case: a person will read it."))


async def flagged_message(message: Message, ctx: UpdateContext, desk: Desk | None, policy: Policy) -> None:
    """A flagged account's cardholder: whatever they write, commands too (but /stop, which is
    recorded as usual), goes to a person; without a desk they are given the bank's contact."""
    if desk is not None and ctx.open_case is not None:
        await relay_cardholder(message, ctx, desk, policy)
        return
    await hand_off(message, reason="flagged", account=ctx.account, cases=ctx.cases, desk=desk, policy=policy, relay_message=True)


async def silent_button(query: CallbackQuery) -> None:
    """Old bot buttons pressed while an agent owns the case: answered, nothing else."""


async def rate(query: CallbackQuery, callback_data: RateCase, ctx: UpdateContext, callback_answer: CallbackAnswer) -> None:
    if not 1 <= callback_data.score <= 5 or not isinstance(query.message, Message):
        callback_answer.text = _("This button is no longer active.")
        return
    if await ctx.cases.rate(callback_data.case_id, query.message.chat.id, callback_data.score):
        await query.message.edit_text(_("Thank you for your rating: {stars}").format(stars="⭐" * callback_data.score))
    else:
        callback_answer.text = _("This button is no longer active.")


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(relay_cardholder, CaseOpen(claimed=True), ~Command("stop"))  # /stop is recorded, not relayed
    router.message.register(flagged_message, AccountFlagged(), ~Command("stop"))  # /stop is still recorded
    router.callback_query.register(
        silent_button, CaseOpen(claimed=True), ~F.data.startswith("offer:"), ~F.data.startswith("rate:")
    )
    router.message.register(person_command, Command("agent"))
    router.callback_query.register(person_button, PersonRequest.filter())
    router.callback_query.register(rate, RateCase.filter())
    router.message.register(relay_cardholder, CaseOpen(), StateFilter(None), ~F.text.startswith("/"))
    router.message.register(words_trigger, F.text, HandoffWords())
    router.message.register(payment_proof, F.photo | F.document, MagicData(F.ctx.account.is_not(None)))
    return router
