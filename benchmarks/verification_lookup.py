"""Time the verification lookup against N generated accounts (default 1,000,000).

    python benchmarks/verification_lookup.py [--accounts N] [--lookups 5000] [--concurrency 32]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test] [--keep DIR]

The verification lookup is what the bot does when a cardholder shares their phone (the contact
step: `VerificationService.claim_phone`, the accounts and the lock in one statement) and when they type their birth date
(`VerificationService.verify`). Each step runs as the update middleware runs it: its own unit of
work (`bot.db.unit_of_work.unit_of_work`) on the project's engine and session factory, the chat
opened with `open_chat` first, committed at the end. The time measured (time.perf_counter) is
the service calls of the step, ORM and session included; the whole update (open_chat, the step
and the commit) is shown beside it.

The accounts are written with the import's own `write_accounts` in large batches, one
transaction, so they are stored exactly as an import stores them, and the planner's statistics
refreshed as an import refreshes them. Phones are valid E.164 numbers
of the countries matching the currencies and time zones; every 50th account shares the phone of
an earlier one. Lookups mix phones on file (one account or several) and valid phones not on file;
for a phone on file the birth date is right four times in five.

Lookups run one at a time (latency; this is where the target applies: p99 at most 2 ms for each
step) and then ``--concurrency`` at once. The exit status is 1 when the target is not met.
Without ``--database-url`` the database is a new SQLite file in a temporary directory; with a
PostgreSQL URL a scratch database is created beside the one named and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from import_accounts import PROFILES, scratch_database  # noqa: E402

from bot.clock import Clock  # noqa: E402
from bot.db.engine import create_engine, create_session_factory
from bot.db.schema import migrate  # noqa: E402
from bot.db.models import Account  # noqa: E402
from bot.db.unit_of_work import unit_of_work  # noqa: E402
from bot.domain.e164 import is_normalized_e164  # noqa: E402
from bot.services.accounts import AccountRecord, refresh_statistics, write_accounts  # noqa: E402
from bot.services.verification import PhoneClaim, VerificationRules, VerificationService  # noqa: E402

TARGET_P99_MS = 2.0
LOAD_BATCH = 20_000
SHARED_EVERY = 50
"""Every 50th account has the phone of an earlier account (a household, a re-issued card)."""
RULES = VerificationRules(max_attempts=3, lock_minutes=30, idle_minutes=30, phone_key=b"benchmark-phone-key")
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
FIRST_CHAT = 5_000_000_000


def _phone(rng: random.Random, profile: tuple) -> str:
    """A valid E.164 number of the profile's country, as `normalize_phone` would write it."""
    prefixes, digits = profile[3], profile[4]
    while True:
        phone = rng.choice(prefixes) + str(rng.randrange(2 * 10 ** (digits - 1), 10**digits))
        if is_normalized_e164(phone):
            return phone


