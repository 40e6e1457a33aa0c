"""`python -m bot calc`: an installment plan's schedule and totals, the same numbers the bot shows.

    python -m bot calc --amount 12000 --currency CNY --months 12 \\
        [--method flat --rate 0.0075 | --method amortizing --apr 0.18] [--start 2026-12-01] [--json]
        [--jurisdiction CN] [--rounding half_up|down] [--remainder first|last]

The plan is priced by the jurisdiction's pack in the policy (POLICY_FILE): --jurisdiction, or the
currency's default, as the bot prices an account without one. Without --rate or --apr the method
and rate are the pack's for that term, and the term must be one it offers (self-service or
agent-only). With an explicit rate the command is a what-if calculation: the term only has to be 1
to 60 months and the rate in range. Either way the plan is rounded as the pack says, unless
--rounding or --remainder say otherwise.
Every bad input raises `CalculationError` (a `DomainError`): the caller prints `error: <message>`
and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from typing import Any, TextIO

from bot.domain.calculator import (
    AMORTIZING,
    FLAT,
    FIRST,
    REMAINDERS,
    ROUNDINGS,
    InstallmentPlan,
    format_amount,
    make_plan,
)
from bot.domain.errors import CalculationError, DomainError
from bot.domain.policy import Policy, load_policy

EXIT_USAGE = 2


def add_calc_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `calc` sub-command to an `add_subparsers()` object; returns its parser."""
    parser = subparsers.add_parser(
        "calc",
        help="print an installment plan's schedule, totals and annualized rate",
        description="Print an installment plan: schedule, total fee or interest, total paid and the "
        "annualized rate (IRR). Rates are fractions: --rate 0.0075 is 0.75 %% a month, --apr 0.18 is 18 %%.",
    )
    add_calc_arguments(parser)
    return parser


def add_calc_arguments(parser: argparse.ArgumentParser) -> None:
    # Values are read as text and checked by the calculator, so a mistake is a domain error message.
    parser.add_argument("--amount", required=True, help="principal, e.g. 12000 or 12000.50")
    parser.add_argument("--currency", required=True, help="ISO 4217 code, e.g. CNY, USD, JPY")
    parser.add_argument("--months", required=True, help="number of monthly payments (1 to 60)")
    parser.add_argument("--method", choices=(FLAT, AMORTIZING), help="default: the policy's method for the term")
    parser.add_argument("--rate", help="flat monthly fee rate, a fraction (0.0075 = 0.75 %% a month)")
    parser.add_argument("--apr", help="nominal annual rate for amortizing plans, a fraction (0.18 = 18 %%)")
    parser.add_argument("--start", help="the day the plan is agreed, YYYY-MM-DD (default: today); "
                        "payment k is due k months later")
    parser.add_argument("--jurisdiction", help="the pack that prices the plan, e.g. CN (default: the currency's)")
    parser.add_argument("--rounding", choices=ROUNDINGS, help="the per-period amount rounded half-up or down "
                        "(default: the pack's)")
    parser.add_argument("--remainder", choices=REMAINDERS, help="the period that takes what rounding leaves "
                        "(default: the pack's)")
    parser.add_argument("--json", action="store_true", help="print JSON (amounts as strings) instead of a table")


async def calc_command(settings: Any, arguments: argparse.Namespace) -> int:
    """Entry point for `bot.cli.COMMANDS["calc"]` (async, like the other commands)."""
    print(render(compute_plan(settings, arguments), as_json=arguments.json))
    return 0


def compute_plan(settings: Any, arguments: argparse.Namespace, today: date | None = None) -> InstallmentPlan:
    months = _months(arguments.months)
    start = _start(arguments.start, today)
    method, rate = _method_and_rate(arguments)
    policy = _pack_policy(load_policy(settings.policy_file), arguments)
    conventions = policy.rules.plans
    rounding = arguments.rounding or conventions.rounding
    remainder = arguments.remainder or conventions.remainder
    if rate is None:
        policy_method, rate = policy.plan_terms(months, agent=True)
        if method is not None and method != policy_method:
            option = "--rate" if method == FLAT else "--apr"
            raise CalculationError(
                f"the policy prices {months} months as {policy_method}; give {option} to price it as {method}"
            )
        method = policy_method
    return make_plan(
        method, arguments.amount, arguments.currency, months, rate, start=start, rounding=rounding, remainder=remainder
    )


