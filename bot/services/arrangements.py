"""Offers and arrangements: what the cardholder is offered, and what they accept, recorded first.

An offer is stored exactly as computed. Accepting it reloads it by id, checks that it belongs to
the verified account, has not expired and still matches the balance, recomputes it with the
calculator and only then records the arrangement. The unique offer id on the arrangement makes a
second Accept of the same offer harmless.

An agent's offer stays within the account's jurisdiction pack (one of its terms, at most its rate
for that term), or waits for a supervisor: stored as pending, it does not exist for the cardholder
until a supervisor approves it, and a conditional update of its `made_by` decides it once.
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
    AMORTIZING,
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
"""made_by of a bot's proposal outside self-service, until the case's agent approves it."""
PENDING = "pending:agent:"
"""made_by prefix (and the agent's id) of an agent's offer outside the pack, until a supervisor decides."""
DECLINED = "declined:agent:"
"""made_by prefix of an agent's offer a supervisor declined: it never reaches the cardholder."""


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


class OutsidePack(str, enum.Enum):
    """Why an agent's offer needs a supervisor."""

    TERM = "term"  # not one of the pack's terms
    RATE = "rate"  # above the pack's rate for the term


@dataclass(frozen=True)
class AgentPlan:
    """A plan an agent wants to offer, priced and checked against the account's pack, not yet stored."""

    plan: InstallmentPlan
    outside: OutsidePack | None  # None: within the pack, it may go to the cardholder at once
    terms: tuple[int, ...]  # the pack's terms (self-service and agent-only)
    rate: Decimal  # the offer's annualized rate, in percent
    limit: Decimal | None  # the pack's annualized rate for the term, in percent; None: not a pack term


class Decision(enum.Enum):
    APPROVED = "approved"
    DECLINED = "declined"
    ALREADY_DECIDED = "already_decided"  # decided before, by this supervisor or another
    OWN_OFFER = "own_offer"  # the supervisor made the offer: another supervisor decides it


@dataclass(frozen=True)
class SupervisorDecision:
    decision: Decision
    agent_id: int | None  # who made the offer
    proposal: Proposal | None = None  # APPROVED: what goes to the cardholder


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

    def agent_plan(self, account: Account, months: int, apr: Decimal | None) -> AgentPlan:
        """What an agent offers: a term of the account's pack at its rate (apr None), or an
        amortizing plan at the annual rate the agent sets, checked against the pack.

        Within the pack: one of its terms, at most its rate for that term (its APR, or for a flat
        term the annualized rate of its flat plan). A term outside the pack needs a rate.
        """
        policy = self.policy.for_account(account)
        conventions = policy.rules.plans
        terms = policy.terms.offered(agent=True)
        balance, currency, today = account.statement_balance, account.currency, self.today()
        if apr is None:
            plan = plan_for_term(balance, currency, months, policy, start=today, agent=True)
            return AgentPlan(plan, None, terms, plan.annual_rate, plan.annual_rate)
        plan = make_plan(
            AMORTIZING, balance, currency, months, apr, start=today,
            rounding=conventions.rounding, remainder=conventions.remainder,
        )
        offered = (plan.rate * 100).quantize(Decimal("0.01"))
        if months not in terms:
            return AgentPlan(plan, OutsidePack.TERM, terms, offered, None)
        method, pack_rate = policy.plan_terms(months, agent=True)
        if method == AMORTIZING:
            limit, above = (pack_rate * 100).quantize(Decimal("0.01")), plan.rate > pack_rate
        else:
            limit = plan_for_term(balance, currency, months, policy, start=today, agent=True).annual_rate
            above = plan.annual_rate > limit
        return AgentPlan(plan, OutsidePack.RATE if above else None, terms, offered, limit)

    async def agent_offer(self, account: Account, offer: AgentPlan, agent_id: int, chat_id: int | None) -> Proposal:
        """Store an agent's offer: the cardholder's at once within the pack, else a supervisor's to decide."""
        made_by = f"agent:{agent_id}" if offer.outside is None else f"{PENDING}{agent_id}"
        return await self._store_plan(account, chat_id, offer.plan, made_by=made_by)

    async def supervise(self, account: Account, offer_id: int, supervisor_id: int, approve: bool) -> SupervisorDecision:
        """A supervisor approves or declines an agent's offer outside the pack, once.

        Everything is checked again here: the offer is this account's and still pending, the
        supervisor did not make it, and (to approve) it has not expired and still matches the
        balance. A conditional update decides it: of two decisions at once, or a double tap, one
        changes it and the others find it decided. Approved, it stays valid for the policy's offer
        time from now (the wait for a supervisor is not the cardholder's).
        """
        offer = await self.session.get(Offer, offer_id, populate_existing=True)
        if offer is None or offer.account_pk != account.id:
            raise OfferUnavailable(Unavailable.NOT_FOUND)
        agent_id = _pending_agent(offer.made_by)
        if agent_id is None:
            decided = _decided_agent(offer.made_by)
            return SupervisorDecision(Decision.ALREADY_DECIDED, decided)
        if agent_id == supervisor_id:
            return SupervisorDecision(Decision.OWN_OFFER, agent_id)
        proposal = await self.proposal(account, offer_id, approving=offer.made_by) if approve else None
        values: dict[str, Any] = {"made_by": f"agent:{agent_id}" if approve else f"{DECLINED}{agent_id}"}
        if approve:
            values["expires_at"] = self.clock.now() + timedelta(minutes=self.policy.offer_expiry_minutes)
        changed = await self.session.execute(
            update(Offer)
            .where(Offer.id == offer_id, Offer.made_by == offer.made_by)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if changed.rowcount != 1:
            return SupervisorDecision(Decision.ALREADY_DECIDED, agent_id)
        return SupervisorDecision(Decision.APPROVED if approve else Decision.DECLINED, agent_id, proposal)

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
        proposal = await self.proposal(account, offer_id, approving=NEEDS_APPROVAL)
        offer = await self.session.get(Offer, offer_id)
        assert offer is not None
        offer.made_by = f"agent:{agent_id}"
        return proposal

    async def proposal(self, account: Account, offer_id: int, approving: str | None = None) -> Proposal:
        """Reload an offer for this account and recompute it; raise `OfferUnavailable` otherwise.

        A proposal waiting for an agent's or a supervisor's approval, or declined, does not exist for
        the cardholder; `approving` is the `made_by` of the offers the caller may approve.
        """
        offer = await self.session.get(Offer, offer_id)
        if offer is None or offer.account_pk != account.id:
            raise OfferUnavailable(Unavailable.NOT_FOUND)
        allowed = offer.made_by == approving if approving is not None else _for_the_cardholder(offer.made_by)
        if not allowed:
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


def _for_the_cardholder(made_by: str) -> bool:
    """The bot's own offers and those an agent made or approved; not those waiting or declined."""
    return made_by == "bot" or made_by.startswith("agent:")


def _pending_agent(made_by: str) -> int | None:
    """The agent whose offer waits for a supervisor, or None when it is not waiting."""
    return int(made_by.removeprefix(PENDING)) if made_by.startswith(PENDING) else None


def _decided_agent(made_by: str) -> int | None:
    for prefix in ("agent:", DECLINED):
        if made_by.startswith(prefix):
            return int(made_by.removeprefix(prefix))
    return None


def installment_row(installment: Installment) -> dict[str, Any]:
    """The columns of an installment not yet stored, for one multi-row INSERT."""
    return {column: getattr(installment, column) for column in INSTALLMENT_COLUMNS}


INSTALLMENT_COLUMNS = ("arrangement_id", "number", "due_date", "amount", "principal", "fee", "paid")
