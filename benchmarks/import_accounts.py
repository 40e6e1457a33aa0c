"""Time the account import end to end: N generated rows from a CSV file into a fresh database.

    python benchmarks/import_accounts.py [--rows 100000] [--keep DIR] [--database-url URL]

The rows have every column, the optional ``jurisdiction`` too (blank for the JPY and EUR
cardholders: the policy's default for their currency). Three imports are timed, each the real
`import_accounts` from the file (writing the files is not timed): the first into an empty
database, the same file again (every row unchanged), and a file where every tenth row's balance
changed (updates). Each runs in a new process, as
``python -m bot import-accounts`` does, so that nothing one import remembered helps the next.
Without ``--database-url`` the database is a new SQLite file; with a PostgreSQL URL, a scratch
database is created next to the one named and dropped afterwards. CPU seconds are those of the
importing process (the SQLite driver works in a thread of its own): on a busy machine the wall
time is above them.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import multiprocessing
import random
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.db.engine import create_engine, create_session_factory  # noqa: E402
from bot.db.schema import migrate  # noqa: E402
from bot.services.accounts import COLUMNS, OPTIONAL_COLUMNS, ImportReport, import_accounts  # noqa: E402

PROFILES = (
    # currency, locale, timezone, phone prefixes, digits after the prefix (first not 0), minor unit, jurisdiction
    ("CNY", "zh_CN", "Asia/Shanghai", ("+86130", "+86135", "+86138", "+86139", "+86150", "+86159", "+86186", "+86189"), 8, 2, "CN"),
    ("RUB", "ru", "Europe/Moscow", ("+7903", "+7912", "+7916", "+7926", "+7985"), 7, 2, "RU"),
    ("USD", "en", "America/New_York", ("+1212", "+1310", "+1415", "+1617", "+1713"), 7, 2, "US"),
    ("JPY", "en", "Asia/Tokyo", ("+8170", "+8180", "+8190"), 8, 0, ""),
    ("EUR", "en", "Europe/Berlin", ("+49151", "+49160", "+49170", "+49176"), 8, 2, ""),
)


def generate(path: Path, rows: int, seed: int = 7, changed_every: int = 0) -> None:
    """The bank's export; with ``changed_every``, that row and every such later one owes 1 more."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow((*COLUMNS, *OPTIONAL_COLUMNS))
        for n in range(rows):
            currency, locale, zone, prefixes, digits, places, jurisdiction = PROFILES[n % len(PROFILES)]
            scale = 10**places
            statement = rng.randint(1_000, 5_000_000) * (1 if places == 2 else 100)
            overdue = rng.randint(statement // 10, statement)
            minimum = rng.randint(overdue // 20, overdue // 5)
            if changed_every and n % changed_every == 0:
                overdue += scale

            def money(value: int) -> str:
                return f"{value // scale}.{value % scale:0{places}d}" if places else str(value)

            writer.writerow(
                (
                    f"ACC-{n:08d}",
                    f"Cardholder {n}",
                    rng.choice(prefixes) + str(rng.randrange(2 * 10 ** (digits - 1), 10**digits)),
                    (date(1950, 1, 1) + timedelta(days=rng.randrange(20_000))).isoformat(),
                    f"{rng.randrange(10_000):04d}",
                    currency,
                    money(statement),
                    money(overdue),
                    money(minimum),
                    rng.randint(1, 180),
                    money(rng.randint(0, 10_000)),
                    f"0.000{rng.randint(1, 9)}",
                    locale,
                    zone,
                    jurisdiction,
                )
            )


@asynccontextmanager
async def scratch_database(url: str | None, directory: Path) -> AsyncIterator[str]:
    """A new, empty database: a SQLite file in ``directory``, or a PostgreSQL database beside ``url``'s."""
    if url is None:
        yield f"sqlite+aiosqlite:///{directory / 'bench.sqlite3'}"
        return
    given = make_url(url)
    if given.get_backend_name() != "postgresql":
        raise SystemExit("--database-url: a PostgreSQL URL (without it, a fresh SQLite file is used)")
    name = f"bench_import_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield given.set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def run(rows: int, directory: Path, database_url: str | None) -> None:
    source, changed = directory / "accounts.csv", directory / "accounts-changed.csv"
    started = time.perf_counter()
    generate(source, rows)
    generate(changed, rows, changed_every=10)
    print(f"generated {rows} rows ({source.stat().st_size / 1e6:.1f} MB) twice in {time.perf_counter() - started:.1f} s")

    async with scratch_database(database_url, directory) as url:
        await migrate(url)
        engine = create_engine(url)
        print(f"database: {engine.dialect.name}")
        await engine.dispose()
        now = datetime.now(timezone.utc)
        spawn = multiprocessing.get_context("spawn")
        for label, path in (
            ("first import", source),
            ("re-import, same file (unchanged)", source),
            ("re-import, every 10th balance changed", changed),
        ):
            with spawn.Pool(1) as pool:
                seconds, cpu, report = pool.apply(timed_import, (url, path, now))
            print(
                f"{label}: {seconds:.2f} s, {rows / seconds:,.0f} rows/s, {cpu:.2f} s CPU "
                f"(inserted {report.inserted}, updated {report.updated}, unchanged {report.unchanged}, "
                f"rejected {report.rejected})"
            )
            if report.errors:
                print("\n".join(str(error) for error in report.errors[:5]))


def timed_import(url: str, path: Path, now: datetime) -> tuple[float, float, ImportReport]:
    """One import in this (new) process: the wall and CPU seconds of `import_accounts` alone."""

    async def timed() -> tuple[float, float, ImportReport]:
        engine = create_engine(url)
        try:
            factory = create_session_factory(engine)
            started, cpu = time.perf_counter(), time.process_time()
            report = await import_accounts(factory, path, now=now)
            return time.perf_counter() - started, time.process_time() - cpu, report
        finally:
            await engine.dispose()

    return asyncio.run(timed())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="write the CSV files (and the SQLite file) here instead of a temporary directory")
    parser.add_argument(
        "--database-url", help="PostgreSQL to import into, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        for leftover in args.keep.glob("bench.sqlite3*"):  # the database must start empty
            leftover.unlink()
        asyncio.run(run(args.rows, args.keep, args.database_url))
    else:
        with tempfile.TemporaryDirectory() as directory:
            asyncio.run(run(args.rows, Path(directory), args.database_url))


if __name__ == "__main__":
    main()
