"""Rounding conventions of plans: the pack's `rounding` and `remainder`, and CN's reproducing China
Merchants Bank's published installment examples."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from bot.domain.calculator import (
    DOWN,
    FIRST,
    HALF_UP,
    LAST,
    amortizing_plan,
    flat_fee_plan,
    make_plan,
    plan_for_term,
)
from bot.domain.errors import CalculationError
from bot.domain.policy import load_policy
from bot.settings import DEFAULT_POLICY_FILE

POLICY = load_policy(DEFAULT_POLICY_FILE)
CN = POLICY.for_jurisdiction("CN").rules.plans
START = date(2026, 12, 1)


def principals(plan) -> list[Decimal]:
    return [row.principal for row in plan.schedule]


def test_the_cn_pack_prices_flat_rounds_down_and_puts_the_remainder_last():
    assert (CN.method, CN.rounding, CN.remainder) == ("flat", DOWN, LAST)


@pytest.mark.parametrize(
    ("amount", "months", "rate", "part", "fee", "payment", "last_part"),
    [
        # 100,000 over 24 periods at 0.68 %: "分期手续费 = 100,000 x 0.68% = 680; 每期本金 = 100,000 / 24
        # = 4,166.66; 每月还款 = 4,166.66 + 680 = 4,846.66" (cut to the cent, not rounded: 4,166.666...).
        ("100000", 24, "0.0068", "4166.66", "680.00", "4846.66", "4166.82"),
        # 1,699 over 3 periods at 0.90 %: "每期本金 566.33元, 每期手续费 15.29元, 每期还款总额 581.62元".
        ("1699", 3, "0.009", "566.33", "15.29", "581.62", "566.34"),
        # 5,000 over 6 periods at 0.75 %: "每期手续费 = 5000 x 0.75% = 37.5; 每期应还本金 = 5000/6 =
        # 833.33元; 每期应还总额 = 37.5 + 833.33 = 870.83元".
        ("5000", 6, "0.0075", "833.33", "37.50", "870.83", "833.35"),
    ],
)
def test_cn_default_reproduces_china_merchants_banks_published_examples(
    amount, months, rate, part, fee, payment, last_part
):
    """China Merchants Bank's credit-card bill installments (账单分期), its terms and worked examples:
    "每期手续费 = 分期总金额 x 每期手续费费率; 分期本金总额以月为单位平均摊还, 余数计入最后一期"
    (每期应还本金精确到分). Quoted from the bank's terms by hdske.com, "招行信用卡分期手续费怎么计算"
    (2019-12-20: the 1,699 example), wwpfw.com/xinyongqiayuqi/96949.html (the 5,000 example) and
    wodefinance.com/Creditcardoverdue/vnlixtouso.html (the 100,000 example); the bank's own page
    was not among the material searched. The last period's principal follows from the rule.
    """
    plan = flat_fee_plan(Decimal(amount), "CNY", months, Decimal(rate), start=START, rounding=CN.rounding, remainder=CN.remainder)
    assert principals(plan)[:-1] == [Decimal(part)] * (months - 1)
    assert {row.fee for row in plan.schedule} == {Decimal(fee)}
    assert plan.payment == Decimal(payment)
    assert [row.payment for row in plan.schedule[:-1]] == [Decimal(payment)] * (months - 1)
    assert plan.schedule[-1].principal == Decimal(last_part)
    assert plan.total_paid == Decimal(amount) + Decimal(fee) * months


def test_flat_remainder_first_or_last():
    last = flat_fee_plan(Decimal("10000"), "CNY", 12, Decimal("0.006"), start=START, rounding=DOWN, remainder=LAST)
    first = flat_fee_plan(Decimal("10000"), "CNY", 12, Decimal("0.006"), start=START, rounding=DOWN, remainder=FIRST)
    assert principals(last) == [Decimal("833.33")] * 11 + [Decimal("833.37")]
    assert principals(first) == [Decimal("833.37")] + [Decimal("833.33")] * 11
    assert first.payment == last.payment == Decimal("893.33")
    assert (first.first_payment, first.last_payment) == (Decimal("893.37"), Decimal("893.33"))
    assert first.total_paid == last.total_paid == Decimal("10720.00")
    # paying the 0.04 eleven months sooner moves the IRR by less than a thousandth of a percent
    assert first.annual_rate == last.annual_rate == Decimal("13.03")


def test_flat_half_up_can_leave_a_smaller_remainder():
    # 100,000 / 24 = 4,166.666...: half-up 4,166.67 a period leaves 4,166.59 for the remainder's period.
    plan = flat_fee_plan(Decimal("100000"), "CNY", 24, Decimal("0.0068"), start=START, rounding=HALF_UP, remainder=LAST)
    assert principals(plan) == [Decimal("4166.67")] * 23 + [Decimal("4166.59")]
    assert plan.payment == Decimal("4846.67") and plan.max_payment == Decimal("4846.67")
    assert sum(principals(plan)) == Decimal("100000.00")


def test_amortizing_conventions():
    # 12,000 at 6 % over 60 months: the formula's payment is 231.9936...
    half_up = amortizing_plan(Decimal("12000"), "CNY", 60, Decimal("0.06"), start=START, rounding=HALF_UP, remainder=LAST)
    # half-up 231.99 would leave a larger last payment, so 232.00, and the last pays 231.53
    assert (half_up.payment, half_up.last_payment, half_up.total_paid) == (Decimal("232.00"), Decimal("231.53"), Decimal("13919.53"))
    down = amortizing_plan(Decimal("12000"), "CNY", 60, Decimal("0.06"), start=START, rounding=DOWN, remainder=LAST)
    # rounded down, 231.99 a month and the last takes the rest
    assert (down.payment, down.last_payment, down.total_paid) == (Decimal("231.99"), Decimal("232.25"), Decimal("13919.66"))
    first = amortizing_plan(Decimal("12000"), "CNY", 60, Decimal("0.06"), start=START, rounding=DOWN, remainder=FIRST)
    # the first month pays 232.15, after which 231.99 a month comes out even
    assert first.first_payment == Decimal("232.15")
    assert {row.payment for row in first.schedule[1:]} == {Decimal("231.99")}
    assert first.total_paid == Decimal("13919.56")
    for plan in (half_up, down, first):
        assert sum(row.payment for row in plan.schedule) == plan.total_paid
        assert plan.annual_rate == Decimal("6.00")


def test_packs_price_and_round_their_accounts_plans():
    us, cn = POLICY.for_jurisdiction("US"), POLICY.for_jurisdiction("CN")
    us_plan = plan_for_term(Decimal("5200"), "USD", 12, us, start=START)
    assert (us_plan.method, us_plan.rounding, us_plan.remainder, us_plan.rate) == ("amortizing", HALF_UP, LAST, Decimal("0.0990"))
    cn_plan = plan_for_term(Decimal("10000"), "CNY", 12, cn, start=START)
    assert (cn_plan.method, cn_plan.rounding, cn_plan.remainder) == ("flat", DOWN, LAST)
    # an agent-only hardship plan of a CN account amortizes, rounded as the pack says
    hardship = plan_for_term(Decimal("12000"), "CNY", 60, cn, start=START, agent=True)
    assert (hardship.method, hardship.rounding, hardship.payment) == ("amortizing", DOWN, Decimal("231.99"))


def test_unknown_conventions_are_refused():
    with pytest.raises(CalculationError, match="rounding must be one of half_up, down"):
        flat_fee_plan(Decimal("1000"), "CNY", 3, Decimal("0.006"), start=START, rounding="up")
    with pytest.raises(CalculationError, match="remainder must be one of first, last"):
        make_plan("amortizing", Decimal("1000"), "CNY", 3, Decimal("0.1"), start=START, remainder="middle")
