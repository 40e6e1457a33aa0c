"""/plans and /myplan: the ways out, negotiation, promises to pay, and acceptance."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html import escape
from typing import Any

from datetime import date, timedelta
from decimal import Decimal

from aiogram import F, Router
from aiogram.filters import Command, Filter, MagicData, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from aiogram.utils.keyboard import InlineKeyboardBuilder
from babel.lists import format_list

from bot.context import UpdateContext
from bot.courier import markup_json, send_message
from bot.services.outbox import Outbox
from bot.db.models import Account
from bot.domain.amounts import AmountTooLong, InvalidAmount, TooManyDecimals, in_currency, monthly_budget, parse_amount
from bot.desk import Desk
from bot.domain.calculator import InstallmentPlan, OfferReason, PromiseReason
from bot.domain.dates import parse_date
from bot.domain.errors import InvalidDate
from bot.domain.policy import Policy
from bot.formatting import currency_name, day, money, percent
from bot.services.arrangements import (
    Accepted,
    ArrangementService,
    CurrentArrangement,
    OfferKind,
    OfferUnavailable,
    PlanMenu,
    Proposal,
    Unavailable,
)
from bot.services.cases import CaseService
from bot.settings import Settings
from handlers.balance import under_review_text
from handlers.common import bank_contact_text
from handlers.handoff import hand_off
from handlers.keyboards import (
    MY_PLAN,
    PLANS,
    OfferAction,
    PersonRequest,
    PlanMenuAction,
    PromiseAmount,
    PromiseDay,
    ProposalAction,
    main_menu_keyboard,
)
from handlers.prompts import reader_locale
from handlers.states import Negotiation, PromiseToPay

PROMISE_DAY_BUTTONS = 7


# -- rendering ---------------------------------------------------------------------------------


def cash(amount: Decimal, currency: str) -> str:
    return money(amount, currency, reader_locale())


def proposal_title(proposal: Proposal) -> str:
    if proposal.plan is not None:
        return _("{months} months, {payment} a month").format(
            months=proposal.plan.months, payment=cash(proposal.plan.payment, proposal.currency)
        )
    titles = {
        OfferKind.FULL: _("Pay in full: {amount}"),
        OfferKind.CURRENT: _("Bring the account current: {amount}"),
        OfferKind.PROMISE: _("Promise to pay {amount}"),
    }
    return titles[proposal.kind].format(amount=cash(proposal.amount, proposal.currency))


def proposal_text(proposal: Proposal) -> str:
    locale = reader_locale()
    plan = proposal.plan
    if plan is None:
        lines = [
            proposal_title(proposal),
            _("Pay by: {date}").format(date=day(proposal.due_date, locale)),
        ]
        if proposal.waived_fee:
            lines.append(
                _("The late fee of {fee} is waived if you pay by this date.").format(
                    fee=cash(proposal.waived_fee, proposal.currency)
                )
            )
        return "\n".join(lines)
    lines = [
        _("Installment plan: {months} months").format(months=plan.months),
        plan_rate(plan, locale),
        _("Monthly payment: {amount}").format(amount=cash(plan.payment, proposal.currency)),
        _("Total interest: {amount}").format(amount=cash(plan.total_fee, proposal.currency)),
        _("Total to pay: {amount}").format(amount=cash(plan.total_paid, proposal.currency)),
        "",
        _("Schedule:"),
    ]
    lines += [
        f"{row.number}. {day(row.due_date, locale)} — {cash(row.payment, proposal.currency)}" for row in plan.schedule
    ]
    return "\n".join(lines)


def plan_rate(plan: InstallmentPlan, locale: str) -> str:
    """The annualized rate first (monthly IRR x 12: the APR, 年化利率, the ПСК of 353-FZ), and beside
    it how the interest is charged: a flat plan's monthly rate, every digit shown."""
    if plan.method == "flat":
        return _("Annualized rate (APR): {rate} (interest of {monthly} of the amount each month)").format(
            rate=percent(plan.annual_rate, locale), monthly=percent(plan.rate * 100, locale)
        )
    return _("Annualized rate (APR): {rate} (interest on the remaining balance)").format(rate=percent(plan.annual_rate, locale))


