"""The agents' group: claim and resolve cases, talk to the cardholder, notes, offers, flags, the queue.

What an agent sends the cardholder passes the contact gate (`Desk.tell_cardholder`,
`Desk.relay_to_cardholder`); the agent is told when it is held, and until when, or refused, and why.

Every action on a case but claiming it is flagged `owner_only`: `owner_only` (the router's inner
middleware) lets it run only for the agent who claimed the case (`CaseService.ensure_owner`) and
answers anyone else in the desk, so nothing changes and nothing reaches the cardholder.

An agent's offer outside the account's jurisdiction pack waits in the case's topic for a
supervisor (`SUPERVISOR_IDS`, never the agent who made it), who approves or declines it there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape
from typing import Any

import logging
from decimal import Decimal, InvalidOperation

from aiogram import Bot, F, Router
from aiogram.dispatcher.flags import get_flag
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject, Filter
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, TelegramObject, User
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.keyboard import InlineKeyboardBuilder
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.context import UpdateContext
from bot.db.models import Account, Case
from bot.desk import Delivery, Desk
from bot.domain.errors import DomainError
from bot.domain.policy import Policy
from bot.formatting import duration, money, percent
from bot.services.arrangements import AgentPlan, Decision, OfferUnavailable, OutsidePack, Proposal
from bot.services.cases import NotCaseOwner
from bot.services.contact import COLLECTION, FLAGS, SERVICE
from handlers.handoff import rating_keyboard, resolve_keyboard
from handlers.keyboards import CaseAction, FlagAction, ProposalAction, SupervisorAction
from handlers.plans import payments_text, proposal_keyboard, proposal_text
from handlers.prompts import reader_locale

log = logging.getLogger(__name__)


class InDesk(Filter):
    """Updates from the agents' group, by someone in AGENT_IDS; everyone else gets nothing."""

    async def __call__(self, event: TelegramObject, desk: Desk | None = None, event_from_user: User | None = None) -> bool:
        return desk is not None and desk.is_agent(event_from_user.id if event_from_user else None)


class IsSupervisor(Filter):
    """A press by someone in SUPERVISOR_IDS."""

    async def __call__(self, event: TelegramObject, desk: Desk | None = None, event_from_user: User | None = None) -> bool:
        return desk is not None and desk.is_supervisor(event_from_user.id if event_from_user else None)


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
    query: CallbackQuery, callback_data: CaseAction, ctx: UpdateContext, desk: Desk, policy: Policy, callback_answer: CallbackAnswer
) -> None:
    result = await ctx.cases.claim(callback_data.case_id, query.from_user.id)
    if not result.won:
        callback_answer.text = _("Already taken by agent {agent}.").format(agent=result.case.agent_id)
        return
    case = result.case
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=resolve_keyboard(case))
    await desk.post(case, _("Claimed by {name}. Messages you write in this topic go to the cardholder; /note keeps a note internal.").format(name=escape(query.from_user.full_name)))
    with desk.i18n.use_locale(case.locale):
        text = _("A person from the bank has joined this chat. Please go ahead.")
    await report(desk, case, await desk.tell_cardholder(ctx.contacts, ctx.outbox, case, text, purpose=SERVICE), policy)


async def resolve_button(query: CallbackQuery, case: Case, ctx: UpdateContext, desk: Desk, bot: Bot, policy: Policy) -> None:
    await resolve(case, query.from_user.id, _("resolved"), ctx, desk, bot, policy)


async def resolve_command(
    message: Message, command: CommandObject, case: Case, ctx: UpdateContext, desk: Desk, bot: Bot, policy: Policy
) -> None:
    assert message.from_user is not None
    await resolve(case, message.from_user.id, command.args or _("resolved"), ctx, desk, bot, policy)


