"""Retention: the records of a closed account are purged once its jurisdiction's period has passed.

An account is *closed* when the bank's figures show nothing owed and nothing is under way: its
`Account.closed_at` is set (the import of accounts or payments that brought the balance and the
overdue amount to zero set it; an import that makes either owed again clears it), both amounts are
still zero, it has no active arrangement and no open case. A record is past retention when the
account's closing and the record's own time are both older than the pack's `retention_years`: the
period runs from whichever is later. Younger records, and every record of an account that is not
closed, are left as they are.

What becomes of a record past retention:

* ``audit_events`` filed under the account: deleted (nothing refers to them);
* a resolved case whose last activity (resolution, events, relays) is past retention: its
  ``case_events`` (triggers, relayed messages, notes) and ``relays`` are deleted, and the ``cases``
  row stays anonymised, without account, chat or outcome text, so that the desk's counts (cases by
  reason, handling times, ratings) still add up;
* ``offers`` never accepted: deleted; ``arrangements`` that ended, and the ``offers`` they
  accepted: anonymised (no chat, no agreement text), the schedule staying with the account as the
  bank's books have it; an arrangement's id stays taken, since outbox keys name it;
* ``outbox`` messages recorded for the account and sent: their text cleared (the key stays, so
  nothing is sent twice);
* ``chats`` verified for the account and quiet since: the link removed (the chat's language and
  opt-out stay);
* ``accounts``: the cardholder's claim to have paid cleared.

Like the imports, this is offline work with sessions of its own, not an update's: it commits its
batches itself, each a short transaction. Accounts are read `ACCOUNT_BATCH` at a time (by id) and
rows changed `batch_size` at a time with ``… WHERE id IN (SELECT id … LIMIT n)``, so neither memory
nor a transaction grows with the tables. A real run holds the ``purge`` lease (`bot.leases`),
renewed before every batch: a second run at the same time is refused, one after it finds nothing
left to do. A dry run counts the same rows with the same conditions and changes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Executable, Select, and_, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from bot.clock import Clock
from bot.db.models import Account, Arrangement, AuditEvent, Case, CaseEvent, ChatProfile, Offer, OutboxMessage, Relay
from bot.domain.dates import add_years
from bot.domain.policy import Policy
from bot.leases import Lease, process_holder
from bot.services.cases import OPEN
from bot.services.outbox import MAX_ATTEMPTS

ACCOUNT_BATCH = 500
BATCH_SIZE = 5000
"""Rows changed by one statement, in one transaction."""
LEASE_NAME = "purge"
LEASE_TTL = timedelta(minutes=10)
"""Renewed before every batch: a purge that died is taken over by the next one after this long."""


class PurgeRefused(Exception):
    """Another purge holds the lease (it is running, or died less than `LEASE_TTL` ago)."""


Rows = Callable[[Sequence[int], datetime], Select[Any]]
"""The ids of a table's rows to purge, for accounts of one pack and that pack's cutoff."""


@dataclass(frozen=True)
class Step:
    table: str
    action: str
    key: Any
    """The table's primary key column: a batch is the rows whose key is among `rows`, up to the batch size."""
    rows: Rows
    change: Callable[[ColumnElement[bool]], Executable]
    """The statement that purges the rows matching its argument."""


def _closed_accounts(latest_cutoff: datetime) -> Select[Any]:
    """Accounts that may be closed long enough for some pack; `Purge._accounts` decides per account, by its pack."""
    columns = Account.__table__.c
    wanted = ("id", "currency", "jurisdiction", "closed_at", "statement_balance", "overdue_amount")
    active = aliased(Arrangement)
    open_case = aliased(Case)
    return select(*(columns[name] for name in wanted if name in columns)).where(
        Account.closed_at.is_not(None),
        Account.closed_at <= latest_cutoff,
        ~exists().where(active.account_pk == Account.id, active.status == "active"),
        ~exists().where(open_case.account_pk == Account.id, open_case.status.in_(OPEN)),
    )


def _audit(ids: Sequence[int], cutoff: datetime) -> Select[Any]:
    return select(AuditEvent.id).where(AuditEvent.account_pk.in_(ids), AuditEvent.at <= cutoff)


def _cases(ids: Sequence[int], cutoff: datetime) -> Select[Any]:
    """Resolved cases whose every event and relay is past the cutoff."""
    young_event = aliased(CaseEvent)
    young_relay = aliased(Relay)
    return select(Case.id).where(
        Case.account_pk.in_(ids),
        Case.status == "resolved",
        Case.created_at <= cutoff,
        Case.resolved_at <= cutoff,
        ~exists().where(young_event.case_id == Case.id, young_event.at > cutoff).correlate(Case),
        ~exists()
        .where(young_relay.case_id == Case.id, or_(young_relay.created_at > cutoff, young_relay.sent_at > cutoff))
        .correlate(Case),
    )


