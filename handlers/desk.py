"""The agents' group: claim and resolve cases, talk to the cardholder, notes, offers, the queue.

Every action on a case but claiming it is flagged `owner_only`: `owner_only` (the router's inner
middleware) lets it run only for the agent who claimed the case (`CaseService.ensure_owner`) and
answers anyone else in the desk, so nothing changes and nothing reaches the cardholder.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape
from typing import Any

import logging
from decimal import Decimal, InvalidOperation

from aiogram import Bot, F, Router
from aiogram.dispatcher.flags import get_flag
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.filters import Command, CommandObject, Filter
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, TelegramObject, User
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from bot.context import UpdateContext
from bot.db.models import Account, Case
from bot.desk import Desk
from bot.domain.errors import DomainError
from bot.formatting import duration, money, percent
from bot.services.arrangements import OfferUnavailable, Proposal
from bot.services.filing import filed_under
from bot.services.cases import CaseService, NotCaseOwner
from handlers.handoff import rating_keyboard, resolve_keyboard
from handlers.keyboards import CaseAction, ProposalAction
from handlers.plans import proposal_keyboard, proposal_text
from handlers.prompts import reader_locale

log = logging.getLogger(__name__)


class InDesk(Filter):
    """Updates from the agents' group, by someone in AGENT_IDS; everyone else gets nothing."""

    async def __call__(self, event: TelegramObject, desk: Desk | None = None, event_from_user: User | None = None) -> bool:
        return desk is not None and desk.is_agent(event_from_user.id if event_from_user else None)


class InCaseTopic(Filter):
    """A message in a case's topic, or a button on one: gives the handler its `case`.

    A button whose data names a case (`case_id`) must be in that case's topic.
    """

    async def __call__(
        self, event: Message | CallbackQuery, ctx: UpdateContext, callback_data: CallbackData | None = None
    ) -> bool | dict[str, Case]:
        message = event.message if isinstance(event, CallbackQuery) else event
        if not isinstance(message, Message) or not message.is_topic_message or message.message_thread_id is None:
            return False
        case = await ctx.cases.by_topic(message.message_thread_id)
        if case is None or getattr(callback_data, "case_id", case.id) != case.id:
            return False
        return {"case": case}


async def owner_only(
    handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]], event: TelegramObject, data: dict[str, Any]
) -> Any:
    """Runs a handler flagged `owner_only` only for the agent who claimed its `case`; answers others."""
    if not get_flag(data, "owner_only"):
        return await handler(event, data)
    ctx: UpdateContext = data["ctx"]
    user: User = data["event_from_user"]
    try:
        ctx.cases.ensure_owner(data["case"], user.id)
    except NotCaseOwner as refused:
        text = not_owner_text(refused)
        if isinstance(event, CallbackQuery):
            data["callback_answer"].text = text
        elif isinstance(event, Message):
            await event.reply(text)
        return None
    return await handler(event, data)


def not_owner_text(refused: NotCaseOwner) -> str:
    case = refused.case
    if case.status == "resolved":
        return _("This case is resolved.")
    if case.status == "claimed":
        return _("This case is handled by agent {agent}: only they can act on it.").format(agent=case.agent_id)
    return _("Claim the case first: only the agent who claimed it can act on it.")


async def claim(
    query: CallbackQuery, callback_data: CaseAction, ctx: UpdateContext, desk: Desk, bot: Bot, callback_answer: CallbackAnswer
) -> None:
    result = await ctx.cases.claim(callback_data.case_id, query.from_user.id)
    if not result.won:
        callback_answer.text = _("Already taken by agent {agent}.").format(agent=result.case.agent_id)
        return
    case = result.case
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=resolve_keyboard(case))
    await desk.post(case, _("Claimed by {name}. Messages you write in this topic go to the cardholder; /note keeps a note internal.").format(name=escape(query.from_user.full_name)))
    await tell_cardholder(bot, desk, case, _("A person from the bank has joined this chat. Please go ahead."))


