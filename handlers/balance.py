"""/balance: what the cardholder owes, what happens next, and what waiting would cost."""

from __future__ import annotations

from decimal import Decimal

from aiogram import F, Router
from aiogram.filters import Command, MagicData
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from bot.context import UpdateContext
from bot.db.models import Account
from bot.domain.consequences import Outlook, outlook
from bot.domain.policy import Policy, Stage
from bot.domain.rates import annual_percent, daily_percent
from bot.formatting import day, days, money, percent, years
from bot.services.arrangements import ArrangementService
from handlers.keyboards import BALANCE, main_menu_keyboard
from handlers.prompts import reader_locale
from handlers.verify import disclosures


async def show_balance(message: Message, ctx: UpdateContext, policy: Policy) -> None:
    assert ctx.account is not None
    text = balance_text(ctx.account, ctx.arrangements, policy)
    if await ctx.cases.disputed(ctx.account.id):
        text = f"{under_review_text()}\n\n{text}"
    await message.answer(text, reply_markup=main_menu_keyboard())


def under_review_text() -> str:
    """Said above the figures while a dispute case is open on the account (what the contact gate does meanwhile)."""
    return _(
        "⚖️ Your dispute is open, so the amount is under review. Until your dispute case is closed, the bank "
        "sends you no collection messages in this chat on its own. The figures below are the account as it stands, "
        "the disputed amount included."
    )


def balance_text(account: Account, arrangements: ArrangementService, policy: Policy) -> str:
    locale = reader_locale()
    cash = lambda amount: money(amount, account.currency, locale)  # noqa: E731
    stage = policy.stage_for(account.days_past_due)
    lines = [
        _("Card ending {last4}: {days} days past due.").format(last4=account.card_last4, days=account.days_past_due),
        "",
        _("Overdue amount: {amount}").format(amount=cash(account.overdue_amount)),
        _("Minimum due: {amount}").format(amount=cash(account.minimum_due)),
        _("Statement balance: {amount}").format(amount=cash(account.statement_balance)),
        _("Late fee charged: {amount}").format(amount=cash(account.late_fee)),
        _("Interest: {rate}, about {amount} a day on your balance.").format(
            rate=interest_rate(account.daily_interest_rate, locale),
            amount=cash(account.statement_balance * account.daily_interest_rate),
        ),
        "",
        _("What happens next:"),
        *consequences(outlook(policy, account, arrangements.today()), stage, locale),
    ]
    waiting = arrangements.cost_of_waiting(account)
    lines += [
        "",
        _(
            "If nothing is paid in the next {days} days, the balance will be {balance}: {interest} of interest "
            "and {fees} of late fees more."
        ).format(
            days=waiting.days, balance=cash(waiting.balance_then), interest=cash(waiting.interest), fees=cash(waiting.fees)
        ),
    ]
    if waiting.stage_then is not None and waiting.stage_then != stage:
        lines.append(
            _("The account would then be {days} days past due.").format(days=waiting.dpd_then)
        )
    lines += [
        "",
        _("Paying the balance stops it from growing; a plan spreads it over fixed payments you know in advance. See «{plans}».").format(
            plans=_("🧾 Ways to pay")
        ),
    ]
    lines += [f"\n{text}" for text in disclosures(policy, account, "balance")]
    return "\n".join(lines)


def interest_rate(daily_rate: Decimal, locale: str) -> str:
    """The card's interest rate as the reader sees it: the annual rate first, the daily one beside
    it with every digit it has (the daily amounts are computed from it)."""
    return _("{annual} a year ({daily} a day)").format(
        annual=percent(annual_percent(daily_rate), locale), daily=percent(daily_percent(daily_rate), locale)
    )


def consequences(facts: Outlook, stage: Stage | None, locale: str) -> list[str]:
    """The truthful list of what applies at this stage, and what comes at the next one; no threats,
    and nothing the bank does not promise."""
    found = stage.consequences if stage else None
    bureau = facts.bureau
    name = bureau.rule.name(locale)
    lines = []
    if bureau.reported and bureau.paying_moves_the_date:
        lines.append(
            _(
                "• The overdue is reported to {bureau}. The record stays for {period} after the debt is repaid: "
                "if you pay today, it would be removed on {date}."
            ).format(bureau=name, period=years(bureau.rule.years, locale), date=day(bureau.record_ends, locale))
        )
    elif bureau.reported:
        lines.append(
            _(
                "• The overdue is reported to {bureau}. The record stays for {period} counted from {offset} after "
                "the delinquency began, that is until {date}, whether or not the debt is paid; once it is paid, "
                "the record shows the account as paid."
            ).format(
                bureau=name,
                period=years(bureau.rule.years, locale),
                offset=days(bureau.rule.delinquency_offset_days, locale),
                date=day(bureau.record_ends, locale),
            )
        )
    elif bureau.reported_from is not None:
        lines.append(
            _("• If the account reaches {days} days past due, the overdue is reported to {bureau}.").format(
                days=bureau.reported_from, bureau=name
            )
        )
    if found and found.interest:
        lines.append(_("• Interest keeps accruing every day until the balance is paid."))
    if found and found.late_fees:
        lines.append(_("• A late fee is charged for each missed due date."))
    if found and found.card_suspended:
        lines.append(_("• The card is suspended for new purchases until the account is brought current."))
    if facts.court_action:
        lines.append(
            _(
                "• The bank may consider asking a court to order repayment of the debt. You would be told of any "
                "claim and could present your side."
            )
        )
    return lines


def create_router() -> Router:
    router = Router(name=__name__)
    verified = MagicData(F.ctx.account.is_not(None))
    router.message.register(show_balance, Command("balance"), verified)
    router.message.register(show_balance, F.text == BALANCE, verified)
    return router
