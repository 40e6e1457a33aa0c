"""Retention: the records of closed accounts are purged per pack once past it, and nothing else is touched."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import event, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import ManualClock
from bot.db import create_engine, create_session_factory
from bot.db.models import (
    Account, Arrangement, AuditEvent, Base, Case, CaseEvent, ChatProfile, Installment, Offer, OutboxMessage, Relay,
)
from bot.db.schema import alembic_config, migrate
from bot.domain.dates import add_years
from bot.domain.policy import load_policy
from bot.leases import Lease
from bot.services.accounts import import_accounts
from bot.services.payments import import_payments
from bot.services.retention import LEASE_NAME, LEASE_TTL, Purge, PurgeRefused
from bot.settings import DEFAULT_POLICY_FILE
from tests.conftest import make_account
from tests.test_import_accounts import row, write_csv
from tests.test_migrations import empty_url  # noqa: F401 - a fixture: an empty SQLite file, or PostgreSQL database
from tests.test_settings_and_cli import run_cli

pytestmark = pytest.mark.database

POLICY = load_policy(DEFAULT_POLICY_FILE)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
CURRENCY = {"CN": "CNY", "US": "USD", "RU": "RUB"}
DAY = timedelta(days=1)
Factory = async_sessionmaker[AsyncSession]
_ids = itertools.count(1)


def cutoff(code: str, now: datetime = NOW) -> datetime:
    return add_years(now, -POLICY.jurisdictions[code].retention_years)


def test_the_packs_keep_records_as_their_rules_say() -> None:
    assert {code: pack.retention_years for code, pack in POLICY.jurisdictions.items()} == {"CN": 2, "US": 3, "RU": 3}


@dataclass
class Seeded:
    account_pk: int
    chat_id: int
    young_chat_id: int


async def seed(
    sessions: Factory,
    code: str,
    *,
    closed_at: datetime | None,
    old: datetime,
    young: datetime,
    owed: Decimal = Decimal(0),
    active_arrangement: bool = False,
    open_case: bool = False,
) -> Seeded:
    """An account with one of each record at `old` and at `young`: audit events, a case with its
    events and relay, an offer nobody accepted, an ended arrangement, a sent outbox message and a
    verified chat; the account's payment claim at `old`."""
    n = next(_ids)
    chat_id, young_chat_id = 10_000 + n, 20_000 + n
    async with sessions() as session, session.begin():
        account = make_account(
            account_id=f"{code}-{n}", phone=f"+8613800{n:06d}", currency=CURRENCY[code], statement_balance=owed,
            overdue_amount=owed, minimum_due=owed, days_past_due=0, updated_at=old, closed_at=closed_at,
            payment_claimed_at=old,
        )
        session.add(account)
        await session.flush()
        for chat, at in ((chat_id, old), (young_chat_id, young)):
            session.add(ChatProfile(chat_id=chat, user_id=chat, locale="en", account_pk=account.id, verified_at=at, last_seen_at=at))
        between = add_years(NOW, -2) - DAY  # past CN's retention, within US's and RU's
        for at, count in ((old, 3), (between, 1), (young, 2)):
            for _ in range(count):
                session.add(AuditEvent(at=at, direction="in", kind="text", chat_id=chat_id, account_pk=account.id, payload="hello"))
        for at in (old, young):
            case = Case(
                chat_id=chat_id, account_pk=account.id, verified=True, reason="person", locale="en", status="resolved",
                agent_id=501, topic_id=n, created_at=old - DAY, announced_at=old - DAY, claimed_at=old - DAY,
                resolved_at=at, outcome="agreed to pay on Friday", rating=4,
            )
            session.add(case)
            await session.flush()
            for kind in ("trigger", "relay", "note", "resolve"):
                session.add(CaseEvent(case_id=case.id, at=min(at, old), actor="cardholder", kind=kind, text="my salary is late"))
            session.add(CaseEvent(case_id=case.id, at=at, actor="cardholder", kind="rating", text="4"))
            session.add(Relay(
                case_id=case.id, direction="to_agents", source_chat_id=chat_id, source_message_id=next(_ids),
                target_chat_id=-100, status="sent", attempts=1, created_at=old, sent_at=old,
            ))
            offer = _offer(account.id, chat_id, at)
            unaccepted = _offer(account.id, chat_id, at)
            session.add_all([offer, unaccepted])
            await session.flush()
            arrangement = Arrangement(
                account_pk=account.id, offer_id=offer.id, kind="plan", status="completed", currency=CURRENCY[code],
                total=Decimal("1200.00"), accepted_at=at, ended_at=at, chat_id=chat_id, agreement="Hardship installment agreement",
            )
            session.add(arrangement)
            await session.flush()
            session.add(Installment(
                arrangement_id=arrangement.id, number=1, due_date=at.date(), amount=Decimal("1200.00"),
                principal=Decimal("1200.00"), fee=Decimal(0), paid=Decimal("1200.00"),
            ))
            session.add(OutboxMessage(
                key=f"accepted:{arrangement.id}", chat_id=chat_id, account_pk=account.id, text="Your plan is agreed",
                created_at=at, attempts=1, sent_at=at,
            ))
        if active_arrangement:
            offer = _offer(account.id, chat_id, old)
            session.add(offer)
            await session.flush()
            session.add(Arrangement(
                account_pk=account.id, offer_id=offer.id, kind="promise", status="active", currency=CURRENCY[code],
                total=Decimal("100.00"), accepted_at=old, chat_id=chat_id,
            ))
        if open_case:
            session.add(Case(
                chat_id=young_chat_id, account_pk=account.id, verified=True, reason="person", locale="en",
                status="waiting", created_at=old, announced_at=old,
            ))
    return Seeded(account.id, chat_id, young_chat_id)


