"""Offers and arrangements: what the cardholder is offered, and what they accept, recorded first.

An offer is stored exactly as computed. Accepting it reloads it by id, checks that it belongs to
the verified account, has not expired and still matches the balance, recomputes it with the
calculator and only then records the arrangement. The unique offer id on the arrangement makes a
second Accept of the same offer harmless.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Account, Arrangement, Installment, Offer
from bot.db.upsert import insert_for
from bot.domain.calculator import (
    LAST,
    AccountFigures,
    InstallmentPlan,
    Negotiation,
    PromiseCheck,
    WaitingCost,
    available_plans,
    check_promise_date,
    cost_of_waiting,
    currency_exponent,
    make_plan,
    negotiate,
    plan_for_term,
)
from bot.domain.errors import DomainError
from bot.domain.policy import Policy
from bot.services.payments import break_overdue_promises

WAITING_DAYS = 30
NEEDS_APPROVAL = "bot:needs_approval"


class OfferKind(str, enum.Enum):
    FULL = "full"
    CURRENT = "current"
    PLAN = "plan"
    PROMISE = "promise"


class Unavailable(enum.Enum):
    """Why an offer cannot be shown or accepted; forged and foreign offers look like missing ones."""

    NOT_FOUND = "not_found"
    EXPIRED = "expired"
    BALANCE_CHANGED = "balance_changed"
    ALREADY_ACCEPTED = "already_accepted"


class OfferUnavailable(DomainError):
    def __init__(self, reason: Unavailable) -> None:
        super().__init__(f"offer unavailable: {reason.value}")
        self.reason = reason


@dataclass(frozen=True)
class Proposal:
    """An offer as the cardholder sees it: the stored offer and the figures behind it."""

    offer_id: int
    kind: OfferKind
    currency: str
    amount: Decimal  # what is paid in all (a plan: the total paid)
    due_date: date  # the first (or only) payment's due date
    plan: InstallmentPlan | None = None
    waived_fee: Decimal = Decimal(0)


@dataclass(frozen=True)
class _Draft:
    """An offer computed and not yet stored."""

    kind: OfferKind
    terms: dict[str, Any]
    proposal: Proposal
    made_by: str


@dataclass(frozen=True)
class Comparison:
    """Paying only the minimum, for side-by-side comparison with the plans and paying in full."""

    months: int | None  # None: the minimum never clears the balance within the horizon
    total_paid: Decimal


@dataclass(frozen=True)
class PlanMenu:
    full: Proposal
    current: Proposal | None  # None when nothing is overdue beyond the full balance
    plans: tuple[Proposal, ...]
    minimum_only: Comparison


@dataclass(frozen=True)
class BudgetAnswer:
    negotiation: Negotiation
    proposal: Proposal | None  # the plan that fits, ready to accept


@dataclass(frozen=True)
class Accepted:
    arrangement: Arrangement
    installments: tuple[Installment, ...]
    proposal: Proposal


@dataclass(frozen=True)
class NeedsReplacement:
    """The account already has an active arrangement; accepting again must say "replace it"."""

    current: Arrangement


@dataclass(frozen=True)
class CurrentArrangement:
    arrangement: Arrangement
    installments: tuple[Installment, ...]

    @property
    def next_due(self) -> Installment | None:
        return next((item for item in self.installments if item.paid < item.amount), None)


def figures_of(account: Account) -> AccountFigures:
    return AccountFigures(
        currency=account.currency,
        overdue_amount=account.overdue_amount,
        statement_balance=account.statement_balance,
        daily_interest_rate=account.daily_interest_rate,
        late_fee=account.late_fee,
        days_past_due=account.days_past_due,
    )


def minimum_only(account: Account, policy: Policy, horizon_months: int = 600) -> Comparison:
    """Months and total to clear the balance paying only each month's minimum (30-day months)."""
    balance = account.statement_balance
    floor = policy.minimum_installment.for_plan(account.currency, balance)
    monthly_rate = account.daily_interest_rate * 30
    unit = Decimal(1).scaleb(-currency_exponent(account.currency))
    total = Decimal(0)
    for month in range(1, horizon_months + 1):
        balance += (balance * monthly_rate).quantize(unit)
        payment = min(balance, max(balance * policy.minimum_payment_share, floor)).quantize(unit)
        total += payment
        balance -= payment
        if balance <= 0:
            return Comparison(months=month, total_paid=total)
    return Comparison(months=None, total_paid=total)