async def resolve(case: Case, agent_id: int, outcome: str, ctx: UpdateContext, desk: Desk, bot: Bot, policy: Policy) -> None:
    await ctx.cases.resolve(case, agent_id, outcome)
    await desk.post(case, _("Resolved: {outcome}. The cardholder is back with the bot.").format(outcome=escape(outcome)))
    try:
        await bot.close_forum_topic(desk.chat_id, case.topic_id)
    except TelegramBadRequest as error:
        log.warning("could not close the topic of case %s: %s", case.id, error.message)
    with desk.i18n.use_locale(case.locale):
        text = _("Your conversation with the bank has ended, and I am back to help. How would you rate the help you got?")
        markup = rating_keyboard(case)
    await report(desk, case, await desk.tell_cardholder(ctx.contacts, ctx.outbox, case, text, markup, SERVICE), policy)


CAPTIONED = ("photo", "document", "video", "audio", "voice", "animation")
"""Media whose copy can carry a caption (and so an opt-out notice)."""


async def agent_wrote(message: Message, case: Case, ctx: UpdateContext, desk: Desk, policy: Policy) -> None:
    captioned = False if message.text is not None else (True if message.content_type in CAPTIONED else None)
    delivery = await desk.relay_to_cardholder(
        ctx.cases, ctx.contacts, case, (message.chat.id, message.message_id),
        message.text or message.caption or f"[{message.content_type}]", message.html_text, captioned,
    )
    if delivery.status == "blocked":
        await message.reply(_("Not delivered: the cardholder has blocked the bot."))
    elif delivery.status == "failed":
        await message.reply(_("Not delivered: Telegram refused it several times. Please try again."))
    else:
        await report(desk, case, delivery, policy, message)


async def note(message: Message, command: CommandObject, case: Case, ctx: UpdateContext) -> None:
    assert message.from_user is not None
    await ctx.cases.note(case, message.from_user.id, command.args or "")
    await message.reply(_("Note recorded. It is not sent to the cardholder."))


async def offer(message: Message, command: CommandObject, case: Case, ctx: UpdateContext, desk: Desk, policy: Policy) -> None:
    """`/offer MONTHS [ANNUAL RATE]`: within the account's pack it goes to the cardholder; outside it
    (another term, a higher rate) it waits for a supervisor, or is refused when there is none."""
    assert message.from_user is not None
    account = await ctx.db.get(Account, case.account_pk) if case.account_pk else None
    if account is None:
        await message.reply(_("No offer is possible: the person is not verified."))
        return
    parts = (command.args or "").split()
    try:
        months = int(parts[0])
        rate = Decimal(parts[1]) if len(parts) > 1 else None
        wanted = ctx.arrangements.agent_plan(account, months, rate)
    except (IndexError, ValueError, InvalidOperation):
        await message.reply(_("Usage: /offer MONTHS [ANNUAL RATE], for example /offer 36 or /offer 36 0.06"))
        return
    except DomainError as error:
        await message.reply(_("No offer: {reason}").format(reason=escape(str(error))))
        return
    agent_id = message.from_user.id
    summary = f"{months} months at {wanted.rate}%"
    if wanted.outside is not None and not desk.supervisor_ids:
        await ctx.cases.record(case, f"agent:{agent_id}", "offer_refused", f"{summary}: outside the policy ({wanted.outside.value})")
        await message.reply(
            _("Not sent: {reason} An offer outside the policy needs a supervisor's approval, and no supervisor is set up (SUPERVISOR_IDS).").format(
                reason=outside_text(wanted)
            )
        )
        return
    proposal = await ctx.arrangements.agent_offer(account, wanted, agent_id, case.chat_id)
    if wanted.outside is None:
        await ctx.cases.record(case, f"agent:{agent_id}", "offer", f"offer {proposal.offer_id}: {summary}")
        await send_offer(case, proposal, ctx, desk, policy, message)
        return
    await ctx.cases.record(
        case, f"agent:{agent_id}", "offer_pending", f"offer {proposal.offer_id}: {summary}, outside the policy ({wanted.outside.value})"
    )
    builder = InlineKeyboardBuilder()
    with desk.speaking():
        text = _("Agent {agent} asks to offer a plan outside the policy: {reason} A supervisor approves or declines it.").format(
            agent=agent_id, reason=outside_text(wanted)
        ) + "\n\n" + proposal_text(proposal)
        for action, label in (("approve", _("✅ Approve")), ("decline", _("✖️ Decline"))):
            builder.button(text=label, callback_data=SupervisorAction(action=action, offer_id=proposal.offer_id, case_id=case.id))
    await desk.post(case, text, builder.as_markup())
    await message.reply(
        _("Outside the policy: {reason} It waits for a supervisor's approval; the cardholder sees nothing until then.").format(
            reason=outside_text(wanted)
        )
    )


