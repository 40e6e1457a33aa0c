"""What the bot may truthfully tell a cardholder will happen to the account, from its pack.

The facts here are composed from the account's jurisdiction pack (`Policy.for_account`), its
collection stage and its figures; handlers only put them into words. The credit-bureau record
ends on the day the pack's rule gives: counted from the repayment (paying today gives a date) or
from the delinquency (a fixed day that paying does not move). Court action is mentioned only when
the stage allows legal action and the account meets the pack's `court_action` threshold; the
criminal-law conditions only to an account that meets the pack's `criminal_notice` threshold.
Nothing here promises what paying avoids: the bank's own rules promise no such thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from bot.domain.jurisdiction import BureauRule
from bot.domain.policy import Policy


@dataclass(frozen=True)
class BureauOutlook:
    rule: BureauRule
    reported: bool
    """The account's stage is reported to the bureau now."""
    reported_from: int | None
    """When not reported yet: the days past due from which it would be (None: no stage reports)."""
    record_ends: date
    """The day the record would drop off: if the debt were repaid today (`after_repayment`), or
    the day the delinquency fixed, whatever is paid (`after_delinquency`)."""

    @property
    def paying_moves_the_date(self) -> bool:
        return self.rule.paying_moves_the_date


@dataclass(frozen=True)
class Outlook:
    """What applies to one account: its bureau record and the legal steps that may be mentioned."""

    jurisdiction: str
    bureau: BureauOutlook
    court_action: bool
    """The bot may say that the bank may take the account to court."""
    criminal_notice: bool
    """The bot may explain when the criminal law applies (the pack's conditions are met)."""

    @property
    def thresholds_met(self) -> frozenset[str]:
        """The pack's legal thresholds this account meets, by name (`LegalRules` fields)."""
        met = {"court_action": self.court_action, "criminal_notice": self.criminal_notice}
        return frozenset(name for name, yes in met.items() if yes)


def outlook(policy: Policy, account: Any, today: date) -> Outlook:
    """The outlook of `account` (anything with `days_past_due`, `overdue_amount` and `currency`)
    under `policy`, the policy as it applies to that account."""
    days_past_due = account.days_past_due
    figures = {"days_past_due": days_past_due, "overdue": account.overdue_amount, "currency": account.currency}
    pack = policy.rules
    stage = policy.stage_for(days_past_due)
    reported = bool(stage and stage.consequences.credit_bureau)
    first_reported = next((item.min_dpd for item in policy.stages if item.consequences.credit_bureau), None)
    court, criminal = pack.legal.court_action, pack.legal.criminal_notice
    return Outlook(
        jurisdiction=pack.code,
        bureau=BureauOutlook(
            rule=pack.credit_bureau,
            reported=reported,
            reported_from=None if reported else first_reported,
            record_ends=pack.credit_bureau.record_ends(today=today, days_past_due=days_past_due),
        ),
        court_action=bool(stage and stage.consequences.legal_action and court and court.met_by(**figures)),
        criminal_notice=bool(criminal and criminal.met_by(**figures)),
    )