def _case_events(ids: Sequence[int], cutoff: datetime) -> Select[Any]:
    return select(CaseEvent.id).where(CaseEvent.case_id.in_(_cases(ids, cutoff)))


def _relays(ids: Sequence[int], cutoff: datetime) -> Select[Any]:
    return select(Relay.id).where(Relay.case_id.in_(_cases(ids, cutoff)))


def _ended(arrangement: Any, cutoff: datetime) -> ColumnElement[bool]:
    return and_(
        arrangement.status != "active",
        arrangement.accepted_at <= cutoff,
        func.coalesce(arrangement.ended_at, arrangement.accepted_at) <= cutoff,
    )


def _offers_not_accepted(ids: Sequence[int], cutoff: datetime) -> Select[Any]:
    accepted = aliased(Arrangement)
    return select(Offer.id).where(
        Offer.account_pk.in_(ids),
        Offer.created_at <= cutoff,
        Offer.expires_at <= cutoff,
        ~exists().where(accepted.offer_id == Offer.id).correlate(Offer),
    )


def _arrangements(ids: Sequence[int], cutoff: datetime) -> Select[Any]:
    return select(Arrangement.id).where(
        Arrangement.account_pk.in_(ids),
        _ended(Arrangement, cutoff),
        or_(Arrangement.chat_id.is_not(None), Arrangement.agreement.is_not(None)),
    )


def _offers_accepted(ids: Sequence[int], cutoff: datetime) -> Select[Any]:
    accepted = aliased(Arrangement)
    return select(Offer.id).where(
        Offer.account_pk.in_(ids),
        Offer.chat_id.is_not(None),
        exists().where(accepted.offer_id == Offer.id, _ended(accepted, cutoff)).correlate(Offer),
    )


def _outbox(ids: Sequence[int], cutoff: datetime) -> Select[Any]:
    return select(OutboxMessage.id).where(
        OutboxMessage.account_pk.in_(ids),
        OutboxMessage.created_at <= cutoff,
        or_(OutboxMessage.sent_at.is_not(None), OutboxMessage.attempts >= MAX_ATTEMPTS),
        or_(OutboxMessage.text != "", OutboxMessage.reply_markup.is_not(None)),
    )


def _chats(ids: Sequence[int], cutoff: datetime) -> Select[Any]:
    return select(ChatProfile.chat_id).where(
        ChatProfile.account_pk.in_(ids), ChatProfile.verified_at <= cutoff, ChatProfile.last_seen_at <= cutoff
    )


def _payment_claims(ids: Sequence[int], cutoff: datetime) -> Select[Any]:
    return select(Account.id).where(Account.id.in_(ids), Account.payment_claimed_at <= cutoff)


STEPS: tuple[Step, ...] = (
    Step("audit_events", "deleted", AuditEvent.id, _audit, lambda rows: delete(AuditEvent).where(rows)),
    Step("case_events", "deleted", CaseEvent.id, _case_events, lambda rows: delete(CaseEvent).where(rows)),
    Step("relays", "deleted", Relay.id, _relays, lambda rows: delete(Relay).where(rows)),
    Step(
        "cases", "anonymised", Case.id, _cases,
        lambda rows: update(Case).where(rows).values(account_pk=None, chat_id=0, outcome=None),
    ),
    Step("offers", "deleted", Offer.id, _offers_not_accepted, lambda rows: delete(Offer).where(rows)),
    Step(
        "arrangements", "anonymised", Arrangement.id, _arrangements,
        lambda rows: update(Arrangement).where(rows).values(chat_id=None, agreement=None),
    ),
    Step("offers", "anonymised", Offer.id, _offers_accepted, lambda rows: update(Offer).where(rows).values(chat_id=None)),
    Step(
        "outbox", "anonymised", OutboxMessage.id, _outbox,
        lambda rows: update(OutboxMessage).where(rows).values(text="", reply_markup=None),
    ),
    Step(
        "chats", "unlinked", ChatProfile.chat_id, _chats,
        lambda rows: update(ChatProfile).where(rows).values(account_pk=None, verified_at=None),
    ),
    Step(
        "accounts", "payment claim cleared", Account.id, _payment_claims,
        lambda rows: update(Account).where(rows).values(payment_claimed_at=None),
    ),
)
"""In this order: what a step looks for never depends on what an earlier step of the same run changed,
so a dry run counts what a real run does."""