def outside_text(wanted: AgentPlan) -> str:
    """Why an agent's offer is outside the account's pack, in the desk's words."""
    locale = reader_locale()
    if wanted.outside is OutsidePack.TERM or wanted.limit is None:
        return _("{months} months is not a term of the policy for this account (its terms: {terms} months).").format(
            months=wanted.plan.months, terms=", ".join(str(term) for term in wanted.terms)
        )
    return _("{rate} a year is above the policy's {limit} for {months} months.").format(
        rate=percent(wanted.rate, locale), limit=percent(wanted.limit, locale), months=wanted.plan.months
    )


async def supervisor_decision(
    query: CallbackQuery, callback_data: SupervisorAction, case: Case, ctx: UpdateContext, desk: Desk, policy: Policy,
    callback_answer: CallbackAnswer,
) -> None:
    """A supervisor approves (the offer goes to the cardholder) or declines (it never does) an
    agent's offer outside the policy; decided once, whoever presses first, and recorded."""
    assert isinstance(query.message, Message)
    supervisor = query.from_user.id
    account = await ctx.db.get(Account, case.account_pk) if case.account_pk else None
    if account is None:
        callback_answer.text = _("This button is no longer active.")
        return
    if case.status != "claimed":
        callback_answer.text = _("This case is resolved.")
        return
    approve = callback_data.action == "approve"
    try:
        result = await ctx.arrangements.supervise(account, callback_data.offer_id, supervisor, approve)
    except OfferUnavailable:
        callback_answer.text = _("This proposal is no longer valid; send a new one with /offer.")
        await query.message.edit_reply_markup(reply_markup=None)
        await desk.post(case, callback_answer.text)
        return
    if result.decision is Decision.OWN_OFFER:
        callback_answer.text = _("You made this offer: another supervisor decides it.")
        return
    if result.decision is Decision.ALREADY_DECIDED:
        callback_answer.text = _("This offer has already been decided.")
        return
    what = f"offer {callback_data.offer_id} of agent {result.agent_id}"
    await ctx.cases.record(case, f"supervisor:{supervisor}", "approval" if approve else "decline", what)
    ctx.audit.record("decision", "offer_approved" if approve else "offer_declined", case.chat_id, f"{what}: supervisor {supervisor}")
    await query.message.edit_reply_markup(reply_markup=None)
    if result.proposal is not None:
        await desk.post(case, _("Approved by supervisor {supervisor}.").format(supervisor=supervisor))
        await send_offer(case, result.proposal, ctx, desk, policy, query.message)
    else:
        await desk.post(case, _("Declined by supervisor {supervisor}: the offer was not sent to the cardholder.").format(supervisor=supervisor))


async def not_a_supervisor(query: CallbackQuery, callback_answer: CallbackAnswer) -> None:
    """An agent who is not a supervisor pressed Approve or Decline on an offer outside the policy."""
    callback_answer.text = _("Only a supervisor can approve or decline this offer.")


