"""Time `python -m bot purge` over N generated audit rows (default 1,000,000).

    python benchmarks/purge.py [--rows 1000000] [--accounts 2000] [--batch-size 5000]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]

Half the accounts (CN, US and RU in turn) are closed long before their retention, the other half
still owe; the audit rows are spread evenly over all of them, so half are past retention. Prints
the seconds of a dry run, of the real run and of a second run (which finds nothing), the rows each
counted, and the process's peak memory after the purge minus before it (the rows are generated in
batches too). Without ``--database-url`` the database is a new SQLite file in a temporary
directory; with a PostgreSQL URL a scratch database is created beside it and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from import_accounts import scratch_database  # noqa: E402

from bot.clock import ManualClock  # noqa: E402
from bot.db.engine import create_engine, create_session_factory  # noqa: E402
from bot.db.models import Account, AuditEvent  # noqa: E402
from bot.db.schema import migrate  # noqa: E402
from bot.domain.policy import load_policy  # noqa: E402
from bot.services.retention import BATCH_SIZE, Purge  # noqa: E402
from bot.settings import DEFAULT_POLICY_FILE  # noqa: E402

NOW = datetime(2026, 3, 2, tzinfo=timezone.utc)
LONG_AGO = NOW - timedelta(days=4 * 365)
LOAD_BATCH = 20_000
CURRENCIES = ("CNY", "USD", "RUB")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def load(sessions, accounts: int, rows: int) -> None:  # type: ignore[no-untyped-def]
    async with sessions() as session, session.begin():
        owed = Decimal("50.00")
        await session.execute(insert(Account), [
            dict(
                account_id=f"BENCH-{n}", full_name="Bench", phone="+8613800138000", birth_date=date(1980, 1, 1),
                card_last4="1234", currency=CURRENCIES[n % 3], statement_balance=owed * (n % 2), overdue_amount=owed * (n % 2),
                minimum_due=Decimal(0), days_past_due=0, late_fee=Decimal(0), daily_interest_rate=Decimal("0.0005"),
                locale="en", timezone="UTC", balance_version=1, updated_at=LONG_AGO,
                closed_at=None if n % 2 else LONG_AGO,
            )
            for n in range(accounts)
        ])
    for start in range(0, rows, LOAD_BATCH):
        async with sessions() as session, session.begin():
            await session.execute(insert(AuditEvent), [
                dict(at=LONG_AGO + timedelta(minutes=k % 100_000), direction="in", kind="text", chat_id=k % accounts,
                     account_pk=1 + k % accounts, payload="a message of about this length")
                for k in range(start, min(start + LOAD_BATCH, rows))
            ])


async def run(rows: int, accounts: int, batch_size: int, directory: Path, database_url: str | None) -> None:
    async with scratch_database(database_url, directory) as url:
        await migrate(url)
        engine = create_engine(url)
        sessions = create_session_factory(engine)
        policy = load_policy(DEFAULT_POLICY_FILE)
        try:
            started = time.perf_counter()
            await load(sessions, accounts, rows)
            print(f"database: {engine.dialect.name}; {accounts} accounts, {rows} audit rows in {time.perf_counter() - started:.1f} s")
            before = peak_mb()
            for name, dry in (("dry run", True), ("purge", False), ("again", False)):
                started = time.perf_counter()
                report = await Purge(sessions, policy, ManualClock(start=NOW), batch_size).run(dry_run=dry)
                print(f"{name}: {report.total} rows in {time.perf_counter() - started:.1f} s")
            print(f"peak memory: +{peak_mb() - before:.0f} MB over the loading")
        finally:
            await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--database-url")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="repay-purge-") as directory:
        asyncio.run(run(arguments.rows, arguments.accounts, arguments.batch_size, Path(directory), arguments.database_url))


if __name__ == "__main__":
    main()
