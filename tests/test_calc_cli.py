"""`calc` on the command line: table and JSON output, bad input as one error line (exit status 2)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.calc_cli import add_calc_parser, calc_command, compute_plan
from bot.domain.errors import CalculationError, DomainError
from bot.settings import DEFAULT_POLICY_FILE, PROJECT_ROOT

SETTINGS = SimpleNamespace(policy_file=DEFAULT_POLICY_FILE)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot")
    commands = parser.add_subparsers(dest="command", required=True)
    add_calc_parser(commands)
    return parser.parse_args(["calc", *argv])


async def test_table(capsys):
    arguments = parse("--amount", "10000", "--currency", "CNY", "--months", "12", "--method", "flat",
                      "--rate", "0.006", "--start", "2026-12-31")
    assert await calc_command(SETTINGS, arguments) == 0
    out = capsys.readouterr().out
    assert "Flat fee 0.60 % a month: 10000.00 CNY over 12 months" in out
    assert " 1  2027-01-31     833.33  60.00   893.33    9166.67" in out
    assert " 2  2027-02-28" in out
    assert "12  2027-12-31     833.37  60.00   893.37       0.00" in out
    assert "Total fee: 720.00 CNY" in out and "Total paid: 10720.00 CNY" in out
    assert "Annualized rate (IRR, monthly x 12): 13.03 %" in out


async def test_json_amounts_are_strings(capsys):
    arguments = parse("--amount", "12000", "--currency", "USD", "--months", "12", "--method", "amortizing",
                      "--apr", "0.18", "--start", "2026-12-01", "--json")
    assert await calc_command(SETTINGS, arguments) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["method"] == "amortizing" and data["currency"] == "USD" and data["months"] == 12
    # the formula gives 1100.1597...; 1100.16 would leave a larger last payment, so 1100.17
    assert data["payment"] == "1100.17" and data["annual_rate_percent"] == "18.00"
    assert data["rate"] == "0.18"
    assert len(data["schedule"]) == 12
    first = data["schedule"][0]
    assert first == {"number": 1, "due_date": "2027-01-01", "principal": "920.17", "fee": "180.00",
                     "payment": "1100.17", "remaining": "11079.83"}
    assert all(isinstance(row[key], str) for row in data["schedule"] for key in ("principal", "fee", "payment"))
    assert sum(float(row["principal"]) for row in data["schedule"]) == pytest.approx(12000)


async def test_json_jpy_has_no_decimals(capsys):
    arguments = parse("--amount", "120000", "--currency", "JPY", "--months", "12", "--rate", "0.0075",
                      "--start", "2026-12-01", "--json")
    await calc_command(SETTINGS, arguments)
    data = json.loads(capsys.readouterr().out)
    assert data["principal"] == "120000" and data["payment"] == "10900" and data["total_fee"] == "10800"


def test_rate_from_the_policy():
    plan = compute_plan(SETTINGS, parse("--amount", "12000", "--currency", "CNY", "--months", "12"),
                        today=date(2026, 12, 1))
    assert plan.method == "flat" and str(plan.rate) == "0.0060" and plan.start == date(2026, 12, 1)
    agent_term = compute_plan(SETTINGS, parse("--amount", "12000", "--currency", "CNY", "--months", "60"))
    assert agent_term.method == "amortizing" and str(agent_term.rate) == "0.06"


def test_the_currencys_pack_prices_and_rounds_the_plan():
    # USD accounts belong to the US pack: 12 months amortize at 9.90 %, as the bot shows them
    plan = compute_plan(SETTINGS, parse("--amount", "5200", "--currency", "USD", "--months", "12"), today=date(2026, 12, 1))
    assert (plan.method, str(plan.rate), plan.rounding, plan.remainder) == ("amortizing", "0.0990", "half_up", "last")
    assert plan.payment == Decimal("456.93") and plan.last_payment == Decimal("456.82")
    cn = compute_plan(SETTINGS, parse("--amount", "5200", "--currency", "USD", "--months", "12", "--jurisdiction", "cn"))
    assert cn.method == "flat" and cn.rounding == "down"


async def test_conventions_can_be_given(capsys):
    arguments = parse("--amount", "10000", "--currency", "CNY", "--months", "12", "--rate", "0.006",
                      "--start", "2026-12-31", "--remainder", "first")
    assert await calc_command(SETTINGS, arguments) == 0
    out = capsys.readouterr().out
    assert "Per-period amount rounded down; the remainder in the first period" in out
    assert " 1  2027-01-31     833.37  60.00   893.37    9166.63" in out
    assert "12  2027-12-31     833.33  60.00   893.33       0.00" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--amount", "-12000", "--currency", "CNY", "--months", "12", "--rate", "0.006"), "amount must be more than 0"),
        (("--amount", "12000", "--currency", "XYZ", "--months", "12", "--rate", "0.006"), "unknown currency 'XYZ'"),
        (("--amount", "12000", "--currency", "CNY", "--months", "twelve", "--rate", "0.006"), "months 'twelve' is not a whole number"),
        (("--amount", "12000", "--currency", "CNY", "--months", "7"), "7 months is not a term the policy offers"),
        (("--amount", "12000", "--currency", "CNY", "--months", "12", "--rate", "0.6"), "flat monthly fee rate 0.6 is out of range"),
        (("--amount", "12000", "--currency", "CNY", "--months", "12", "--rate", "0.006", "--apr", "0.1"), "not both"),
        (("--amount", "12000", "--currency", "CNY", "--months", "12", "--method", "amortizing", "--rate", "0.006"), "takes --apr"),
        (("--amount", "12000", "--currency", "CNY", "--months", "12", "--method", "amortizing"), "give --apr to price it as amortizing"),
        (("--amount", "12000", "--currency", "CNY", "--months", "12", "--rate", "0.006", "--start", "31/12/2026"), "start '31/12/2026' is not a date"),
        (("--amount", "12000", "--currency", "CNY", "--months", "12", "--jurisdiction", "XX"), "no jurisdiction 'XX' in the policy"),
    ],
)
async def test_bad_input_is_a_domain_error(argv, message):
    with pytest.raises(CalculationError) as caught:
        await calc_command(SETTINGS, parse(*argv))
    assert isinstance(caught.value, DomainError)
    assert message in str(caught.value)


def test_bad_input_prints_one_line_and_exits_2():
    result = subprocess.run(
        [sys.executable, "-m", "bot.calc_cli", "--amount", "0", "--currency", "CNY", "--months", "12", "--rate", "0.006"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "", "POLICY_FILE": str(DEFAULT_POLICY_FILE), "HOME": str(Path.home())},
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "error: amount must be more than 0, got 0 CNY\n"
    assert "Traceback" not in result.stderr