def menu_text(account: Account, menu: PlanMenu) -> str:
    currency = account.currency
    lines = [_("Your options for the card ending {last4}:").format(last4=account.card_last4), ""]
    lines.append("• " + proposal_text(menu.full).replace("\n", " · "))
    if menu.current is not None:
        lines.append("• " + proposal_text(menu.current).replace("\n", " · "))
    if menu.plans:
        lines.append("• " + _("Installment plans: choose one below to see its schedule."))
    lines += ["", _("Compared side by side:")]
    minimum = menu.minimum_only
    if minimum.months is None:
        lines.append(_("Paying only the minimum: the balance would not be cleared."))
    else:
        lines.append(
            _("Paying only the minimum: about {months} months, {total} in all.").format(
                months=minimum.months, total=cash(minimum.total_paid, currency)
            )
        )
    for proposal in menu.plans:
        assert proposal.plan is not None
        lines.append(
            _("{months}-month plan: APR {rate}, {total} in all.").format(
                months=proposal.plan.months,
                total=cash(proposal.plan.total_paid, currency),
                rate=percent(proposal.plan.annual_rate, reader_locale()),
            )
        )
    lines.append(_("Paying in full now: {total}.").format(total=cash(menu.full.amount, currency)))
    return "\n".join(lines)


def menu_keyboard(menu: PlanMenu, account: Account, settings: Settings) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("💳 Pay {amount} now").format(amount=cash(menu.full.amount, account.currency)),
        url=payment_url(settings, account, menu.full.amount),
    )
    choices = [menu.full, *([menu.current] if menu.current else []), *menu.plans]
    for proposal in choices:
        builder.button(text=proposal_title(proposal), callback_data=OfferAction(action="view", offer_id=proposal.offer_id))
    builder.button(text=_("💬 I can pay … a month"), callback_data=PlanMenuAction(action="budget"))
    builder.button(text=_("📅 Promise to pay by a date"), callback_data=PlanMenuAction(action="promise"))
    builder.button(text=_("🙋 Talk to a person"), callback_data=PersonRequest())
    builder.adjust(1)
    return builder.as_markup()


def proposal_keyboard(proposal: Proposal, replace: bool = False) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if replace:
        builder.button(text=_("🔁 Replace my current arrangement"), callback_data=OfferAction(action="replace", offer_id=proposal.offer_id))
    else:
        builder.button(text=_("✅ Accept"), callback_data=OfferAction(action="accept", offer_id=proposal.offer_id))
    if proposal.kind is OfferKind.CURRENT and not proposal.waived_fee:
        builder.button(text=_("🙏 Ask to waive the late fee"), callback_data=PlanMenuAction(action="waiver"))
    builder.button(text=_("« All options"), callback_data=PlanMenuAction(action="menu"))
    builder.adjust(1)
    return builder.as_markup()


def payment_url(settings: Settings, account: Account, amount: Decimal) -> str:
    return settings.payment_url_template.format(account_id=account.account_id, amount=amount)


def unavailable_text(reason: Unavailable) -> str:
    return {
        Unavailable.NOT_FOUND: _("This offer is not available. Here are your current options."),
        Unavailable.EXPIRED: _("This offer has expired. Here are your current options."),
        Unavailable.BALANCE_CHANGED: _("Your balance has changed since this offer was made. Here are your current options."),
        Unavailable.ALREADY_ACCEPTED: _("You have already accepted this offer. See «{my_plan}».").format(my_plan=_("📌 My plan")),
    }[reason]


