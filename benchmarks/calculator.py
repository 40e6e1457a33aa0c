"""Time the plan calculator: 12-month schedules per second on one core, flat and amortizing.

    python benchmarks/calculator.py [--seconds 3]

Each plan is built from scratch (validation, schedule rows, totals and the annualized rate by IRR),
with a different principal every time; the target is at least 20,000 schedules per second.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.domain.calculator import amortizing_plan, flat_fee_plan  # noqa: E402

TARGET = 20_000


def rate_per_second(build, rate: Decimal, seconds: float) -> float:
    start_date = date(2026, 12, 31)
    amounts = [Decimal(f"{10_000 + n * 7}.{n % 100:02d}") for n in range(1000)]
    build(amounts[0], "CNY", 12, rate, start=start_date)  # warm the caches
    count = 0
    began = time.perf_counter()
    deadline = began + seconds
    while time.perf_counter() < deadline:
        for amount in amounts:
            build(amount, "CNY", 12, rate, start=start_date)
        count += len(amounts)
    return count / (time.perf_counter() - began)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per method (default 3)")
    arguments = parser.parse_args()
    results = {
        "flat 0.60 %/month": rate_per_second(flat_fee_plan, Decimal("0.006"), arguments.seconds),
        "amortizing APR 18 %": rate_per_second(amortizing_plan, Decimal("0.18"), arguments.seconds),
        "amortizing APR 10 %": rate_per_second(amortizing_plan, Decimal("0.10"), arguments.seconds),
    }
    for name, value in results.items():
        verdict = "ok" if value >= TARGET else f"below the {TARGET:,}/s target"
        print(f"12-month {name:<22} {value:>10,.0f} schedules/s  ({verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
