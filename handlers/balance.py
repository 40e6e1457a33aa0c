"""/balance: what the cardholder owes, what happens next, and what waiting would cost."""

from __future__ import annotations

from datetime import date

from aiogram import F, Router
from aiogram.filters import Command, MagicData
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from bot.domain.dates import add_years
from bot.context import UpdateContext
from bot.db.models import Account
from bot.domain.policy import Policy, Stage
from bot.formatting import day, money, percent, years
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
        _("Interest: {rate} a day, about {amount} a day on your balance.").format(
            rate=percent(account.daily_interest_rate * 100, locale),
            amount=cash(account.statement_balance * account.daily_interest_rate),
        ),
        "",
        _("What happens next:"),
        *consequences(arrangements, policy, stage, locale),
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
            _("The account would then be {days} days past due, in collection stage {stage}.").format(
                days=waiting.dpd_then, stage=waiting.stage_then.name
            )
        )
    lines += ["", _("Paying now, or agreeing a plan you can keep, stops this from growing. See «{plans}».").format(plans=_("🧾 Ways to pay"))]
    lines += [f"\n{text}" for text in disclosures(policy, account.currency, "balance")]
    return "\n".join(lines)


def consequences(arrangements: ArrangementService, policy: Policy, stage: Stage | None, locale: str) -> list[str]:
    """The truthful list of what applies at this stage, and what comes at the next one; no threats."""
    found = stage.consequences if stage else None
    lines = []
    drop_off = add_years(arrangements.today(), policy.credit_record_years)
    if found and found.credit_bureau:
        lines.append(
            _(
                "• The overdue is reported to the credit bureau. The record stays for {period} after the "
                "debt is repaid: if you pay today, it would be removed on {date}."
            ).format(period=years(policy.credit_record_years, locale), date=day(drop_off, locale))
        )
    else:
        reported = next((item for item in policy.stages if item.consequences.credit_bureau), None)
        if reported is not None:
            lines.append(
                _("• If the account reaches {days} days past due, the overdue is reported to the credit bureau.").format(
                    days=reported.min_dpd
                )
            )
    if found and found.interest:
        lines.append(_("• Interest keeps accruing every day until the balance is paid."))
    if found and found.late_fees:
        lines.append(_("• A late fee is charged for each missed due date."))
    if found and found.card_suspended:
        lines.append(_("• The card is suspended for new purchases until the account is brought current."))
    if found and found.legal_action:
        lines.append(
            _(
                "• At this stage the bank may pass the account to its legal department. Paying or agreeing a plan "
                "avoids this."
            )
        )
    return lines


def create_router() -> Router:
    router = Router(name=__name__)
    verified = MagicData(F.ctx.account.is_not(None))
    router.message.register(show_balance, Command("balance"), verified)
    router.message.register(show_balance, F.text == BALANCE, verified)
    return router