def arrangement_text(current: CurrentArrangement, locale: str) -> str:
    arrangement = current.arrangement
    currency = arrangement.currency
    kinds = {
        "full": _("Paying in full"),
        "current": _("Bringing the account current"),
        "plan": _("Installment plan of {count} payments").format(count=len(current.installments)),
        "promise": _("Promise to pay"),
    }
    statuses = {
        "active": _("active"),
        "completed": _("completed, thank you"),
        "broken": _("not kept: the promised amount was not paid by the date"),
    }
    lines = [
        _("{kind}: {status}").format(kind=kinds[arrangement.kind], status=statuses.get(arrangement.status, arrangement.status)),
        _("Accepted on {date}, {total} in all.").format(
            date=day(arrangement.accepted_at.date(), locale), total=money(arrangement.total, currency, locale)
        ),
    ]
    paid = sum((item.paid for item in current.installments), Decimal(0))
    lines.append(_("Paid so far: {amount}").format(amount=money(paid, currency, locale)))
    upcoming = current.next_due
    if arrangement.status == "active" and upcoming is not None:
        lines.append(
            _("Next payment: {amount} by {date}.").format(
                amount=money(upcoming.amount - upcoming.paid, currency, locale), date=day(upcoming.due_date, locale)
            )
        )
    if arrangement.status == "broken":
        lines.append(_("You can make a new arrangement in «{plans}», or talk to a person.").format(plans=_("🧾 Ways to pay")))
    return "\n".join(lines)


# -- handlers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settling:
    """What a handler negotiating one verified account's debt works with, for one update."""

    account: Account
    arrangements: ArrangementService
    cases: CaseService
    outbox: Outbox
    desk: Desk | None
    policy: Policy


async def add_settling(
    handler: Callable[[Any, dict[str, Any]], Awaitable[Any]], event: Any, data: dict[str, Any]
) -> Any:
    """Gives this router's handlers `settling` (they only run for a verified chat)."""
    ctx: UpdateContext = data["ctx"]
    assert ctx.account is not None
    data["settling"] = Settling(ctx.account, ctx.arrangements, ctx.cases, ctx.outbox, data.get("desk"), data["policy"])
    return await handler(event, data)


async def show_plans(message: Message, state: FSMContext, settling: Settling, settings: Settings) -> None:
    await state.set_state(None)
    account = settling.account
    menu = await settling.arrangements.menu(account, message.chat.id)
    text = menu_text(account, menu)
    if await settling.cases.disputed(account.id):
        text = f"{under_review_text()}\n\n{text}"
    await message.answer(text, reply_markup=menu_keyboard(menu, account, settings))


async def plans_button(query: CallbackQuery, state: FSMContext, settling: Settling, settings: Settings) -> None:
    if isinstance(query.message, Message):
        await show_plans(query.message, state, settling, settings)


async def view_offer(
    query: CallbackQuery, callback_data: OfferAction, state: FSMContext, settling: Settling, settings: Settings
) -> None:
    assert isinstance(query.message, Message)
    try:
        proposal = await settling.arrangements.proposal(settling.account, callback_data.offer_id)
    except OfferUnavailable as unavailable:
        await query.message.answer(unavailable_text(unavailable.reason))
        await show_plans(query.message, state, settling, settings)
        return
    await query.message.answer(proposal_text(proposal), reply_markup=proposal_keyboard(proposal))