async def resolve_button(query: CallbackQuery, case: Case, ctx: UpdateContext, desk: Desk, bot: Bot) -> None:
    await resolve(case, query.from_user.id, _("resolved"), ctx.cases, desk, bot)


async def resolve_command(message: Message, command: CommandObject, case: Case, ctx: UpdateContext, desk: Desk, bot: Bot) -> None:
    assert message.from_user is not None
    await resolve(case, message.from_user.id, command.args or _("resolved"), ctx.cases, desk, bot)


async def resolve(case: Case, agent_id: int, outcome: str, cases: CaseService, desk: Desk, bot: Bot) -> None:
    await cases.resolve(case, agent_id, outcome)
    await desk.post(case, _("Resolved: {outcome}. The cardholder is back with the bot.").format(outcome=escape(outcome)))
    try:
        await bot.close_forum_topic(desk.chat_id, case.topic_id)
    except TelegramBadRequest as error:
        log.warning("could not close the topic of case %s: %s", case.id, error.message)
    with desk.i18n.use_locale(case.locale):
        text = _("Your conversation with the bank has ended, and I am back to help. How would you rate the help you got?")
        markup = rating_keyboard(case)
    await tell_cardholder(bot, desk, case, text, markup)


async def agent_wrote(message: Message, case: Case, ctx: UpdateContext, desk: Desk) -> None:
    delivery = await desk.relay(ctx.cases, case, "to_cardholder", message.chat.id, message.message_id, message.text or message.caption or f"[{message.content_type}]")
    if delivery.status == "blocked":
        await message.reply(_("Not delivered: the cardholder has blocked the bot."))
    elif delivery.status == "failed":
        await message.reply(_("Not delivered: Telegram refused it several times. Please try again."))


async def note(message: Message, command: CommandObject, case: Case, ctx: UpdateContext) -> None:
    assert message.from_user is not None
    await ctx.cases.note(case, message.from_user.id, command.args or "")
    await message.reply(_("Note recorded. It is not sent to the cardholder."))


async def offer(message: Message, command: CommandObject, case: Case, ctx: UpdateContext, desk: Desk, bot: Bot) -> None:
    assert message.from_user is not None
    account = await ctx.db.get(Account, case.account_pk) if case.account_pk else None
    if account is None:
        await message.reply(_("No offer is possible: the person is not verified."))
        return
    parts = (command.args or "").split()
    try:
        months = int(parts[0])
        rate = Decimal(parts[1]) if len(parts) > 1 else None
        proposal = await ctx.arrangements.agent_offer(account, months, rate, message.from_user.id, case.chat_id)
    except (IndexError, ValueError, InvalidOperation):
        await message.reply(_("Usage: /offer MONTHS [ANNUAL RATE], for example /offer 36 or /offer 36 0.06"))
        return
    except DomainError as error:
        await message.reply(_("No offer: {reason}").format(reason=escape(str(error))))
        return
    await ctx.cases.record(case, f"agent:{message.from_user.id}", "offer", f"offer {proposal.offer_id}: {months} months")
    await send_offer(case, proposal, bot, desk, message)


async def send_offer(case: Case, proposal: Proposal, bot: Bot, desk: Desk, reply_to: Message) -> None:
    with desk.i18n.use_locale(case.locale):
        text = _("A person from the bank offers you this plan:") + "\n\n" + proposal_text(proposal)
        markup = proposal_keyboard(proposal)
    delivered = await tell_cardholder(bot, desk, case, text, markup)
    plan = proposal.plan
    summary = _("Offer sent: {months} months, APR {rate}, {payment} a month.").format(
        months=plan.months, payment=money(plan.payment, plan.currency, desk.locale), rate=percent(plan.annual_rate, desk.locale)
    ) if plan else _("Offer sent.")
    await reply_to.reply(summary if delivered else _("Not delivered: the cardholder has blocked the bot."))