def _offer(account_pk: int, chat_id: int, at: datetime) -> Offer:
    return Offer(
        account_pk=account_pk, kind="plan", terms="{}", figures="{}", policy_version="test", balance_version=1,
        made_by="bot", chat_id=chat_id, created_at=at - timedelta(hours=1), expires_at=at,
    )


PURGED_PER_ACCOUNT = {
    ("audit_events", "deleted"): 3,
    ("case_events", "deleted"): 5,
    ("relays", "deleted"): 1,
    ("cases", "anonymised"): 1,
    ("offers", "deleted"): 1,
    ("arrangements", "anonymised"): 1,
    ("offers", "anonymised"): 1,
    ("outbox", "anonymised"): 1,
    ("chats", "unlinked"): 1,
    ("accounts", "payment claim cleared"): 1,
}
"""What a closed account's records at `old` come to; those at `young` stay."""


async def snapshot(sessions: Factory) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the leases (a real run takes and hands back its own)."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    async with sessions() as session:
        for table in Base.metadata.sorted_tables:
            if table.name != "job_leases":
                tables[table.name] = sorted((await session.execute(select(table))).all(), key=repr)
    return tables


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Factory]:
    engine = create_engine(database_url)
    yield create_session_factory(engine)
    await engine.dispose()


def purge(sessions: Factory, **options: Any) -> Purge:
    return Purge(sessions, POLICY, ManualClock(start=NOW), **options)