async def accept_offer(
    query: CallbackQuery,
    callback_data: OfferAction,
    state: FSMContext,
    settling: Settling,
    settings: Settings,
    callback_answer: CallbackAnswer,
) -> None:
    assert isinstance(query.message, Message)
    account, arrangements, policy = settling.account, settling.arrangements, settling.policy
    try:
        result = await arrangements.accept(account, callback_data.offer_id, query.message.chat.id, replace=callback_data.action == "replace")
    except OfferUnavailable as unavailable:
        callback_answer.text = unavailable_text(unavailable.reason)
        if unavailable.reason is not Unavailable.ALREADY_ACCEPTED:
            await query.message.answer(unavailable_text(unavailable.reason))
            await show_plans(query.message, state, settling, settings)
        return
    if not isinstance(result, Accepted):
        proposal = await arrangements.proposal(account, callback_data.offer_id)
        await query.message.answer(
            _("You already have an active arrangement. Do you want to replace it with this one?"),
            reply_markup=proposal_keyboard(proposal, replace=True),
        )
        return
    first = result.installments[0]
    locale = reader_locale()
    lines = [
        _("Done: your arrangement is recorded."),
        _("First payment: {amount} by {date}.").format(
            amount=money(first.amount, account.currency, locale), date=day(first.due_date, locale)
        ),
    ]
    if len(result.installments) > 1:
        lines += ["", _("Schedule:")]
        lines += [f"{item.number}. {day(item.due_date, locale)} — {money(item.amount, account.currency, locale)}" for item in result.installments]
    builder = InlineKeyboardBuilder()
    builder.button(text=_("💳 Pay {amount} now").format(amount=money(first.amount, account.currency, locale)), url=payment_url(settings, account, first.amount))
    proposal = result.proposal
    chat_id, arrangement_id = query.message.chat.id, result.arrangement.id
    confirmations = []
    if proposal.plan is not None and arrangements.is_agent_term(proposal.plan.months):
        agreement = agreement_text(account, proposal, policy)
        await arrangements.record_agreement(result.arrangement, agreement)
        confirmations.append(await settling.outbox.message(f"agreement:{arrangement_id}", chat_id, agreement))
    confirmations.append(
        await settling.outbox.message(f"accepted:{arrangement_id}", chat_id, "\n".join(lines), markup_json(builder.as_markup()))
    )
    for confirmation in confirmations:  # recorded with the arrangement: sent now, or by the courier
        if confirmation is not None:
            await send_message(query.bot or query.message.bot, settling.outbox, confirmation)


def payments_text(plan: InstallmentPlan, locale: str) -> str:
    """The payments as the schedule has them: the regular one, and a first or a last that differs."""
    rows = plan.schedule
    amount = lambda value: money(value, plan.currency, locale)  # noqa: E731
    first = rows[0].payment if len(rows) > 1 and rows[0].payment != plan.payment else None
    last = rows[-1].payment if len(rows) > 1 and rows[-1].payment != plan.payment else None
    count = len(rows) - (first is not None) - (last is not None)
    parts = []
    if first is not None:
        parts.append(_("a first payment of {amount}").format(amount=amount(first)))
    if count:
        parts.append(
            ngettext("{count} monthly payment of {amount}", "{count} monthly payments of {amount}", count).format(
                count=count, amount=amount(plan.payment)
            )
        )
    if last is not None:
        parts.append(_("a last payment of {amount}").format(amount=amount(last)))
    return format_list(parts, locale=locale)


