"""Posted payments: balances fall, installments and promises are paid, duplicates change nothing."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import ManualClock
from bot.db.models import Account, Arrangement, Installment
from bot.domain.policy import load_policy
from bot.services.arrangements import Accepted, ArrangementService
from bot.services.payments import import_payments
from bot.settings import DEFAULT_POLICY_FILE
from tests.conftest import add_accounts, make_account

POLICY = load_policy(DEFAULT_POLICY_FILE)


def payments_file(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "payments.csv"
    path.write_text("account_id,amount,paid_at,reference\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


async def accept(session_factory: async_sessionmaker[AsyncSession], clock: ManualClock, kind: str) -> Accepted:
    """Accept an offer as an update would: services never commit, their caller does."""
    async with session_factory() as session, session.begin():
        service = ArrangementService(session, POLICY, clock)
        account = await session.scalar(select(Account))
        assert account is not None
        if kind == "promise":
            proposal = await service.promise(account, service.today() + timedelta(days=3), Decimal("1500.00"), 1)
        else:
            proposal = (await service.menu(account, 1)).plans[0]
        result = await service.accept(account, proposal.offer_id, 1, replace=False)
        assert isinstance(result, Accepted)
        return result


async def test_payments_pay_installments_and_are_imported_once(session_factory, tmp_path: Path) -> None:
    clock = ManualClock()
    await add_accounts(session_factory, make_account())
    accepted = await accept(session_factory, clock, "plan")
    first = accepted.installments[0].amount
    path = payments_file(
        tmp_path,
        f"ACC-1,{first},2026-12-01T10:00:00Z,REF-1",
        "ACC-1,100.005,2026-12-01,REF-2",
        "NOPE,100,2026-12-01,REF-3",
        "ACC-1,100,yesterday,REF-4",
        "ACC-1,100",
    )

    report = await import_payments(session_factory, path, now=clock.now())
    again = await import_payments(session_factory, path, now=clock.now())

    assert report.applied == 1 and again.applied == 0 and again.duplicates == 1
    assert [(error.line, error.column) for error in report.errors] == [
        (3, "amount"), (4, "account_id"), (5, "paid_at"), (6, "row")
    ]
    async with session_factory() as session:
        account = await session.scalar(select(Account))
        installments = (await session.scalars(select(Installment).order_by(Installment.number))).all()
    assert account.statement_balance == Decimal("15000.00") - first
    assert account.balance_version == 2
    assert installments[0].paid == first and installments[1].paid == 0


async def test_a_plan_paid_off_is_completed(session_factory, tmp_path: Path) -> None:
    clock = ManualClock()
    await add_accounts(session_factory, make_account())
    accepted = await accept(session_factory, clock, "plan")
    total = sum(item.amount for item in accepted.installments)
    await import_payments(session_factory, payments_file(tmp_path, f"ACC-1,{total},2026-12-01,ALL"), now=clock.now())
    async with session_factory() as session:
        arrangement = await session.scalar(select(Arrangement))
        account = await session.scalar(select(Account))
    assert arrangement.status == "completed"
    assert account.overdue_amount == 0 and account.days_past_due == 0


async def test_promises_are_kept_or_broken(session_factory, tmp_path: Path) -> None:
    clock = ManualClock()
    await add_accounts(session_factory, make_account(), make_account(account_id="ACC-2", phone="+8613900000000"))
    await accept(session_factory, clock, "promise")
    await import_payments(session_factory, payments_file(tmp_path, "ACC-1,1000.00,2026-12-01,P-1"), now=clock.now())
    async with session_factory() as session:
        assert (await session.scalar(select(Arrangement))).status == "active", "partly paid, not yet due"

    later = clock.now() + timedelta(days=4)
    report = await import_payments(session_factory, payments_file(tmp_path, "ACC-2,10,2026-12-01,OTHER"), now=later)
    assert report.broken_promises == 1
    async with session_factory() as session:
        assert (await session.scalar(select(Arrangement))).status == "broken"


async def test_a_promise_paid_in_time_is_kept(session_factory, tmp_path: Path) -> None:
    clock = ManualClock()
    await add_accounts(session_factory, make_account())
    await accept(session_factory, clock, "promise")
    await import_payments(session_factory, payments_file(tmp_path, f"ACC-1,1500.00,{date.today()},P-1"), now=clock.now())
    async with session_factory() as session:
        assert (await session.scalar(select(Arrangement))).status == "completed"