@dataclass
class PurgeReport:
    dry_run: bool
    now: datetime
    cutoffs: dict[str, datetime]
    """Pack code -> records and closings older than this are past its retention."""
    retention_years: dict[str, int]
    accounts: Counter[str] = field(default_factory=Counter)
    """Pack code -> closed accounts past retention."""
    rows: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(pack code, table, action) -> rows."""

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def count(self, table: str, action: str | None = None, code: str | None = None) -> int:
        return sum(
            rows for (pack, name, done), rows in self.rows.items()
            if name == table and action in (None, done) and code in (None, pack)
        )

    def format(self) -> str:
        """A column per pack, a line per table and action, and a total: the same for a dry and a real run."""
        codes = sorted(self.cutoffs)
        steps = list(dict.fromkeys((step.table, step.action) for step in STEPS))
        labelled = [
            ("retention", [f"{self.retention_years[code]} years" for code in codes]),
            ("closed and recorded before", [f"{self.cutoffs[code]:%Y-%m-%d %H:%M}" for code in codes]),
            ("closed accounts past it", [str(self.accounts[code]) for code in codes]),
            *((f"{table} {action}", [str(self.rows[(code, table, action)]) for code in codes]) for table, action in steps),
        ]
        width = max(len(label) for label, _ in labelled)
        lines = [f"purge {'(dry run: nothing changed) ' if self.dry_run else ''}at {self.now:%Y-%m-%d %H:%M} UTC"]
        lines.append(" " * width + "".join(f"  {code:>16}" for code in codes))
        lines.extend(f"{label:<{width}}" + "".join(f"  {cell:>16}" for cell in cells) for label, cells in labelled)
        verb = "would be purged" if self.dry_run else "purged"
        lines.append(f"total: {self.total} rows {verb}, of {sum(self.accounts.values())} closed accounts")
        return "\n".join(lines)


class Purge:
    """One run of the purge over the whole database, for the policy's packs as of `clock.now()`."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        policy: Policy,
        clock: Clock | None = None,
        batch_size: int = BATCH_SIZE,
        holder: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.session_factory = session_factory
        self.policy = policy
        self.clock = clock or Clock()
        self.batch_size = batch_size
        self.lease = Lease(session_factory, LEASE_NAME, holder or process_holder(), LEASE_TTL, self.clock)

    async def run(self, dry_run: bool = False) -> PurgeReport:
        """Purge (or, dry, count) every record past retention; raises `PurgeRefused` when another
        purge holds the lease. A lease lost half-way stops the run the same way: the other run
        carries on from where this one stopped."""
        now = self.clock.now()
        packs = self.policy.jurisdictions
        cutoffs = {code: add_years(now, -pack.retention_years) for code, pack in packs.items()}
        report = PurgeReport(dry_run, now, cutoffs, {code: pack.retention_years for code, pack in packs.items()})
        if not dry_run:
            await self._keep_lease()
        try:
            async for code, ids in self._accounts(max(cutoffs.values()), cutoffs):
                report.accounts[code] += len(ids)
                for step in STEPS:
                    done = await (self._count(step, ids, cutoffs[code]) if dry_run else self._apply(step, ids, cutoffs[code]))
                    report.rows[(code, step.table, step.action)] += done
        finally:
            if self.lease.held:
                await self.lease.release()
        return report

    async def _accounts(self, latest_cutoff: datetime, cutoffs: dict[str, datetime]) -> AsyncIterator[tuple[str, list[int]]]:
        """(pack code, ids) of closed accounts past their pack's retention, a batch of accounts at a time."""
        after = 0
        query = _closed_accounts(latest_cutoff).order_by(Account.id).limit(ACCOUNT_BATCH)
        while True:
            async with self.session_factory() as session:
                rows = (await session.execute(query.where(Account.id > after))).all()
            if not rows:
                return
            after = rows[-1].id
            by_pack: dict[str, list[int]] = {}
            for row in rows:
                code = self.policy.pack_for(getattr(row, "jurisdiction", None), row.currency).code
                owes = row.statement_balance != 0 or row.overdue_amount != 0  # closed_at says not, but the figures decide
                if not owes and row.closed_at <= cutoffs[code]:
                    by_pack.setdefault(code, []).append(row.id)
            for code, ids in by_pack.items():
                yield code, ids

    async def _count(self, step: Step, ids: Sequence[int], cutoff: datetime) -> int:
        async with self.session_factory() as session:
            return int(await session.scalar(select(func.count()).select_from(step.rows(ids, cutoff).subquery())) or 0)

    async def _apply(self, step: Step, ids: Sequence[int], cutoff: datetime) -> int:
        done = 0
        while True:
            await self._keep_lease()
            batch = step.rows(ids, cutoff).limit(self.batch_size).correlate(None)
            async with self.session_factory() as session, session.begin():
                result = await session.execute(
                    step.change(step.key.in_(batch)).execution_options(synchronize_session=False)
                )
            done += result.rowcount
            if result.rowcount < self.batch_size:
                return done

    async def _keep_lease(self) -> None:
        if not await self.lease.hold():
            raise PurgeRefused("another purge is running (it holds the purge lease)")