def agreement_text(account: Account, proposal: Proposal, policy: Policy) -> str:
    """The written terms of a hardship (personalized) installment plan: its figures from the schedule,
    its terms from the account's jurisdiction pack, and the language it is written in."""
    plan = proposal.plan
    assert plan is not None
    locale = reader_locale()
    terms = policy.rules.hardship
    total = sum((row.payment for row in plan.schedule), Decimal(0))
    cost = sum((row.fee for row in plan.schedule), Decimal(0))
    if plan.method == "flat":
        charge = _("Cost: {rate} a month of the balance covered, {fee} in all.").format(
            rate=percent(plan.rate * 100, locale), fee=cash(cost, plan.currency)
        )
    else:
        charge = _("Interest: {rate} a year on the remaining balance, {interest} in all.").format(
            rate=percent(plan.rate * 100, locale), interest=cash(cost, plan.currency)
        )
    if terms.fees_during_plan:
        fees = _("Late fees and overdue interest are still charged under the card's terms while the plan runs.")
    else:
        fees = _("No late fees or overdue interest are charged while you keep to the schedule.")
    if terms.stops_collection_messages:
        contact = _("While you keep to the schedule, the bank sends you no collection messages.")
    else:
        contact = _("While the plan runs, the bank may still send you messages about the account.")
    days = terms.ends_after_days_late
    return "\n".join(
        [
            _("Hardship installment agreement with {bank}").format(bank=escape(policy.bank.name)),
            _("Account: {account}, card ending {last4}.").format(account=escape(account.account_id), last4=account.card_last4),
            _("Balance covered: {amount} ({currency}).").format(amount=cash(plan.principal, plan.currency), currency=plan.currency),
            _("Repayment: {payments}, from {first} to {last}; {total} in all.").format(
                payments=payments_text(plan, locale),
                first=day(plan.schedule[0].due_date, locale),
                last=day(plan.schedule[-1].due_date, locale),
                total=cash(total, plan.currency),
            ),
            charge,
            fees,
            _("Your undertaking: to pay each installment by its date, and not to apply for new credit cards until the plan is settled."),
            ngettext(
                "If a payment is more than {days} day late, the agreement ends and the remaining balance becomes due under the card's ordinary terms.",
                "If a payment is more than {days} days late, the agreement ends and the remaining balance becomes due under the card's ordinary terms.",
                days,
            ).format(days=days),
            contact,
            # Translators: state the language of this translation itself, e.g. "本协议以简体中文订立。"
            _("This agreement is written in English. The bank keeps a record of it with your account."),
        ]
    )


async def ask_budget(query: CallbackQuery, state: FSMContext, settling: Settling) -> None:
    assert isinstance(query.message, Message)
    await state.set_state(Negotiation.typing_monthly_amount)
    await query.message.answer(
        _("How much can you pay each month? Type an amount, for example {example}.").format(
            example=cash(Decimal(1500), settling.account.currency)
        )
    )


def amount_refusal(error: InvalidAmount, currency: str, example: Decimal) -> str:
    """Why a typed amount is not taken, and how to type it in the account's currency."""
    if isinstance(error, TooManyDecimals):
        nearest = cash(error.nearest if error.nearest > 0 else example, currency)
        name = currency_name(currency, reader_locale())
        if error.decimals == 0:
            return _("The currency of your account, {currency}, has no decimals: please type a whole number, for example {example}.").format(
                currency=name, example=nearest
            )
        return _("The currency of your account, {currency}, has at most {decimals} decimals: please type an amount such as {example}.").format(
            currency=name, decimals=error.decimals, example=nearest
        )
    if isinstance(error, AmountTooLong):
        return _("That number is too long for an amount. Please type a number, for example {example}.").format(
            example=cash(example, currency)
        )
    return _("I couldn't read that as an amount. Please type a number, for example {example}.").format(
        example=cash(example, currency)
    )


async def read_amount(message: Message, account: Account, example: Decimal) -> Decimal | None:
    """The amount the cardholder typed, in the account's currency, or None after asking again politely."""
    try:
        return parse_amount(message.text or "", reader_locale(), account.currency)
    except InvalidAmount as error:
        await message.answer(amount_refusal(error, account.currency, example))
        return None


async def budget_typed(message: Message, state: FSMContext, settling: Settling) -> None:
    per_month = await read_amount(message, settling.account, example=Decimal(1500))
    if per_month is None:
        return
    await state.set_state(None)
    await answer_budget(message, per_month, settling)


class SaysMonthlyBudget(Filter):
    """Free text such as "I can pay 1,500 a month": gives the handler `said`, the number in it."""

    async def __call__(self, message: Message) -> bool | dict[str, Decimal]:
        said = monthly_budget(message.text or "", reader_locale())
        return {"said": said} if said is not None else False


async def budget_said(message: Message, said: Decimal, settling: Settling) -> None:
    """Free text such as "I can pay 1,500 a month", once the amount is one the account's currency holds."""
    try:
        per_month = in_currency(said, settling.account.currency)
    except InvalidAmount as error:
        await message.answer(amount_refusal(error, settling.account.currency, Decimal(1500)))
        return
    await answer_budget(message, per_month, settling)