async def send_offer(case: Case, proposal: Proposal, ctx: UpdateContext, desk: Desk, policy: Policy, reply_to: Message) -> None:
    with desk.i18n.use_locale(case.locale):
        text = _("A person from the bank offers you this plan:") + "\n\n" + proposal_text(proposal)
        markup = proposal_keyboard(proposal)
    delivery = await desk.tell_cardholder(ctx.contacts, ctx.outbox, case, text, markup, COLLECTION)
    if delivery.status != "sent":
        await report(desk, case, delivery, policy, reply_to)
        return
    plan = proposal.plan
    summary = ngettext(
        "Offer sent: {months} month, {payments}; {total} in all, APR {rate}.",
        "Offer sent: {months} months, {payments}; {total} in all, APR {rate}.",
        plan.months,
    ).format(
        months=plan.months, payments=payments_text(plan, desk.locale),
        total=money(plan.total_paid, plan.currency, desk.locale), rate=percent(plan.annual_rate, desk.locale),
    ) if plan else _("Offer sent.")
    await reply_to.reply(summary)


async def proposal_decision(
    query: CallbackQuery,
    callback_data: ProposalAction,
    case: Case,
    ctx: UpdateContext,
    desk: Desk,
    policy: Policy,
    callback_answer: CallbackAnswer,
) -> None:
    assert isinstance(query.message, Message)
    account = await ctx.db.get(Account, case.account_pk) if case.account_pk else None
    if account is None:  # proposals are made for verified accounts only: this data was not a button's
        callback_answer.text = _("This button is no longer active.")
        return
    await ctx.cases.record(case, f"agent:{query.from_user.id}", "decision", f"{callback_data.action} offer {callback_data.offer_id}")
    if callback_data.action == "approve":
        try:
            proposal = await ctx.arrangements.approve(account, callback_data.offer_id, query.from_user.id)
        except OfferUnavailable:
            await query.message.reply(_("This proposal is no longer valid; send a new one with /offer."))
            return
        await query.message.edit_reply_markup(reply_markup=None)
        await send_offer(case, proposal, ctx, desk, policy, query.message)
        return
    await query.message.edit_reply_markup(reply_markup=None)
    if callback_data.action == "change":
        await query.message.reply(_("Send the cardholder another plan with /offer MONTHS [ANNUAL RATE]."))
    else:
        with desk.i18n.use_locale(case.locale):
            text = _("The bank cannot offer that plan. A person will talk with you about what is possible.")
        delivery = await desk.tell_cardholder(ctx.contacts, ctx.outbox, case, text, purpose=COLLECTION)
        if delivery.status == "sent":
            await query.message.reply(_("Declined; the cardholder was told."))
        else:
            await report(desk, case, delivery, policy, query.message)


# -- special situations: an agent flags the account, and the bank starts nothing more ----------------


async def flag_command(message: Message, command: CommandObject, ctx: UpdateContext, desk: Desk) -> None:
    """`/flag CASE deceased|bankruptcy|lawyer|cease` (in a case's topic the case may be left out);
    without the situation, its buttons."""
    words = (command.args or "").split()
    case = await case_named(words, message, ctx)
    if case is None or len(words) > 1 or (words and words[0] not in FLAGS):
        await message.reply(_("Usage: /flag CASE deceased|bankruptcy|lawyer|cease, for example /flag 12 lawyer"))
        return
    if not words:
        await message.reply(_("Case #{id}: which situation?").format(id=case.id), reply_markup=flag_keyboard(case, desk))
        return
    await set_flag(message, case, words[0], ctx, desk)


async def flag_chosen(query: CallbackQuery, callback_data: FlagAction, ctx: UpdateContext, desk: Desk, callback_answer: CallbackAnswer) -> None:
    case = await ctx.cases.get(callback_data.case_id)
    if case is None or callback_data.flag not in FLAGS or not isinstance(query.message, Message):
        callback_answer.text = _("This button is no longer active.")
        return
    await query.message.edit_reply_markup(reply_markup=None)
    await set_flag(query.message, case, callback_data.flag, ctx, desk, query.from_user.id)


async def unflag_command(message: Message, command: CommandObject, ctx: UpdateContext, desk: Desk) -> None:
    """`/unflag CASE` (or in the case's topic, `/unflag`)."""
    words = (command.args or "").split()
    case = await case_named(words, message, ctx)
    if case is None or words:
        await message.reply(_("Usage: /unflag CASE, for example /unflag 12"))
        return
    await set_flag(message, case, None, ctx, desk)