async def test_each_pack_purges_a_closed_accounts_records_past_its_retention_and_keeps_the_younger(sessions: Factory) -> None:
    seeded = {
        code: await seed(sessions, code, closed_at=cutoff(code) - 30 * DAY, old=cutoff(code) - DAY, young=cutoff(code) + DAY)
        for code in CURRENCY
    }
    before = await snapshot(sessions)

    dry = await purge(sessions).run(dry_run=True)
    assert await snapshot(sessions) == before, "a dry run changes nothing"
    real = await purge(sessions).run()

    for code, account in seeded.items():
        assert dry.accounts[code] == real.accounts[code] == 1
        between = 1 if code == "CN" else 0  # an event two years and a day old is past CN's retention only
        for (table, action), rows in PURGED_PER_ACCOUNT.items():
            expected = rows + (between if table == "audit_events" else 0)
            assert dry.count(table, action, code) == real.count(table, action, code) == expected, (code, table, action)
    assert dry.rows == real.rows and dry.format().splitlines()[1:-1] == real.format().splitlines()[1:-1]

    async with sessions() as session:
        for code, account in seeded.items():
            young = cutoff(code) + DAY
            events = (await session.scalars(select(AuditEvent.at).where(AuditEvent.account_pk == account.account_pk))).all()
            assert sorted(events) == [young, young] if code == "CN" else [add_years(NOW, -2) - DAY, young, young]
            cases = (await session.scalars(select(Case).where(Case.topic_id.is_not(None)).order_by(Case.id))).all()
            kept = [case for case in cases if case.resolved_at == young and case.account_pk == account.account_pk]
            assert len(kept) == 1 and kept[0].outcome and kept[0].chat_id == account.chat_id
            assert len((await session.scalars(select(CaseEvent).where(CaseEvent.case_id == kept[0].id))).all()) == 5
            arrangements = (await session.scalars(select(Arrangement).where(Arrangement.account_pk == account.account_pk))).all()
            assert sorted((a.ended_at == young, a.chat_id is not None, a.agreement is not None) for a in arrangements) == [
                (False, False, False), (True, True, True)
            ], "the old arrangement stays, without its chat and agreement"
            chats = dict((await session.execute(select(ChatProfile.chat_id, ChatProfile.account_pk))).all())
            assert chats[account.chat_id] is None and chats[account.young_chat_id] == account.account_pk
            claimed = await session.scalar(select(Account.payment_claimed_at).where(Account.id == account.account_pk))
            assert claimed is None
        anonymised = (await session.scalars(select(Case).where(Case.account_pk.is_(None)))).all()
        assert len(anonymised) == 3
        assert all(c.chat_id == 0 and c.outcome is None and c.rating == 4 and c.reason == "person" for c in anonymised)
        assert not (await session.scalars(select(CaseEvent).where(CaseEvent.case_id.in_([c.id for c in anonymised])))).all()
        outbox = (await session.execute(select(OutboxMessage.created_at, OutboxMessage.text))).all()
        assert sorted(text for _, text in outbox) == [""] * 3 + ["Your plan is agreed"] * 3

    after = await snapshot(sessions)
    again = await purge(sessions).run()
    assert again.total == 0 and await snapshot(sessions) == after, "a second run finds nothing to do"
    assert (await purge(sessions).run(dry_run=True)).total == 0


async def test_accounts_not_closed_or_not_long_enough_are_left_whole(sessions: Factory) -> None:
    long_ago = cutoff("US") - 30 * DAY
    for code in CURRENCY:
        old, young = cutoff(code) - DAY, cutoff(code) + DAY
        await seed(sessions, code, closed_at=None, owed=Decimal("500.00"), old=old, young=young)  # open
        await seed(sessions, code, closed_at=None, old=old, young=young)  # paid off but never closed by an import
        await seed(sessions, code, closed_at=long_ago, owed=Decimal("500.00"), old=old, young=young)  # owes again
        await seed(sessions, code, closed_at=cutoff(code) + DAY, old=old, young=young)  # closed too recently
        await seed(sessions, code, closed_at=long_ago, active_arrangement=True, old=old, young=young)
        await seed(sessions, code, closed_at=long_ago, open_case=True, old=old, young=young)
    before = await snapshot(sessions)

    assert (await purge(sessions).run(dry_run=True)).total == 0
    report = await purge(sessions).run()
    assert report.total == 0 and sum(report.accounts.values()) == 0
    assert await snapshot(sessions) == before


async def test_the_period_runs_from_the_closing_when_it_is_later_than_the_record(sessions: Factory) -> None:
    """Records far older than the retention are kept while the account closed within it."""
    code = "RU"
    account = await seed(sessions, code, closed_at=cutoff(code) + DAY, old=cutoff(code) - 400 * DAY, young=cutoff(code) - 200 * DAY)
    report = await Purge(sessions, POLICY, ManualClock(start=NOW)).run()
    assert report.total == 0
    later = await Purge(sessions, POLICY, ManualClock(start=NOW + 2 * DAY)).run()
    assert later.count("audit_events", code=code) == 5 and later.count("cases", "anonymised") == 2
    async with sessions() as session:
        kept = (await session.scalars(select(AuditEvent.at).where(AuditEvent.account_pk == account.account_pk))).all()
    assert kept == [add_years(NOW, -2) - DAY], "a record younger than the retention still waits"