class ArrangementService:
    def __init__(self, session: AsyncSession, policy: Policy, clock: Clock) -> None:
        self.session = session
        self.policy = policy
        self.clock = clock

    def today(self) -> date:
        return self.clock.now().date()

    def cost_of_waiting(self, account: Account) -> WaitingCost:
        return cost_of_waiting(figures_of(account), WAITING_DAYS, self.policy)

    def full_amount(self, account: Account) -> tuple[Decimal, Decimal, date]:
        """The balance to pay in full, the late fee waived for paying it in time, and that deadline."""
        waiver = self.policy.late_fee_waiver
        if waiver.allowed and waiver.condition == "pay_in_full" and waiver.within_days:
            due = self.today() + timedelta(days=waiver.within_days)
            waived = min(account.late_fee, account.statement_balance)
            return account.statement_balance - waived, waived, due
        return account.statement_balance, Decimal(0), self.today() + timedelta(days=self.policy.promise_max_days)

    async def menu(self, account: Account, chat_id: int | None) -> PlanMenu:
        """Every way out the policy offers this account, stored as offers in one INSERT."""
        amount, waived, due = self.full_amount(account)
        drafts = [self._draft(OfferKind.FULL, account.currency, {"amount": str(amount), "waived_fee": str(waived), "due_date": due.isoformat()})]
        if 0 < account.overdue_amount < amount:
            drafts.append(self._draft(OfferKind.CURRENT, account.currency, {"amount": str(account.overdue_amount), "due_date": due.isoformat()}))
        has_current = len(drafts) == 2
        for plan in available_plans(account.statement_balance, account.currency, self.policy, start=self.today()):
            if plan.payment >= self.policy.minimum_installment.for_plan(account.currency, plan.principal):
                drafts.append(self._plan_draft(account.currency, plan))
        stored = await self._store_drafts(account, chat_id, drafts)
        full, current = stored[0], stored[1] if has_current else None
        plans = stored[2:] if has_current else stored[1:]
        return PlanMenu(full=full, current=current, plans=tuple(plans), minimum_only=minimum_only(account, self.policy))

    async def for_budget(self, account: Account, per_month: Decimal, chat_id: int | None) -> BudgetAnswer:
        negotiation = negotiate(per_month, account.statement_balance, account.currency, self.policy, start=self.today())
        proposal = await self._store_plan(account, chat_id, negotiation.plan) if negotiation.plan else None
        return BudgetAnswer(negotiation, proposal)

    async def agent_offer(
        self, account: Account, months: int, apr: Decimal | None, agent_id: int, chat_id: int | None
    ) -> Proposal:
        """A plan an agent offers: any term of the policy, agent-only ones included, at the policy's
        rate or at an annual rate the agent sets (amortizing, as hardship plans are)."""
        if apr is None:
            plan = plan_for_term(account.statement_balance, account.currency, months, self.policy, start=self.today(), agent=True)
        else:
            self.policy.plan_terms(months, agent=True)
            plan = make_plan("amortizing", account.statement_balance, account.currency, months, apr, start=self.today())
        proposal = await self._store_plan(account, chat_id, plan, made_by=f"agent:{agent_id}")
        return proposal

    async def plan_for_approval(self, account: Account, plan: InstallmentPlan, chat_id: int | None) -> Proposal:
        """A plan outside self-service, stored for an agent to approve before the cardholder sees it."""
        proposal = await self._store_plan(account, chat_id, plan, made_by=NEEDS_APPROVAL)
        return proposal

    def longest_plan(self, account: Account) -> InstallmentPlan | None:
        """The lowest monthly payment the policy allows at all (its longest agent-only term)."""
        if not self.policy.terms.agent_only:
            return None
        months = max(self.policy.terms.agent_only)
        return plan_for_term(account.statement_balance, account.currency, months, self.policy, start=self.today(), agent=True)

    async def waiver_for_approval(self, account: Account, chat_id: int | None) -> Proposal:
        """Bringing the account current with the late fee waived, which only an agent may grant."""
        waived = min(account.late_fee, account.overdue_amount)
        due = self.today() + timedelta(days=self.policy.promise_max_days)
        terms = {"amount": str(account.overdue_amount - waived), "waived_fee": str(waived), "due_date": due.isoformat()}
        proposal = await self._store(account, chat_id, OfferKind.CURRENT, terms, made_by=NEEDS_APPROVAL)
        return proposal

    def is_agent_term(self, months: int) -> bool:
        return months in self.policy.terms.agent_only

    def check_promise(self, promised: date) -> PromiseCheck:
        return check_promise_date(promised, self.today(), self.policy)

    async def promise(
        self, account: Account, promised: date, amount: Decimal, chat_id: int | None, needs_approval: bool = False
    ) -> Proposal:
        """A promise to pay; one dated later than the policy allows waits for an agent's approval."""
        terms = {"amount": str(amount), "due_date": promised.isoformat()}
        made_by = NEEDS_APPROVAL if needs_approval else "bot"
        proposal = await self._store(account, chat_id, OfferKind.PROMISE, terms, made_by=made_by)
        return proposal

    async def approve(self, account: Account, offer_id: int, agent_id: int) -> Proposal:
        """An agent approves a proposal outside self-service: from now on the cardholder may accept it."""
        proposal = await self.proposal(account, offer_id, approving=True)
        offer = await self.session.get(Offer, offer_id)
        assert offer is not None
        offer.made_by = f"agent:{agent_id}"
        return proposal

    async def proposal(self, account: Account, offer_id: int, approving: bool = False) -> Proposal:
        """Reload an offer for this account and recompute it; raise `OfferUnavailable` otherwise.

        A proposal still waiting for an agent's approval does not exist for the cardholder.
        """
        offer = await self.session.get(Offer, offer_id)
        if offer is None or offer.account_pk != account.id or (offer.made_by == NEEDS_APPROVAL) != approving:
            raise OfferUnavailable(Unavailable.NOT_FOUND)
        if await self.session.scalar(select(Arrangement.id).where(Arrangement.offer_id == offer.id)):
            raise OfferUnavailable(Unavailable.ALREADY_ACCEPTED)
        if offer.balance_version != account.balance_version:
            raise OfferUnavailable(Unavailable.BALANCE_CHANGED)
        if self.clock.now() >= offer.expires_at:
            raise OfferUnavailable(Unavailable.EXPIRED)
        proposal = self._recompute(offer, account)
        if json.loads(offer.figures) != self._figures(proposal):
            raise OfferUnavailable(Unavailable.BALANCE_CHANGED)
        return proposal

    async def accept(self, account: Account, offer_id: int, chat_id: int | None, replace: bool) -> Accepted | NeedsReplacement:
        proposal = await self.proposal(account, offer_id)
        active = await self.session.scalar(
            select(Arrangement).where(Arrangement.account_pk == account.id, Arrangement.status == "active")
        )
        now = self.clock.now()
        if active is not None:
            if not replace:
                return NeedsReplacement(active)
            replaced = await self.session.execute(
                update(Arrangement)
                .where(Arrangement.id == active.id, Arrangement.status == "active")
                .values(status="replaced", ended_at=now)
            )
            if replaced.rowcount != 1:  # replaced meanwhile from another chat of this account
                raise OfferUnavailable(Unavailable.ALREADY_ACCEPTED)
        insert_once = insert_for(self.session)
        arrangement_id = await self.session.scalar(
            insert_once(Arrangement)
            .values(
                account_pk=account.id, offer_id=offer_id, kind=proposal.kind.value, status="active",
                currency=proposal.currency, total=proposal.amount, accepted_at=now, chat_id=chat_id,
            )
            .on_conflict_do_nothing()
            .returning(Arrangement.id)
        )
        if arrangement_id is None:  # accepted meanwhile from another chat of this account
            if active is not None:  # ours was the replacement, so no other is active: it stays
                await self.session.execute(
                    update(Arrangement).where(Arrangement.id == active.id).values(status="active", ended_at=None)
                )
            raise OfferUnavailable(Unavailable.ALREADY_ACCEPTED)
        arrangement = await self.session.get(Arrangement, arrangement_id)
        assert arrangement is not None
        installments = tuple(self._installments(arrangement.id, proposal))
        await self.session.execute(insert(Installment), [installment_row(item) for item in installments])
        return Accepted(arrangement, installments, proposal)

    async def record_agreement(self, arrangement: Arrangement, text: str) -> None:
        arrangement.agreement = text

    async def current(self, account: Account) -> CurrentArrangement | None:
        """The active arrangement, or else the most recent one (a broken promise stays visible)."""
        await break_overdue_promises(self.session, self.today(), account.id)
        arrangement = await self.session.scalar(
            select(Arrangement)
            .where(Arrangement.account_pk == account.id, Arrangement.status != "replaced")
            .order_by((Arrangement.status == "active").desc(), Arrangement.accepted_at.desc(), Arrangement.id.desc())
            .limit(1)
        )
        if arrangement is None:
            return None
        installments = await self.session.scalars(
            select(Installment).where(Installment.arrangement_id == arrangement.id).order_by(Installment.number)
        )
        return CurrentArrangement(arrangement, tuple(installments))

    async def _store_plan(
        self, account: Account, chat_id: int | None, plan: InstallmentPlan, made_by: str = "bot"
    ) -> Proposal:
        (stored,) = await self._store_drafts(account, chat_id, [self._plan_draft(account.currency, plan, made_by)])
        return stored

    async def _store(
        self,
        account: Account,
        chat_id: int | None,
        kind: OfferKind,
        terms: dict[str, Any],
        made_by: str = "bot",
    ) -> Proposal:
        (stored,) = await self._store_drafts(account, chat_id, [self._draft(kind, account.currency, terms, None, made_by)])
        return stored

    def _plan_draft(self, currency: str, plan: InstallmentPlan, made_by: str = "bot") -> _Draft:
        terms = {
            "method": plan.method, "months": plan.months, "rate": str(plan.rate), "principal": str(plan.principal),
            "start": plan.start.isoformat(), "rounding": plan.rounding, "remainder": plan.remainder,
        }
        return self._draft(OfferKind.PLAN, currency, terms, plan, made_by)

    def _draft(
        self, kind: OfferKind, currency: str, terms: dict[str, Any], plan: InstallmentPlan | None = None, made_by: str = "bot"
    ) -> _Draft:
        return _Draft(kind, terms, self._proposal(kind, currency, terms, plan), made_by)

    async def _store_drafts(self, account: Account, chat_id: int | None, drafts: list[_Draft]) -> list[Proposal]:
        """Stores the offers in one statement and gives each proposal its offer's id."""
        now = self.clock.now()
        expires_at = now + timedelta(minutes=self.policy.offer_expiry_minutes)
        rows = [
            {
                "account_pk": account.id,
                "kind": draft.kind.value,
                "terms": json.dumps(draft.terms),
                "figures": json.dumps(self._figures(draft.proposal)),
                "policy_version": self.policy.version,
                "balance_version": account.balance_version,
                "made_by": draft.made_by,
                "chat_id": chat_id,
                "created_at": now,
                "expires_at": expires_at,
            }
            for draft in drafts
        ]
        # RETURNING gives no order on SQLite; drafts alike in kind and terms are alike in all.
        stored = await self.session.execute(insert(Offer).returning(Offer.id, Offer.kind, Offer.terms), rows)
        ids: dict[tuple[str, str], list[int]] = {}
        for offer_id, kind, terms in stored:
            ids.setdefault((kind, terms), []).append(offer_id)
        return [
            Proposal(**{**draft.proposal.__dict__, "offer_id": ids[row["kind"], row["terms"]].pop()})
            for draft, row in zip(drafts, rows, strict=True)
        ]

    def _recompute(self, offer: Offer, account: Account) -> Proposal:
        terms = json.loads(offer.terms)
        kind = OfferKind(offer.kind)
        plan = None
        if kind is OfferKind.PLAN:
            plan = make_plan(
                terms["method"], terms["principal"], account.currency, terms["months"], Decimal(terms["rate"]),
                start=date.fromisoformat(terms["start"]), rounding=terms.get("rounding"),
                remainder=terms.get("remainder", LAST),
            )
        proposal = self._proposal(kind, account.currency, terms, plan)
        return Proposal(**{**proposal.__dict__, "offer_id": offer.id})

    @staticmethod
    def _proposal(kind: OfferKind, currency: str, terms: dict[str, Any], plan: InstallmentPlan | None) -> Proposal:
        if plan is not None:
            return Proposal(0, kind, currency, plan.total_paid, plan.schedule[0].due_date, plan)
        return Proposal(
            0, kind, currency, Decimal(terms["amount"]), date.fromisoformat(terms["due_date"]),
            waived_fee=Decimal(terms.get("waived_fee", "0")),
        )

    @staticmethod
    def _figures(proposal: Proposal) -> dict[str, Any]:
        if proposal.plan is not None:
            return proposal.plan.as_dict()
        return {"amount": str(proposal.amount), "due_date": proposal.due_date.isoformat(), "waived_fee": str(proposal.waived_fee)}

    @staticmethod
    def _installments(arrangement_id: int, proposal: Proposal) -> list[Installment]:
        if proposal.plan is None:
            return [
                Installment(
                    arrangement_id=arrangement_id, number=1, due_date=proposal.due_date, amount=proposal.amount,
                    principal=proposal.amount, fee=Decimal(0), paid=Decimal(0),
                )
            ]
        return [
            Installment(
                arrangement_id=arrangement_id, number=row.number, due_date=row.due_date, amount=row.payment,
                principal=row.principal, fee=row.fee, paid=Decimal(0),
            )
            for row in proposal.plan.schedule
        ]


def installment_row(installment: Installment) -> dict[str, Any]:
    """The columns of an installment not yet stored, for one multi-row INSERT."""
    return {column: getattr(installment, column) for column in INSTALLMENT_COLUMNS}


INSTALLMENT_COLUMNS = ("arrangement_id", "number", "due_date", "amount", "principal", "fee", "paid")