async def case_named(words: list[str], message: Message, ctx: UpdateContext) -> Case | None:
    """The case a desk command names by its number (taken off `words`), else the topic's case."""
    if words and words[0].lstrip("#").isdigit() and len(words[0]) < 10:
        return await ctx.cases.get(int(words.pop(0).lstrip("#")))
    if message.is_topic_message and message.message_thread_id is not None:
        return await ctx.cases.by_topic(message.message_thread_id)
    return None


async def set_flag(message: Message, case: Case, flag: str | None, ctx: UpdateContext, desk: Desk, agent_id: int | None = None) -> None:
    """Flag (or with None unflag) the case's account, recorded in the case and in the audit trail."""
    agent_id = agent_id or (message.from_user.id if message.from_user else 0)
    account = await ctx.db.get(Account, case.account_pk) if case.account_pk else None
    if account is None:
        await message.reply(_("No flag is possible: the person is not verified, so no account is known."))
        return
    if flag is None:
        flag = ctx.contacts.unflag(account)
        if flag is None:
            await message.reply(_("Account {account} has no flag.").format(account=escape(account.account_id)))
            return
        kind, text = "unflag", _("Account {account}: the flag ({flag}) is removed; the usual contact rules apply again.")
    else:
        ctx.contacts.flag(account, flag)
        kind, text = "flag", _(
            "Account {account} flagged: {flag}. The bank starts no messages to it, and everything its cardholder writes comes to a person."
        )
    await ctx.cases.record(case, f"agent:{agent_id}", kind, flag)
    ctx.audit.record("decision", f"account_{kind}", case.chat_id, f"{flag} by agent {agent_id}", account_pk=account.id)
    note = text.format(account=escape(account.account_id), flag=desk.flag_name(flag))
    await message.reply(note)
    if message.message_thread_id != case.topic_id:
        await desk.post(case, note)


def flag_keyboard(case: Case, desk: Desk) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for flag in FLAGS:
        builder.button(text=desk.flag_name(flag), callback_data=FlagAction(case_id=case.id, flag=flag))
    builder.adjust(1)
    return builder.as_markup()


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


async def report(desk: Desk, case: Case, delivery: Delivery, policy: Policy, reply_to: Message | None = None) -> None:
    """Tell the agent what became of a message to the cardholder that did not simply go: blocked,
    held (until when) or refused (why); in reply to the agent's message, or in the case's topic."""
    if delivery.status == "blocked":
        note: str | None = _("Not delivered: the cardholder has blocked the bot.")
    else:
        note = desk.decision_note(delivery.decision, policy.bank.timezone) if delivery.decision else None
    if note is None:
        return
    if reply_to is not None:
        await reply_to.reply(note)
    else:
        await desk.post(case, note)


def create_router(agent_chat_id: int | None) -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.id == agent_chat_id)
    router.callback_query.filter(F.message.chat.id == agent_chat_id)
    router.callback_query.register(
        supervisor_decision, SupervisorAction.filter(F.action.in_({"approve", "decline"})), IsSupervisor(), InCaseTopic()
    )
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
    router.callback_query.register(flag_chosen, FlagAction.filter())
    router.callback_query.register(not_a_supervisor, SupervisorAction.filter())
    router.callback_query.register(stale_button)
    router.message.register(queue, Command("queue"))
    router.message.register(flag_command, Command("flag"))
    router.message.register(unflag_command, Command("unflag"))
    router.message.register(note, Command("note"), InCaseTopic(), flags=owner)
    router.message.register(offer, Command("offer"), InCaseTopic(), flags=owner)
    router.message.register(resolve_command, Command("resolve"), InCaseTopic(), flags=owner)
    router.message.register(agent_wrote, InCaseTopic(), ~F.text.startswith("/"), flags=owner)
    return router