async def answer_budget(message: Message, per_month: Decimal, settling: Settling) -> None:
    """The shortest plan that fits what the cardholder can pay, or a counter-offer and a person."""
    account, arrangements = settling.account, settling.arrangements
    answer = await arrangements.for_budget(account, per_month, message.chat.id)
    if answer.proposal is not None:
        await message.answer(
            _("With {amount} a month, this is the shortest plan that fits:").format(amount=cash(per_month, account.currency))
            + "\n\n" + proposal_text(answer.proposal),
            reply_markup=proposal_keyboard(answer.proposal),
        )
        return
    negotiation = answer.negotiation
    reasons = {
        OfferReason.BELOW_MINIMUM_INSTALLMENT: _("The smallest monthly payment I can offer is {minimum}."),
        OfferReason.NEEDS_LONGER_TERM_THAN_SELF_SERVICE: _(
            "A longer plan could fit, but only a person at the bank can offer it."
        ),
        OfferReason.NO_TERM_FITS: _("Even the longest plan I can offer costs more than that each month."),
        OfferReason.AMOUNT_TOO_SMALL_FOR_INSTALLMENTS: _("The balance is too small to split; paying it in full is the simplest."),
    }
    assert negotiation.reason is not None
    lines = [reasons[negotiation.reason].format(minimum=cash(negotiation.minimum_installment, account.currency))]
    if negotiation.closest is not None:
        lines.append(
            _("The closest I can offer is {months} months at {payment} a month.").format(
                months=negotiation.closest.months, payment=cash(negotiation.closest.max_payment, account.currency)
            )
        )
    lines.append(_("A person at the bank can look at your situation with you."))
    builder = InlineKeyboardBuilder()
    builder.button(text=_("🙋 Talk to a person"), callback_data=PersonRequest())
    builder.button(text=_("« All options"), callback_data=PlanMenuAction(action="menu"))
    builder.adjust(1)
    await message.answer("\n".join(lines), reply_markup=builder.as_markup())
    plan = negotiation.agent_plan
    if plan is None and negotiation.reason in (OfferReason.NO_TERM_FITS, OfferReason.BELOW_MINIMUM_INSTALLMENT):
        plan = arrangements.longest_plan(account)
    if plan is not None and settling.desk is not None:
        proposal = await arrangements.plan_for_approval(account, plan, message.chat.id)
        await ask_for_approval(message, proposal, settling, settling.desk)


async def ask_waiver(query: CallbackQuery, settling: Settling) -> None:
    assert isinstance(query.message, Message)
    if settling.desk is None or settling.account.late_fee <= 0:
        await query.message.answer(bank_contact_text(settling.policy, settling.account))
        return
    proposal = await settling.arrangements.waiver_for_approval(settling.account, query.message.chat.id)
    await ask_for_approval(query.message, proposal, settling, settling.desk)


async def ask_for_approval(message: Message, proposal: Proposal, settling: Settling, desk: Desk) -> None:
    """Outside self-service: an agent approves, changes or declines what the calculator proposes."""
    case = await hand_off(
        message,
        reason="outside_policy",
        account=settling.account,
        cases=settling.cases,
        desk=desk,
        policy=settling.policy,
    )
    if case is None:
        return
    builder = InlineKeyboardBuilder()
    with desk.speaking():
        text = _("The cardholder asks for something outside self-service. Proposal:") + "\n\n" + proposal_text(proposal)
        for action, label in (("approve", _("✅ Approve")), ("change", _("✏️ Change")), ("decline", _("✖️ Decline"))):
            builder.button(text=label, callback_data=ProposalAction(action=action, offer_id=proposal.offer_id))
    await desk.post(case, text, builder.as_markup())


