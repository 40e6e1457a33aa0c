"""The verification lookup finds accounts through an index, not by reading the accounts table.

The statements the service really sends (caught as they go to the driver) are explained on a
table of 20,000 accounts: on SQLite no step may SCAN accounts; on PostgreSQL, with sequential
scans priced out, every one must still reach accounts through an index. Dropping the phone's
index, or a query that stops being able to use it, fails here. The timing is
benchmarks/verification_lookup.py's business.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import Clock
from bot.db.engine import create_engine, create_session_factory
from bot.db.schema import migrate
from bot.db.unit_of_work import unit_of_work
from bot.services.accounts import AccountRecord, write_accounts
from bot.services.verification import Outcome, VerificationRules, VerificationService
from tests.conftest import new_postgres_database

ACCOUNTS = 20_000
RULES = VerificationRules(max_attempts=3, lock_minutes=30, idle_minutes=30, phone_key=b"test-phone-key")
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
SHARED_PHONE = "+8613800000007"
"""Accounts 7 and 8 share it."""


def record(n: int) -> AccountRecord:
    return AccountRecord(
        account_id=f"ACC-{n:06d}",
        full_name=f"Cardholder {n}",
        phone=SHARED_PHONE if n == 8 else f"+86138{n:08d}",
        birth_date=date(1950, 1, 1) + timedelta(days=n % 20_000),
        card_last4=f"{n % 10_000:04d}",
        currency="CNY",
        statement_balance=Decimal("1000.00"),
        overdue_amount=Decimal("500.00"),
        minimum_due=Decimal("50.00"),
        days_past_due=n % 180 + 1,
        late_fee=Decimal("10.00"),
        daily_interest_rate=Decimal("0.0005"),
        locale="zh_CN",
        timezone="Asia/Shanghai",
    )


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """20,000 accounts written as an import writes them, on a SQLite file or a fresh PostgreSQL database."""
    async with AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'lookup.sqlite3'}"
        else:
            url = await stack.enter_async_context(new_postgres_database(migrated=False))
        engine = create_engine(url)
        stack.push_async_callback(engine.dispose)
        await migrate(url)
        async with create_session_factory(engine)() as session, session.begin():
            records = [record(n) for n in range(ACCOUNTS)]
            for start in range(0, ACCOUNTS, 5_000):
                await write_accounts(session, records[start:start + 5_000], now=NOW)
        yield engine


async def account_statements(engine: AsyncEngine, phone: str, birth_date: date) -> list[tuple[str, Any]]:
    """The SELECTs on accounts the contact step and the birth-date step send, with their parameters."""
    sent: list[tuple[str, Any]] = []

    def catch(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and re.search(r"\baccounts\b", statement):
            sent.append((statement, parameters))

    factory = create_session_factory(engine)
    event.listen(engine.sync_engine, "before_cursor_execute", catch)
    try:
        async with unit_of_work(factory) as unit:
            verification = VerificationService(unit.session, RULES, Clock())
            chat = await verification.open_chat(42, 42)
            sent.clear()  # opening the chat joins accounts by key; the lookup is what follows
            shared = await verification.claim_phone(phone)
            assert shared.locked_until is None
            claim = shared.claim
            result = await verification.verify(chat.profile, claim, birth_date)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", catch)
    assert claim.accounts == (8, 9)  # ids start at 1: accounts 7 and 8 of `record`
    assert result.outcome is Outcome.VERIFIED and result.account is not None
    assert result.account.account_id == "ACC-000008"  # the one more days past due
    return sent


async def test_the_verification_lookup_reads_accounts_through_an_index(engine: AsyncEngine) -> None:
    statements = await account_statements(engine, SHARED_PHONE, record(8).birth_date)
    assert len(statements) == 2, statements  # the phone's accounts, then those with the birth date
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            await connection.exec_driver_sql("SET enable_seqscan = off")
            prefix = "EXPLAIN "
        else:
            prefix = "EXPLAIN QUERY PLAN "
        for statement, parameters in statements:
            rows = (await connection.exec_driver_sql(prefix + statement, parameters)).all()
            plan = "\n".join(str(row[-1] if engine.dialect.name == "sqlite" else row[0]) for row in rows)
            if engine.dialect.name == "sqlite":
                assert not re.search(r"\bSCAN (TABLE )?accounts\b", plan), plan
                assert re.search(r"\bSEARCH (TABLE )?accounts USING\b.*\b(INDEX|PRIMARY KEY)\b", plan), plan
            else:
                assert "Seq Scan on accounts" not in plan, plan
                assert searched_by_index(plan), plan


def searched_by_index(plan: str) -> bool:
    """Every index scan in a PostgreSQL plan has an Index Cond: an index read whole (in key order,
    the rows filtered) is a scan of the table by another name. At least one index scan is needed."""
    lines = plan.splitlines()
    scans = [n for n, line in enumerate(lines) if re.search(r"\b(Bitmap Index|Index Only|Index) Scan\b", line)]
    for n in scans:
        details = []
        for line in lines[n + 1:]:
            if "->" in line:
                break
            details.append(line)
        if not any("Index Cond" in line for line in details):
            return False
    return bool(scans)