async def proposal_decision(
    query: CallbackQuery, callback_data: ProposalAction, case: Case, ctx: UpdateContext, desk: Desk, bot: Bot, callback_answer: CallbackAnswer
) -> None:
    assert isinstance(query.message, Message)
    account = await ctx.db.get(Account, case.account_pk) if case.account_pk else None
    if account is None:  # proposals are made for verified accounts only: this data was not a button's
        callback_answer.text = _("This button is no longer active.")
        return
    await ctx.cases.record(case, f"agent:{query.from_user.id}", "decision", f"{callback_data.action} offer {callback_data.offer_id}")
    await query.message.edit_reply_markup(reply_markup=None)
    if callback_data.action == "approve":
        try:
            proposal = await ctx.arrangements.approve(account, callback_data.offer_id, query.from_user.id)
        except OfferUnavailable:
            await query.message.reply(_("This proposal is no longer valid; send a new one with /offer."))
            return
        await send_offer(case, proposal, bot, desk, query.message)
    elif callback_data.action == "change":
        await query.message.reply(_("Send the cardholder another plan with /offer MONTHS [ANNUAL RATE]."))
    else:
        with desk.i18n.use_locale(case.locale):
            text = _("The bank cannot offer that plan. A person will talk with you about what is possible.")
        await tell_cardholder(bot, desk, case, text)
        await query.message.reply(_("Declined; the cardholder was told."))


async def queue(message: Message, ctx: UpdateContext) -> None:
    waiting = await ctx.cases.waiting()
    if not waiting:
        await message.reply(_("No case is waiting."))
        return
    now = ctx.cases.clock.now()
    lines = [_("Waiting cases, oldest first:")]
    for case in waiting:
        lines.append(_("#{id} {reason}, waiting {wait}").format(id=case.id, reason=case.reason, wait=duration(now - case.created_at, reader_locale())))
    await message.reply("\n".join(lines))


async def not_for_you(query: CallbackQuery) -> None:
    """A button of the desk pressed by someone who is not an agent: answered, nothing done."""


async def stale_button(query: CallbackQuery, callback_answer: CallbackAnswer) -> None:
    """An agent's press whose data no handler takes (an old or forged button): answered, nothing done."""
    callback_answer.text = _("This button is no longer active.")


async def tell_cardholder(
    bot: Bot, desk: Desk, case: Case, text: str, markup: InlineKeyboardMarkup | None = None
) -> bool:
    try:
        with filed_under(case.account_pk):
            await bot.send_message(case.chat_id, text, reply_markup=markup)
    except TelegramForbiddenError:
        await desk.post(case, _("The cardholder has blocked the bot: they did not receive the last message."))
        return False
    return True


def create_router(agent_chat_id: int | None) -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.id == agent_chat_id)
    router.callback_query.filter(F.message.chat.id == agent_chat_id)
    router.callback_query.register(not_for_you, ~InDesk())
    router.message.filter(InDesk())
    router.message.middleware(owner_only)
    router.callback_query.middleware(owner_only)
    owner = {"owner_only": True}
    router.callback_query.register(claim, CaseAction.filter(F.action == "claim"))
    router.callback_query.register(resolve_button, CaseAction.filter(F.action == "resolve"), InCaseTopic(), flags=owner)
    router.callback_query.register(
        proposal_decision, ProposalAction.filter(F.action.in_({"approve", "change", "decline"})), InCaseTopic(), flags=owner
    )
    router.callback_query.register(stale_button)
    router.message.register(queue, Command("queue"))
    router.message.register(note, Command("note"), InCaseTopic(), flags=owner)
    router.message.register(offer, Command("offer"), InCaseTopic(), flags=owner)
    router.message.register(resolve_command, Command("resolve"), InCaseTopic(), flags=owner)
    router.message.register(agent_wrote, InCaseTopic(), ~F.text.startswith("/"), flags=owner)
    return router