async def test_a_million_rows_are_purged_in_bounded_batches_each_its_own_transaction(database_url: str) -> None:
    """20,000 audit rows and a batch of 1,000: twenty deletes of at most 1,000 rows, each committed on its own."""
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    try:
        code = "CN"
        account = await seed(sessions, code, closed_at=cutoff(code) - 30 * DAY, old=cutoff(code) - DAY, young=cutoff(code) + DAY)
        rows = [
            {"at": cutoff(code) - DAY * (1 + n % 300), "direction": "out", "kind": "sendMessage", "chat_id": account.chat_id,
             "account_pk": account.account_pk, "payload": f"message {n}"}
            for n in range(20_000 - 4)  # with the account's own 4 old ones: 20,000
        ]
        async with sessions() as session, session.begin():
            for start in range(0, len(rows), 2000):
                await session.execute(insert(AuditEvent), rows[start:start + 2000])

        trace: list[Any] = []

        def executed(_connection: Any, cursor: Any, statement: str, *_: Any) -> None:
            if statement.lstrip().upper().startswith("DELETE FROM AUDIT_EVENTS"):
                trace.append(cursor.rowcount)

        event.listen(engine.sync_engine, "after_cursor_execute", executed)
        event.listen(engine.sync_engine, "commit", lambda _connection: trace.append("commit"))
        dry = await purge(sessions, batch_size=1000).run(dry_run=True)
        assert not any(isinstance(item, int) for item in trace), "a dry run deletes nothing"
        trace.clear()
        report = await purge(sessions, batch_size=1000).run()
    finally:
        await engine.dispose()

    deletes = [item for item in trace if isinstance(item, int)]
    assert report.count("audit_events") == dry.count("audit_events") == 20_000 == sum(deletes)
    assert max(deletes) == 1000 and len(deletes) == 21, "twenty full batches and one that finds nothing"
    after_each = [trace[position + 1] for position, item in enumerate(trace) if isinstance(item, int)]
    assert after_each == ["commit"] * len(deletes), "every batch is committed before the next one starts"


async def test_a_second_purge_at_the_same_time_is_refused(database_url: str, sessions: Factory) -> None:
    code = "US"
    await seed(sessions, code, closed_at=cutoff(code) - 30 * DAY, old=cutoff(code) - DAY, young=cutoff(code) + DAY)
    other = Lease(sessions, LEASE_NAME, "another-process", LEASE_TTL, ManualClock(start=NOW))
    assert await other.hold()
    before = await snapshot(sessions)
    with pytest.raises(PurgeRefused):
        await purge(sessions).run()
    assert await snapshot(sessions) == before
    assert (await purge(sessions).run(dry_run=True)).total == 16, "a dry run needs no lease"
    await other.release()

    engines = [create_engine(database_url) for _ in range(2)]
    try:
        outcomes = await asyncio.gather(
            *(purge(create_session_factory(engine), batch_size=2).run() for engine in engines), return_exceptions=True
        )
    finally:
        for engine in engines:
            await engine.dispose()
    assert all(not isinstance(outcome, Exception) or isinstance(outcome, PurgeRefused) for outcome in outcomes), outcomes
    done = sum(outcome.total for outcome in outcomes if not isinstance(outcome, Exception))
    assert done == 16, "whatever the interleaving, each row is purged once"
    assert (await purge(sessions).run(dry_run=True)).total == 0


# -- when an account is closed ---------------------------------------------------------------------


async def closing_of(sessions: Factory, account_id: str) -> datetime | None:
    async with sessions() as session:
        return await session.scalar(select(Account.closed_at).where(Account.account_id == account_id))


async def test_imports_close_an_account_at_zero_and_open_it_when_it_owes_again(sessions: Factory, tmp_path: Path) -> None:
    zero = {"statement_balance": "0", "overdue_amount": "0", "minimum_due": "0", "days_past_due": "0"}
    owing, paid_off, renamed = row(), row(**zero), row(**zero, full_name="Li Wei Jr")
    moments = [NOW + DAY * n for n in range(5)]
    steps = [(owing, None), (paid_off, moments[1]), (renamed, moments[1]), (owing, None), (paid_off, moments[4])]
    for moment, (values, expected) in zip(moments, steps):
        await import_accounts(sessions, write_csv(tmp_path / "accounts.csv", [values]), now=moment)
        assert await closing_of(sessions, "ACC-1") == expected, (moment, expected)

    await import_accounts(sessions, write_csv(tmp_path / "accounts.csv", [row(account_id="ACC-2")]), now=NOW)
    payments = tmp_path / "payments.csv"
    for number, amount in enumerate(("5000.00", "10000.00")):
        payments.write_text(f"account_id,amount,paid_at,reference\nACC-2,{amount},2026-03-0{number + 3},REF-{number}\n")
        await import_payments(sessions, payments, now=moments[number + 1])
        assert await closing_of(sessions, "ACC-2") == (None if number == 0 else moments[2])