async def ask_promise_date(query: CallbackQuery, state: FSMContext, settling: Settling) -> None:
    assert isinstance(query.message, Message)
    arrangements, policy = settling.arrangements, settling.policy
    await state.set_state(PromiseToPay.choosing_date)
    await query.message.answer(
        _("When will you pay? Choose a day, or type a date up to {latest}.").format(
            latest=day(arrangements.today() + timedelta(days=policy.promise_max_days), reader_locale())
        ),
        reply_markup=promise_day_keyboard(arrangements, policy),
    )


def promise_day_keyboard(arrangements: ArrangementService, policy: Policy) -> InlineKeyboardMarkup:
    locale = reader_locale()
    builder = InlineKeyboardBuilder()
    for days in range(1, min(PROMISE_DAY_BUTTONS, policy.promise_max_days) + 1):
        builder.button(text=day(arrangements.today() + timedelta(days=days), locale), callback_data=PromiseDay(days=days))
    builder.adjust(2)
    return builder.as_markup()


async def promise_day_chosen(query: CallbackQuery, callback_data: PromiseDay, state: FSMContext, settling: Settling) -> None:
    assert isinstance(query.message, Message)
    promised = settling.arrangements.today() + timedelta(days=callback_data.days)
    await promise_date(query.message, state, settling, promised, desk=None)


async def promise_date_typed(message: Message, state: FSMContext, settling: Settling) -> None:
    arrangements = settling.arrangements
    try:
        promised = parse_date(message.text or "", reader_locale(), today=arrangements.today())
    except InvalidDate:
        await message.answer(
            _("I couldn't read that as a date. Please choose a day below or type a date such as {example}.").format(
                example=day(arrangements.today() + timedelta(days=3), reader_locale())
            ),
            reply_markup=promise_day_keyboard(arrangements, settling.policy),
        )
        return
    await promise_date(message, state, settling, promised, settling.desk)


async def promise_date(message: Message, state: FSMContext, settling: Settling, promised: date, desk: Desk | None) -> None:
    account, arrangements = settling.account, settling.arrangements
    check = arrangements.check_promise(promised)
    locale = reader_locale()
    later = check.reason is PromiseReason.TOO_FAR and desk is not None
    if check.reason is PromiseReason.OUT_OF_REACH:
        await message.answer(
            _("That is too far ahead. Please choose a day below or type a date from today to {latest}.").format(latest=day(check.latest, locale)),
            reply_markup=promise_day_keyboard(arrangements, settling.policy),
        )
        return
    if later:
        await message.answer(
            _("That is later than I can agree on my own, so a person at the bank will need to approve it.")
        )
    elif not check.allowed:
        await message.answer(
            _("Please choose a date from today to {latest}. For a later date, talk to a person.").format(latest=day(check.latest, locale)),
            reply_markup=InlineKeyboardBuilder().button(text=_("🙋 Talk to a person"), callback_data=PersonRequest()).as_markup(),
        )
        return
    await state.update_data(promise_date=promised.isoformat())
    await state.set_state(PromiseToPay.choosing_amount)
    builder = InlineKeyboardBuilder()
    builder.button(text=_("Minimum due: {amount}").format(amount=cash(account.minimum_due, account.currency)), callback_data=PromiseAmount(choice="minimum"))
    builder.button(text=_("Overdue amount: {amount}").format(amount=cash(account.overdue_amount, account.currency)), callback_data=PromiseAmount(choice="overdue"))
    builder.adjust(1)
    await message.answer(
        _("How much will you pay by {date}? Choose below or type an amount of at least {minimum}.").format(
            date=day(promised, locale), minimum=cash(account.minimum_due, account.currency)
        ),
        reply_markup=builder.as_markup(),
    )


async def promise_amount_chosen(
    query: CallbackQuery, callback_data: PromiseAmount, state: FSMContext, settling: Settling
) -> None:
    assert isinstance(query.message, Message)
    account = settling.account
    amount = account.overdue_amount if callback_data.choice == "overdue" else account.minimum_due
    await promise_amount(query.message, state, amount, settling)


