"""Time the account import: N generated rows into a fresh SQLite file.

    python benchmarks/import_accounts.py [--rows 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.db.engine import create_engine, create_schema, create_session_factory  # noqa: E402
from bot.services.accounts import COLUMNS, import_accounts  # noqa: E402

PROFILES = (
    # currency, locale, timezone, phone prefix, range of the digits after it, minor unit
    ("CNY", "zh_CN", "Asia/Shanghai", "+86138", (0, 99_999_999), 2),
    ("RUB", "ru", "Europe/Moscow", "+7912", (0, 9_999_999), 2),
    ("USD", "en", "America/New_York", "+1415", (2_000_000, 9_999_999), 2),
    ("JPY", "en", "Asia/Tokyo", "+8190", (10_000_000, 99_999_999), 0),
    ("EUR", "en", "Europe/Berlin", "+49151", (10_000_000, 99_999_999), 2),
)


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for n in range(rows):
            currency, locale, zone, prefix, (low, high), places = PROFILES[n % len(PROFILES)]
            scale = 100 if places == 2 else 1
            statement = rng.randint(1_000, 5_000_000) * (1 if places == 2 else 100)
            overdue = rng.randint(statement // 10, statement)
            minimum = rng.randint(overdue // 20, overdue // 5)

            def money(value: int) -> str:
                return f"{value / scale:.{places}f}" if places else str(value)

            writer.writerow(
                (
                    f"ACC-{n:08d}",
                    f"Cardholder {n}",
                    prefix + f"{rng.randint(low, high):0{len(str(high))}d}",
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
                )
            )


async def run(rows: int, directory: Path) -> None:
    source = directory / "accounts.csv"
    started = time.perf_counter()
    generate(source, rows)
    print(f"generated {rows} rows ({source.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")

    engine = create_engine(f"sqlite+aiosqlite:///{directory / 'bench.sqlite3'}")
    await create_schema(engine)
    factory = create_session_factory(engine)
    now = datetime.now(timezone.utc)
    try:
        for label in ("first import", "re-import (unchanged)"):
            started = time.perf_counter()
            report = await import_accounts(factory, source, now=now)
            seconds = time.perf_counter() - started
            print(
                f"{label}: {seconds:.2f} s, {rows / seconds:,.0f} rows/s "
                f"(inserted {report.inserted}, updated {report.updated}, unchanged {report.unchanged}, "
                f"rejected {report.rejected})"
            )
            if report.errors:
                print("\n".join(str(error) for error in report.errors[:5]))
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="write the CSV and database here instead of a temporary directory")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        asyncio.run(run(args.rows, args.keep))
    else:
        with tempfile.TemporaryDirectory() as directory:
            asyncio.run(run(args.rows, Path(directory)))


if __name__ == "__main__":
    main()