async def test_the_migration_closes_accounts_already_at_zero_from_the_upgrade(empty_url: str) -> None:
    engine = create_engine(empty_url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0002"))
            for account_id, balance in (("PAID", "0.00"), ("OWES", "10.50")):
                await connection.execute(text(
                    "INSERT INTO accounts (account_id, full_name, phone, birth_date, card_last4, currency, statement_balance,"
                    " overdue_amount, minimum_due, days_past_due, late_fee, daily_interest_rate, locale, timezone,"
                    f" balance_version, updated_at) VALUES ('{account_id}', 'A', '+8613800138000', '1985-03-07', '1234',"
                    f" 'CNY', '{balance}', '{balance}', '0', 0, '0', '0.0005', 'en', 'UTC', 1, '2020-01-01 00:00:00.000000')"
                ))
            await connection.commit()
        started = datetime.now(timezone.utc)
        await migrate(empty_url)
        sessions = create_session_factory(engine)
        paid, owes = await closing_of(sessions, "PAID"), await closing_of(sessions, "OWES")
    finally:
        await engine.dispose()
    assert owes is None and paid is not None and started <= paid <= datetime.now(timezone.utc)


# -- the command -----------------------------------------------------------------------------------


@pytest.mark.slow  # a whole process or a crowd: `make test-slow`
async def test_the_purge_command_prints_per_pack_and_table_and_says_when_it_is_refused(database_url: str, sessions: Factory) -> None:
    real_now = datetime.now(timezone.utc)
    for code in CURRENCY:
        edge = cutoff(code, real_now)
        await seed(sessions, code, closed_at=edge - 30 * DAY, old=edge - DAY, young=edge + DAY)
    env = {"DATABASE_URL": database_url}
    dry = run_cli("purge", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0].startswith("purge (dry run: nothing changed) at ")
    assert lines[1].split() == ["CN", "RU", "US"]
    assert lines[2].split() == ["retention", "2", "years", "3", "years", "3", "years"]
    assert ["audit_events", "deleted", "4", "3", "3"] in [line.split() for line in lines]
    assert ["chats", "unlinked", "1", "1", "1"] in [line.split() for line in lines]
    assert lines[-1] == "total: 49 rows would be purged, of 3 closed accounts"

    real = run_cli("purge", "--batch-size", "2", env=env)
    assert real.returncode == 0, real.stderr
    counted = [line for line in lines[1:-1] if not line.startswith("closed and recorded before")]
    purged = [line for line in real.stdout.splitlines()[1:-1] if not line.startswith("closed and recorded before")]
    # the cutoffs are to the minute of each run, which may differ by one
    assert purged == counted and real.stdout.splitlines()[-1] == "total: 49 rows purged, of 3 closed accounts"
    again = run_cli("purge", env=env)
    assert again.returncode == 0 and again.stdout.splitlines()[-1] == "total: 0 rows purged, of 3 closed accounts"

    assert await Lease(sessions, LEASE_NAME, "elsewhere", LEASE_TTL).hold()
    refused = run_cli("purge", env=env)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.strip().splitlines()[-1] == "error: another purge is running (it holds the purge lease); try again later"
    assert run_cli("purge", "--dry-run", env=env).returncode == 0

    bad = run_cli("purge", "--batch-size", "0", env=env)
    assert bad.returncode == 2 and "--batch-size: must be at least 1" in bad.stderr


def test_the_purge_command_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = run_cli("purge", env={"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'none.sqlite3'}"})
    assert result.returncode == 2 and "the database has no schema yet: run `python -m bot migrate`" in result.stderr