async def promise_amount_typed(message: Message, state: FSMContext, settling: Settling) -> None:
    amount = await read_amount(message, settling.account, example=settling.account.minimum_due)
    if amount is None:
        return
    await promise_amount(message, state, amount, settling)


async def promise_amount(message: Message, state: FSMContext, amount: Decimal, settling: Settling) -> None:
    account, arrangements, desk = settling.account, settling.arrangements, settling.desk
    if amount < account.minimum_due or amount > account.statement_balance:
        await message.answer(
            _("Please choose an amount from {minimum} to {maximum}.").format(
                minimum=cash(account.minimum_due, account.currency), maximum=cash(account.statement_balance, account.currency)
            )
        )
        return
    data = await state.get_data()
    if "promise_date" not in data:
        await state.set_state(None)
        await message.answer(_("Let's start again: choose «{plans}».").format(plans=_("🧾 Ways to pay")))
        return
    promised = date.fromisoformat(data["promise_date"])
    await state.set_state(None)
    await state.update_data(promise_date=None)
    check = arrangements.check_promise(promised)
    if check.reason is PromiseReason.TOO_FAR and desk is not None:
        proposal = await arrangements.promise(account, promised, amount, message.chat.id, needs_approval=True)
        await ask_for_approval(message, proposal, settling, desk)
        return
    if not check.allowed:
        await message.answer(_("That date is no longer possible. Please choose «{plans}» again.").format(plans=_("🧾 Ways to pay")))
        return
    proposal = await arrangements.promise(account, promised, amount, message.chat.id)
    await message.answer(proposal_text(proposal), reply_markup=proposal_keyboard(proposal))


async def show_my_plan(message: Message, settling: Settling) -> None:
    current = await settling.arrangements.current(settling.account)
    if current is None:
        await message.answer(
            _("You have no arrangement yet. See «{plans}» to choose one.").format(plans=_("🧾 Ways to pay")),
            reply_markup=main_menu_keyboard(),
        )
        return
    text = arrangement_text(current, reader_locale())
    if await settling.cases.disputed(settling.account.id):
        text = f"{under_review_text()}\n\n{text}"
    await message.answer(text, reply_markup=main_menu_keyboard())


def create_router() -> Router:
    router = Router(name=__name__)
    verified = MagicData(F.ctx.account.is_not(None))
    router.message.filter(verified)
    router.callback_query.filter(verified)
    router.message.middleware(add_settling)
    router.callback_query.middleware(add_settling)
    router.message.register(show_plans, Command("plans"))
    router.message.register(show_plans, F.text == PLANS)
    router.message.register(show_my_plan, Command("myplan"))
    router.message.register(show_my_plan, F.text == MY_PLAN)
    router.callback_query.register(plans_button, PlanMenuAction.filter(F.action == "menu"))
    router.callback_query.register(view_offer, OfferAction.filter(F.action == "view"))
    router.callback_query.register(accept_offer, OfferAction.filter(F.action.in_({"accept", "replace"})))
    router.callback_query.register(ask_budget, PlanMenuAction.filter(F.action == "budget"))
    router.callback_query.register(ask_waiver, PlanMenuAction.filter(F.action == "waiver"))
    router.message.register(budget_typed, Negotiation.typing_monthly_amount, F.text)
    router.message.register(budget_said, StateFilter(None), F.text, SaysMonthlyBudget())
    router.callback_query.register(ask_promise_date, PlanMenuAction.filter(F.action == "promise"))
    router.callback_query.register(promise_day_chosen, PromiseDay.filter(), PromiseToPay.choosing_date)
    router.message.register(promise_date_typed, PromiseToPay.choosing_date, F.text)
    router.callback_query.register(
        promise_amount_chosen, PromiseAmount.filter(F.choice.in_({"minimum", "overdue"})), PromiseToPay.choosing_amount
    )
    router.message.register(promise_amount_typed, PromiseToPay.choosing_amount, F.text)
    return router
