"""Payments posted by the bank: they lower the balance and pay installments and promises.

The bot takes no money. The bank's system exports what was paid; importing the same reference twice
changes nothing. After each import, promises whose date passed without enough paid are broken.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Account, Arrangement, Installment, Payment
from bot.domain.calculator import currency_exponent
from bot.domain.errors import ImportFileError
from bot.services.accounts import RowError, column_positions, decoded_lines, open_table, read_header

COLUMNS = ("account_id", "amount", "paid_at", "reference")
SINGLE_PAYMENT_KINDS = ("promise", "full", "current")


@dataclass
class PaymentReport:
    applied: int = 0
    duplicates: int = 0
    broken_promises: int = 0
    errors: list[RowError] = field(default_factory=list)

    def format(self) -> str:
        lines = [
            f"{self.applied} applied, {self.duplicates} already imported, {len(self.errors)} rejected, "
            f"{self.broken_promises} promises broken"
        ]
        lines.extend(str(error) for error in self.errors)
        return "\n".join(lines)


async def import_payments(
    session_factory: async_sessionmaker[AsyncSession], source: Path, *, now: datetime
) -> PaymentReport:
    report = PaymentReport()
    with open_table(source) as handle:
        reader = csv.reader(decoded_lines(handle))
        try:
            header = read_header(reader, COLUMNS)
            positions = column_positions(header, COLUMNS)
            line = reader.line_num
            async with session_factory() as session, session.begin():
                for cells in reader:
                    line, row_line = reader.line_num, line + 1
                    if not any(cell.strip() for cell in cells):
                        continue
                    if len(cells) != len(header):
                        report.errors.append(RowError(row_line, "row", f"has {len(cells)} fields where the header has {len(header)}"))
                        continue
                    values = {name: cells[index].strip() for name, index in positions.items()}
                    await _apply_row(session, values, row_line, now, report)
                report.broken_promises = await break_overdue_promises(session, now.date())
        except csv.Error as error:
            raise ImportFileError(f"line {reader.line_num}: unreadable CSV ({error})") from None
    return report


async def _apply_row(session: AsyncSession, values: dict[str, str], line: int, now: datetime, report: PaymentReport) -> None:
    account = await session.scalar(select(Account).where(Account.account_id == values["account_id"]))
    if account is None:
        report.errors.append(RowError(line, "account_id", "no such account"))
        return
    try:
        amount = Decimal(values["amount"])
    except InvalidOperation:
        report.errors.append(RowError(line, "amount", "not a number"))
        return
    if not amount.is_finite() or amount <= 0 or -amount.as_tuple().exponent > max(currency_exponent(account.currency), 0):
        report.errors.append(RowError(line, "amount", f"must be more than 0 with at most {currency_exponent(account.currency)} decimals"))
        return
    paid_at = _moment(values["paid_at"])
    if paid_at is None:
        report.errors.append(RowError(line, "paid_at", "not an ISO date or date-time such as 2026-12-01T10:30:00Z"))
        return
    reference = values["reference"]
    if not reference or len(reference) > 64:
        report.errors.append(RowError(line, "reference", "must be 1 to 64 characters"))
        return
    if await session.scalar(select(Payment.id).where(Payment.reference == reference)):
        report.duplicates += 1
        return
    session.add(Payment(account_pk=account.id, amount=amount, paid_at=paid_at, reference=reference, imported_at=now))
    apply_to_balance(account, amount, now)
    await apply_to_arrangement(session, account, amount, paid_at.date(), now)
    await session.flush()
    report.applied += 1


def apply_to_balance(account: Account, amount: Decimal, now: datetime) -> None:
    """Lower the balances; the import that brings both to zero closes the account (`Account.closed_at`)."""
    zero = Decimal(0)
    account.statement_balance = max(zero, account.statement_balance - amount)
    account.overdue_amount = max(zero, account.overdue_amount - amount)
    account.minimum_due = max(zero, account.minimum_due - amount)
    if account.overdue_amount == 0:
        account.days_past_due = 0
    if account.statement_balance == 0 and account.overdue_amount == 0 and account.closed_at is None:
        account.closed_at = now
    account.balance_version += 1


async def apply_to_arrangement(session: AsyncSession, account: Account, amount: Decimal, paid_on: date, now: datetime) -> None:
    """Pay the active arrangement's installments in order; a fully paid arrangement is completed."""
    arrangement = await session.scalar(
        select(Arrangement).where(Arrangement.account_pk == account.id, Arrangement.status == "active")
    )
    if arrangement is None:
        return
    installments = (
        await session.scalars(select(Installment).where(Installment.arrangement_id == arrangement.id).order_by(Installment.number))
    ).all()
    left = amount
    for installment in installments:
        if left <= 0:
            break
        share = min(left, installment.amount - installment.paid)
        installment.paid += share
        left -= share
    if all(item.paid >= item.amount for item in installments):
        arrangement.status = "completed"
        arrangement.ended_at = now


async def break_overdue_promises(session: AsyncSession, today: date, account_pk: int | None = None) -> int:
    """Mark broken every single-payment arrangement (of one account, or all) whose date passed
    without enough paid."""
    query = (
        select(Arrangement, Installment)
        .join(Installment, Installment.arrangement_id == Arrangement.id)
        .where(
            Arrangement.status == "active",
            Arrangement.kind.in_(SINGLE_PAYMENT_KINDS),
            Installment.due_date < today,
        )
    )
    if account_pk is not None:
        query = query.where(Arrangement.account_pk == account_pk)
    overdue = await session.execute(query)
    broken = 0
    for arrangement, installment in overdue:
        if installment.paid < installment.amount:
            arrangement.status = "broken"
            arrangement.ended_at = datetime.combine(today, time(), tzinfo=timezone.utc)
            broken += 1
    return broken


def _moment(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