def generate_accounts(count: int, seed: int = 11) -> list[AccountRecord]:
    rng = random.Random(seed)
    records: list[AccountRecord] = []
    for n in range(count):
        profile = PROFILES[n % len(PROFILES)]
        currency, locale, zone, places = profile[0], profile[1], profile[2], profile[5]
        if n % SHARED_EVERY == SHARED_EVERY - 1:
            # same country as this row's profile: an earlier account with the same n % len(PROFILES)
            phone = records[n - len(PROFILES) * rng.randint(1, min(200, n // len(PROFILES)))].phone
        else:
            phone = _phone(rng, profile)
        quantum = Decimal(1).scaleb(-places)
        statement = Decimal(rng.randint(1_000, 5_000_000) * (1 if places else 100)) * quantum
        overdue = (statement * Decimal(rng.randint(10, 100)) / 100).quantize(quantum)
        minimum = (overdue * Decimal(rng.randint(5, 20)) / 100).quantize(quantum)
        records.append(
            AccountRecord(
                account_id=f"ACC-{n:08d}",
                full_name=f"{rng.choice(_GIVEN)} {rng.choice(_FAMILY)}",
                phone=phone,
                birth_date=date(1950, 1, 1) + timedelta(days=rng.randrange(20_000)),
                card_last4=f"{rng.randrange(10_000):04d}",
                currency=currency,
                statement_balance=statement,
                overdue_amount=overdue,
                minimum_due=minimum,
                days_past_due=rng.randint(1, 180),
                late_fee=(Decimal(rng.randint(0, 10_000)) * quantum).quantize(quantum),
                daily_interest_rate=Decimal(f"0.000{rng.randint(1, 9)}"),
                locale=locale,
                timezone=zone,
            )
        )
    return records


_GIVEN = ("Li", "Wang", "Anna", "Ivan", "Olga", "James", "Mary", "Hiroshi", "Yuki", "Lukas", "Sofia", "Wei")
_FAMILY = ("Zhang", "Chen", "Ivanova", "Petrov", "Smith", "Johnson", "Tanaka", "Sato", "Müller", "Schmidt")


async def load(factory: async_sessionmaker[AsyncSession], records: list[AccountRecord]) -> float:
    started = time.perf_counter()
    async with factory() as session, session.begin():
        for start in range(0, len(records), LOAD_BATCH):
            await write_accounts(session, records[start:start + LOAD_BATCH], now=NOW)
    async with factory() as session, session.begin():
        await refresh_statistics(session)  # as `import_accounts` does after an import
    return time.perf_counter() - started


@dataclass(frozen=True)
class Lookup:
    phone: str
    birth_date: date
    kind: str
    """hit (one account), shared (several), miss (not on file)."""


def plan_lookups(records: list[AccountRecord], count: int, seed: int) -> list[Lookup]:
    rng = random.Random(seed)
    by_phone: dict[str, list[AccountRecord]] = {}
    for record in records:
        by_phone.setdefault(record.phone, []).append(record)
    shared = [phone for phone, owners in by_phone.items() if len(owners) > 1]
    lookups: list[Lookup] = []
    for n in range(count):
        draw = rng.random()
        if draw < 0.2:
            while (phone := _phone(rng, rng.choice(PROFILES))) in by_phone:
                pass
            lookups.append(Lookup(phone, date(1950, 1, 1) + timedelta(days=rng.randrange(20_000)), "miss"))
            continue
        if draw < 0.3 and shared:
            phone, kind = rng.choice(shared), "shared"
        else:
            phone, kind = rng.choice(records).phone, "hit"
        born = rng.choice(by_phone[phone]).birth_date
        if rng.random() < 0.2:
            born += timedelta(days=rng.randint(1, 300))
        lookups.append(Lookup(phone, born, kind))
    return lookups


@dataclass
class Timings:
    contact: list[float]
    birth_date: list[float]
    contact_update: list[float]
    birth_date_update: list[float]
    outcomes: dict[str, int]


async def one_lookup(factory: async_sessionmaker[AsyncSession], clock: Clock, chat_id: int, lookup: Lookup, timings: Timings) -> None:
    """The two updates of a verification, each a unit of work as the middleware opens it."""
    began = time.perf_counter()
    async with unit_of_work(factory) as unit:
        verification = VerificationService(unit.session, RULES, clock)
        await verification.open_chat(chat_id, chat_id)
        started = time.perf_counter()
        shared = await verification.claim_phone(lookup.phone)
        timings.contact.append(time.perf_counter() - started)
    timings.contact_update.append(time.perf_counter() - began)
    claim = shared.claim
    if shared.locked_until is not None:
        timings.outcomes["locked at contact"] = timings.outcomes.get("locked at contact", 0) + 1
        return
    claim = PhoneClaim.from_data(claim.as_data())  # as the FSM data hands it to the next update
    assert claim is not None
    began = time.perf_counter()
    async with unit_of_work(factory) as unit:
        verification = VerificationService(unit.session, RULES, clock)
        chat = await verification.open_chat(chat_id, chat_id)
        started = time.perf_counter()
        result = await verification.verify(chat.profile, claim, lookup.birth_date)
        timings.birth_date.append(time.perf_counter() - started)
    timings.birth_date_update.append(time.perf_counter() - began)
    key = f"{lookup.kind}: {result.outcome.value}"
    timings.outcomes[key] = timings.outcomes.get(key, 0) + 1


async def run_lookups(
    factory: async_sessionmaker[AsyncSession], lookups: list[Lookup], first_chat: int, concurrency: int
) -> tuple[Timings, float]:
    timings = Timings([], [], [], [], {})
    clock = Clock()
    started = time.perf_counter()
    if concurrency <= 1:
        for n, lookup in enumerate(lookups):
            await one_lookup(factory, clock, first_chat + n, lookup, timings)
    else:
        slots = asyncio.Semaphore(concurrency)

        async def bounded(n: int, lookup: Lookup) -> None:
            async with slots:
                await one_lookup(factory, clock, first_chat + n, lookup, timings)

        await asyncio.gather(*(bounded(n, lookup) for n, lookup in enumerate(lookups)))
    return timings, time.perf_counter() - started


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1] * 1000}


def show(label: str, seconds: list[float]) -> dict[str, float]:
    figures = percentiles(seconds)
    print(f"  {label:<34} n={len(seconds):>6}  " + "  ".join(f"{name} {value:7.3f}" for name, value in figures.items()) + "  ms")
    return figures


async def database_size(engine: AsyncEngine, url: str) -> str:
    if engine.dialect.name == "sqlite":
        path = Path(engine.url.database or "")
        total = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        return f"{total / 1e6:.0f} MB (file and WAL)"
    async with engine.connect() as connection:
        size = (await connection.execute(text("SELECT pg_database_size(current_database())"))).scalar_one()
    return f"{size / 1e6:.0f} MB (pg_database_size)"


async def explain(engine: AsyncEngine, phone: str) -> None:
    query = select(Account.id).where(Account.phone == phone).order_by(Account.id)
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    async with engine.connect() as connection:
        compiled = query.compile(connection, compile_kwargs={"literal_binds": True})
        rows = (await connection.exec_driver_sql(prefix + str(compiled))).all()
    print("plan of the contact step's account query: " + " | ".join(str(row[-1]) for row in rows))


async def run(args: argparse.Namespace, directory: Path) -> int:
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    started = time.perf_counter()
    records = generate_accounts(args.accounts)
    print(f"generated {len(records):,} accounts in {time.perf_counter() - started:.1f} s")
    warmup = plan_lookups(records, args.warmup, seed=1)
    sequential = plan_lookups(records, args.lookups, seed=2)
    concurrent = plan_lookups(records, args.lookups, seed=3) if args.concurrency > 1 else []

    async with scratch_database(args.database_url, directory) as url:
        engine = create_engine(url, max_concurrent_updates=max(8, args.concurrency))
        try:
            await migrate(url)
            factory = create_session_factory(engine)
            seconds = await load(factory, records)
            async with factory() as session:
                stored = (await session.execute(select(func.count()).select_from(Account))).scalar_one()
            print(
                f"database: {engine.dialect.name}; loaded {stored:,} accounts in {seconds:.1f} s "
                f"({stored / seconds:,.0f} rows/s); size {await database_size(engine, url)}"
            )
            await explain(engine, sequential[0].phone)
            del records

            await run_lookups(factory, warmup, FIRST_CHAT, 1)
            timings, wall = await run_lookups(factory, sequential, FIRST_CHAT + args.warmup, 1)
            print(f"sequential: {len(sequential)} verifications in {wall:.1f} s; outcomes {dict(sorted(timings.outcomes.items()))}")
            contact = show("contact step (claim_phone)", timings.contact)
            birth = show("birth-date step (verify)", timings.birth_date)
            show("contact update (with open+commit)", timings.contact_update)
            show("birth-date update (with open+commit)", timings.birth_date_update)
            if concurrent:
                timings, wall = await run_lookups(factory, concurrent, FIRST_CHAT + args.warmup + args.lookups, args.concurrency)
                print(f"{args.concurrency} at once: {len(concurrent)} verifications in {wall:.1f} s ({len(concurrent) / wall:,.0f}/s)")
                show("contact step (claim_phone)", timings.contact)
                show("birth-date step (verify)", timings.birth_date)
                show("contact update (with open+commit)", timings.contact_update)
                show("birth-date update (with open+commit)", timings.birth_date_update)
        finally:
            await engine.dispose()
    print(f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    met = contact["p99"] <= TARGET_P99_MS and birth["p99"] <= TARGET_P99_MS
    print(
        f"target p99 <= {TARGET_P99_MS} ms per step, one at a time: "
        f"{'met' if met else 'NOT met'} (contact {contact['p99']:.3f} ms, birth date {birth['p99']:.3f} ms)"
    )
    return 0 if met else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=5_000, help="verifications measured (each run)")
    parser.add_argument("--warmup", type=int, default=500, help="verifications before measuring")
    parser.add_argument("--concurrency", type=int, default=32, help="verifications at once in the second run (1: none)")
    parser.add_argument(
        "--database-url", help="PostgreSQL to use, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test (a scratch database beside it)"
    )
    parser.add_argument("--keep", type=Path, help="put the SQLite file here instead of a temporary directory")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        for leftover in args.keep.glob("bench.sqlite3*"):
            leftover.unlink()
        sys.exit(asyncio.run(run(args, args.keep)))
    with tempfile.TemporaryDirectory() as directory:
        sys.exit(asyncio.run(run(args, Path(directory))))


if __name__ == "__main__":
    main()
