"""The rules that follow the cardholder: one pack per jurisdiction, read from the policy file.

A pack decides when the bank may start a conversation (hours in the cardholder's own time zone,
caps, an opt-out notice), what is said about the credit bureau and legal action, how plans are
priced and rounded, the terms of a hardship agreement and how long records are kept. The packs
are data (`[jurisdictions.XX]` in the policy); this module only gives them types and the few
calculations they need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from bot.domain.dates import add_years

AFTER_REPAYMENT = "after_repayment"
"""The bureau keeps the record a number of years from the day the debt is repaid (CN, RU)."""
AFTER_DELINQUENCY = "after_delinquency"
"""The record stays a number of years from a day fixed by the delinquency; paying does not move it (US)."""
BUREAU_RULES = (AFTER_REPAYMENT, AFTER_DELINQUENCY)
ROUNDINGS = ("half_up", "down")
"""How a plan's per-period amount is rounded to the currency's unit."""
REMAINDERS = ("first", "last")
"""Which period takes what the rounding left over."""


@dataclass(frozen=True)
class Hours:
    start: time
    end: time
    """The end of the allowed time: 22:00 allows 21:59 and not 22:00."""

    def contains(self, moment: time) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class ContactRules:
    """When the bank may start a conversation, in the cardholder's own time zone."""

    working_days: Hours
    days_off: Hours
    weekly_days_off: frozenset[int]
    """ISO weekdays (1 Monday … 7 Sunday) that are days off."""
    holidays: frozenset[date]
    max_per_day: int | None
    max_per_week: int | None
    max_per_month: int | None
    opt_out_notice: bool
    """Every message the bank starts says how to stop them."""
    reply_window: timedelta
    """What the bot sends this soon after the cardholder wrote is a reply, not bank-started."""

    def hours_on(self, day: date) -> Hours:
        if day in self.holidays or day.isoweekday() in self.weekly_days_off:
            return self.days_off
        return self.working_days

    def next_allowed(self, moment: datetime, zone: ZoneInfo) -> datetime:
        """The first moment at or after `moment` inside the contact hours of the cardholder's zone
        (an aware datetime, in `zone`)."""
        local = moment.astimezone(zone)
        for offset in range(0, 15):
            day = local.date() + timedelta(days=offset)
            hours = self.hours_on(day)
            opens = datetime.combine(day, hours.start, zone)
            closes = datetime.combine(day, hours.end, zone)
            if offset == 0 and opens <= local < closes:
                return local
            if local < opens:
                return opens
        raise ValueError("no contact hours in the next two weeks")  # pragma: no cover - validated


@dataclass(frozen=True)
class BureauRule:
    """How long a negative credit-bureau record stays, and what the bureau is called."""

    rule: str
    """`AFTER_REPAYMENT` or `AFTER_DELINQUENCY`."""
    years: int
    delinquency_offset_days: int
    """For `AFTER_DELINQUENCY`: the period starts this many days after the delinquency began."""
    names: Mapping[str, str]
    """locale -> the bureau's name as a sentence uses it."""

    def name(self, locale: str) -> str:
        return self.names.get(locale) or self.names["en"]

    @property
    def paying_moves_the_date(self) -> bool:
        return self.rule == AFTER_REPAYMENT

    def record_ends(self, *, today: date, days_past_due: int, repaid_on: date | None = None) -> date:
        """The day the record would drop off: counted from the repayment (`repaid_on`, default
        today) or from the delinquency's start plus the offset, whatever is paid."""
        if self.rule == AFTER_REPAYMENT:
            return add_years(repaid_on or today, self.years)
        began = today - timedelta(days=days_past_due)
        return add_years(began + timedelta(days=self.delinquency_offset_days), self.years)


@dataclass(frozen=True)
class Threshold:
    """An account at least `min_days_past_due` behind and owing at least `min_overdue` (in its
    currency; a currency without an amount never meets it)."""

    min_days_past_due: int
    min_overdue: Mapping[str, Decimal]

    def met_by(self, *, days_past_due: int, overdue: Decimal, currency: str) -> bool:
        floor = self.min_overdue.get(currency)
        return floor is not None and days_past_due >= self.min_days_past_due and overdue >= floor


@dataclass(frozen=True)
class LegalRules:
    """What may be said about legal consequences; None: never said."""

    court_action: Threshold | None
    criminal_notice: Threshold | None


@dataclass(frozen=True)
class PlanConventions:
    method: str
    """How self-service plans are priced here: "flat" or "amortizing"."""
    rounding: str
    """`ROUNDINGS`: the per-period amount rounded half-up or down to the currency's unit."""
    remainder: str
    """`REMAINDERS`: the period that takes what rounding left."""


@dataclass(frozen=True)
class HardshipTerms:
    """The terms of a hardship agreement an agent offers."""

    fees_during_plan: bool
    """Whether late fees and overdue interest still accrue while the plan is kept."""
    ends_after_days_late: int
    """The agreement ends when a payment is this many days late."""
    stops_collection_messages: bool
    """While the plan is kept the bank starts no collection messages."""


@dataclass(frozen=True)
class Jurisdiction:
    code: str
    name: str
    contact: ContactRules
    credit_bureau: BureauRule
    legal: LegalRules
    plans: PlanConventions
    hardship: HardshipTerms
    retention_years: int
    """Audit, case and relay records of a closed account are kept this long, then purged."""