def _pack_policy(policy: Policy, arguments: argparse.Namespace) -> Policy:
    """The policy as it applies to an account of this currency (and jurisdiction, when given)."""
    code = getattr(arguments, "jurisdiction", None)
    if code is not None and code.strip().upper() not in policy.jurisdictions:
        raise CalculationError(
            f"no jurisdiction {code!r} in the policy; its packs: {', '.join(sorted(policy.jurisdictions))}"
        )
    currency = str(arguments.currency or "").strip().upper()
    return policy.for_jurisdiction(policy.pack_for(code and code.strip().upper(), currency).code)


def _method_and_rate(arguments: argparse.Namespace) -> tuple[str | None, str | None]:
    method, rate, apr = arguments.method, arguments.rate, arguments.apr
    if rate is not None and apr is not None:
        raise CalculationError("give either --rate (flat) or --apr (amortizing), not both")
    if rate is not None:
        if method == AMORTIZING:
            raise CalculationError("--rate is the flat monthly fee rate; an amortizing plan takes --apr")
        return FLAT, rate
    if apr is not None:
        if method == FLAT:
            raise CalculationError("--apr is for amortizing plans; a flat plan takes --rate")
        return AMORTIZING, apr
    return method, None


def _months(text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise CalculationError(f"months {text!r} is not a whole number") from None


def _start(text: str | None, today: date | None) -> date:
    if text is None:
        return today or date.today()
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise CalculationError(f"start {text!r} is not a date such as 2026-12-01") from None


def render(plan: InstallmentPlan, as_json: bool = False) -> str:
    if as_json:
        return json.dumps(plan.as_dict(), ensure_ascii=False, indent=2)
    return format_table(plan)


def format_table(plan: InstallmentPlan) -> str:
    money = lambda amount: format_amount(amount, plan.currency)  # noqa: E731
    if plan.method == FLAT:
        title = f"Flat fee {_percent(plan.rate)} a month"
        fee_label, total_label = "Fee", "Total fee"
    else:
        title = f"Amortizing, APR {_percent(plan.rate)}"
        fee_label, total_label = "Interest", "Total interest"
    header = ("#", "Due date", "Principal", fee_label, "Payment", "Remaining")
    body = [
        (str(row.number), row.due_date.isoformat(), money(row.principal), money(row.fee), money(row.payment),
         money(row.remaining))
        for row in plan.schedule
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    rounded = "rounded half-up" if plan.rounding == "half_up" else "rounded down"
    rest = "the first period" if plan.remainder == FIRST else "the last period"
    lines = [
        f"{title}: {money(plan.principal)} {plan.currency} over {plan.months} months, agreed {plan.start.isoformat()}",
        f"Per-period amount {rounded}; the remainder in {rest}",
        "",
        "  ".join(cell.rjust(width) if i != 1 else cell.ljust(width) for i, (cell, width) in enumerate(zip(header, widths))),
    ]
    for line in body:
        lines.append("  ".join(cell.rjust(width) if i != 1 else cell.ljust(width) for i, (cell, width) in enumerate(zip(line, widths))))
    lines += [
        "",
        f"{total_label}: {money(plan.total_fee)} {plan.currency}",
        f"Total paid: {money(plan.total_paid)} {plan.currency}",
        f"Annualized rate (IRR, monthly x 12): {plan.annual_rate} %",
    ]
    return "\n".join(lines)


def _percent(rate: Any) -> str:
    value = (rate * 100).normalize()
    text = f"{value:f}"
    if "." not in text:
        text += ".00"
    elif len(text.split(".")[1]) < 2:
        text += "0"
    return f"{text} %"


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """Run `calc` on its own (`python -m bot.calc_cli --amount ...`): errors print without a traceback."""
    from bot.settings import SettingsError, load_settings

    parser = argparse.ArgumentParser(prog="python -m bot.calc_cli", description=__doc__.splitlines()[0])
    add_calc_arguments(parser)
    arguments = parser.parse_args(argv)
    try:
        settings = load_settings()
        plan = compute_plan(settings, arguments)
    except (DomainError, SettingsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(render(plan, as_json=arguments.json), file=out or sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
