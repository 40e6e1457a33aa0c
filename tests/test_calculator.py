"""Worked examples with published figures, calendar rules, cost of waiting, negotiation, promises."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from bot.domain.calculator import (
    AccountFigures,
    OfferReason,
    PromiseReason,
    amortizing_plan,
    available_plans,
    check_promise_date,
    cost_of_waiting,
    due_dates,
    flat_fee_plan,
    monthly_irr,
    negotiate,
    plan_for_term,
)
from bot.domain.errors import CalculationError, DomainError
from bot.domain.policy import load_policy
from bot.settings import DEFAULT_POLICY_FILE

START = date(2026, 12, 1)


@pytest.fixture(scope="module")
def policy():
    return load_policy(DEFAULT_POLICY_FILE)


def sums_exactly(plan) -> None:
    assert sum(row.principal for row in plan.schedule) == plan.principal
    assert sum(row.fee for row in plan.schedule) == plan.total_fee
    assert sum(row.payment for row in plan.schedule) == plan.total_paid == plan.principal + plan.total_fee
    assert plan.schedule[-1].remaining == 0


# --- flat fee (CN card installments, 分期) -------------------------------------------------------


def test_flat_fee_ten_thousand_over_twelve_months_at_060_percent():
    # The reference example of the collections domain brief: 10,000 over 12 periods at 0.60 % a month
    # -> 893.33 a month, 720 fee in all, annualized 13.03 % (the shortcut f*n/(n+1)*24 gives 13.29 %).
    plan = flat_fee_plan(Decimal("10000"), "CNY", 12, Decimal("0.006"), start=START)
    assert plan.payment == Decimal("893.33")
    assert [row.fee for row in plan.schedule] == [Decimal("60.00")] * 12
    assert plan.total_fee == Decimal("720.00")
    assert plan.total_paid == Decimal("10720.00")
    assert plan.annual_rate == Decimal("13.03")
    shortcut = Decimal("0.006") * 12 / 13 * 24 * 100
    assert shortcut.quantize(Decimal("0.01")) == Decimal("13.29") != plan.annual_rate
    # the rounding difference of the principal lands in the last month
    assert [row.principal for row in plan.schedule[:11]] == [Decimal("833.33")] * 11
    assert plan.schedule[-1].principal == Decimal("833.37")
    assert plan.last_payment == Decimal("893.37")
    sums_exactly(plan)


@pytest.mark.parametrize(
    ("months", "payment", "fee", "annual"),
    [
        # Chinese card installments at 0.75 % a month: the figures widely published when the PBOC
        # (announcement 2021 No. 3) made banks disclose the annualized rate: 12 periods ≈ 16.22 %,
        # 24 periods ≈ 16.43 % (RATE(n, -payment, 10000) * 12 in any spreadsheet gives the same).
        (12, Decimal("908.33"), Decimal("900.00"), Decimal("16.22")),
        (24, Decimal("491.66"), Decimal("1800.00"), Decimal("16.43")),
    ],
)
def test_flat_fee_at_075_percent_a_month(months, payment, fee, annual):
    plan = flat_fee_plan(Decimal("10000.00"), "CNY", months, Decimal("0.0075"), start=START)
    assert plan.payment == payment
    assert plan.total_fee == fee
    assert plan.annual_rate == annual
    sums_exactly(plan)


def test_zero_fee_plan_discloses_zero():
    plan = flat_fee_plan(Decimal("1200"), "CNY", 12, Decimal("0"), start=START)
    assert plan.payment == Decimal("100.00") and plan.total_fee == 0 and plan.annual_rate == Decimal("0.00")


# --- amortizing (declining balance) --------------------------------------------------------------


def formula_payment(principal: Decimal, apr: Decimal, months: int) -> Decimal:
    r = apr / 12
    return principal * r / (1 - (1 + r) ** -months)


def test_amortizing_matches_the_standard_payment_formula():
    # $20,000 at 6 % APR over 60 months: P*r/(1-(1+r)^-n) = 386.656... -> 386.66 a month, the figure
    # every loan table and spreadsheet PMT(0.5 %, 60, -20000) gives.
    plan = amortizing_plan(Decimal("20000"), "USD", 60, Decimal("0.06"), start=START)
    assert plan.payment == formula_payment(Decimal(20000), Decimal("0.06"), 60).quantize(Decimal("0.01"))
    assert plan.payment == Decimal("386.66")
    assert plan.schedule[0].fee == Decimal("100.00")  # 20,000 x 0.5 %
    assert plan.schedule[0].principal == Decimal("286.66")
    assert plan.last_payment <= plan.payment
    assert plan.annual_rate == Decimal("6.00")
    sums_exactly(plan)


@pytest.mark.parametrize(
    ("principal", "months", "per_hundred"),
    [
        # Regulation Z APR tables (FRB-103-M, monthly payment plans), column 12.00 %: the finance charge
        # per $100 financed is $6.62 for 12 payments and $19.57 for 36 payments.
        (Decimal("1000"), 12, Decimal("6.62")),
        (Decimal("5000"), 36, Decimal("19.57")),
    ],
)
def test_amortizing_against_regulation_z_apr_tables(principal, months, per_hundred):
    plan = amortizing_plan(principal, "USD", months, Decimal("0.12"), start=START)
    assert (plan.total_fee * 100 / principal).quantize(Decimal("0.01")) == per_hundred
    assert plan.annual_rate == Decimal("12.00")
    exact = formula_payment(principal, Decimal("0.12"), months)
    assert abs(plan.payment - exact) <= Decimal("0.01")
    sums_exactly(plan)


def test_amortizing_payment_is_raised_one_cent_rather_than_end_with_a_larger_payment():
    # $5,000 at 12 % over 36 months: the formula's 166.07 would leave a last payment of 166.13; the
    # level payment becomes 166.08 and the last one 165.73, so payments never increase.
    plan = amortizing_plan(Decimal("5000"), "USD", 36, Decimal("0.12"), start=START)
    assert plan.payment == Decimal("166.08")
    assert plan.last_payment == Decimal("165.73")
    assert plan.total_fee == Decimal("978.53")


def test_amortizing_disclosed_rate_is_the_apr():
    for apr in ("0.0599", "0.12", "0.18", "0.2499", "0.36"):
        plan = amortizing_plan(Decimal("50000"), "CNY", 24, Decimal(apr), start=START)
        assert plan.annual_rate == (Decimal(apr) * 100).quantize(Decimal("0.01"))


def test_amortizing_at_zero_rate_splits_evenly():
    plan = amortizing_plan(Decimal("1000"), "USD", 3, Decimal("0"), start=START)
    assert [row.payment for row in plan.schedule] == [Decimal("333.34"), Decimal("333.34"), Decimal("333.32")]
    assert plan.annual_rate == Decimal("0.00")
    sums_exactly(plan)


# --- currencies and calendar ----------------------------------------------------------------------


def test_jpy_has_no_decimals():
    plan = flat_fee_plan(Decimal("100000"), "JPY", 12, Decimal("0.0075"), start=START)
    assert plan.payment == Decimal("9083")  # 8333 + 750
    assert plan.schedule[-1].principal == Decimal("8337")
    assert all(row.payment.as_tuple().exponent == 0 for row in plan.schedule)
    sums_exactly(plan)
    amortizing = amortizing_plan(Decimal("1000000"), "JPY", 24, Decimal("0.15"), start=START)
    assert all(row.fee.as_tuple().exponent == 0 for row in amortizing.schedule)
    sums_exactly(amortizing)


def test_three_decimal_currency():
    plan = flat_fee_plan(Decimal("1000.000"), "KWD", 3, Decimal("0.01"), start=START)
    assert plan.payment == Decimal("343.333") and plan.schedule[-1].principal == Decimal("333.334")


def test_amounts_are_normalised_to_the_minor_unit():
    plan = flat_fee_plan("12000", "cny", 12, "0.0075", start=START)
    assert plan.principal == Decimal("12000.00") and plan.currency == "CNY"
    assert plan.as_dict()["principal"] == "12000.00"


def test_month_end_due_dates_follow_the_calendar():
    assert due_dates(date(2026, 12, 31), 4) == (
        date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30),
    )
    assert due_dates(date(2027, 12, 31), 3) == (date(2028, 1, 31), date(2028, 2, 29), date(2028, 3, 31))
    plan = flat_fee_plan(Decimal("3000"), "CNY", 3, Decimal("0.0075"), start=date(2027, 12, 31))
    assert [row.due_date for row in plan.schedule] == [date(2028, 1, 31), date(2028, 2, 29), date(2028, 3, 31)]
    assert due_dates(date(2026, 1, 15), 12)[-1] == date(2027, 1, 15)


def test_monthly_irr_of_a_plain_annuity():
    # 12 payments of 88.85 for 1,000 is 1 % a month (12 % APR), to rounding
    assert monthly_irr(1000.0, (88.848787,) * 12) == pytest.approx(0.01, abs=1e-7)


# --- bad inputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: flat_fee_plan(Decimal("-100"), "CNY", 12, Decimal("0.006"), start=START), "amount must be more than 0"),
        (lambda: flat_fee_plan(Decimal("0"), "CNY", 12, Decimal("0.006"), start=START), "amount must be more than 0"),
        (lambda: flat_fee_plan(Decimal("1e15"), "CNY", 12, Decimal("0.006"), start=START), "absurdly large"),
        (lambda: flat_fee_plan(Decimal("NaN"), "CNY", 12, Decimal("0.006"), start=START), "is not a number"),
        (lambda: flat_fee_plan("12k", "CNY", 12, Decimal("0.006"), start=START), "amount '12k' is not a number"),
        (lambda: flat_fee_plan(12000.0, "CNY", 12, Decimal("0.006"), start=START), "not float"),
        (lambda: flat_fee_plan(Decimal("100.005"), "CNY", 3, Decimal("0.006"), start=START), "more decimals than CNY allows (2)"),
        (lambda: flat_fee_plan(Decimal("1000.5"), "JPY", 3, Decimal("0.006"), start=START), "more decimals than JPY allows (0)"),
        (lambda: flat_fee_plan(Decimal("1000"), "ABC", 3, Decimal("0.006"), start=START), "unknown currency 'ABC'"),
        (lambda: flat_fee_plan(Decimal("1000"), "", 3, Decimal("0.006"), start=START), "currency is missing"),
        (lambda: flat_fee_plan(Decimal("1000"), "CNY", 0, Decimal("0.006"), start=START), "months must be a whole number from 1 to 60"),
        (lambda: flat_fee_plan(Decimal("1000"), "CNY", 61, Decimal("0.006"), start=START), "got 61"),
        (lambda: flat_fee_plan(Decimal("1000"), "CNY", 12, Decimal("0.75"), start=START), "flat monthly fee rate 0.75 is out of range"),
        (lambda: flat_fee_plan(Decimal("1000"), "CNY", 12, Decimal("-0.001"), start=START), "out of range"),
        (lambda: amortizing_plan(Decimal("1000"), "CNY", 12, Decimal("18"), start=START), "APR 18 is out of range"),
        (lambda: flat_fee_plan(Decimal("5"), "CNY", 12, Decimal("0.006"), start=START), "too small to split into 12 monthly payments"),
        (lambda: flat_fee_plan(Decimal("1000"), "CNY", 12, Decimal("0.006"), start="2026-12-01"), "start must be a date"),
    ],
)
def test_bad_inputs_raise_one_domain_error(call, message):
    with pytest.raises(CalculationError) as caught:
        call()
    assert message in str(caught.value)
    assert isinstance(caught.value, DomainError)


def test_term_not_in_policy(policy):
    with pytest.raises(CalculationError, match="7 months is not a term the policy offers"):
        plan_for_term(Decimal("12000"), "CNY", 7, policy, start=START)
    with pytest.raises(CalculationError, match="36 months is a term only an agent may offer"):
        plan_for_term(Decimal("12000"), "CNY", 36, policy, start=START)
    agent_plan = plan_for_term(Decimal("12000"), "CNY", 36, policy, start=START, agent=True)
    assert agent_plan.method == "amortizing" and agent_plan.rate == Decimal("0.10")


# --- cost of waiting ------------------------------------------------------------------------------

FIGURES = AccountFigures(
    currency="CNY",
    overdue_amount=Decimal("12345.60"),
    statement_balance=Decimal("15000.00"),
    daily_interest_rate=Decimal("0.0005"),
    late_fee=Decimal("75.00"),
    days_past_due=25,
)


def test_cost_of_waiting_adds_interest_and_late_fees_and_moves_the_stage(policy):
    cost = cost_of_waiting(FIGURES, 40, policy)
    # 15,000 x 0.05 % x 40 days = 300.00; due dates missed at 30 and 60 DPD: 2 x 75.00
    assert cost.interest == Decimal("300.00") and cost.interest_days == 40
    assert cost.late_fees_charged == 2 and cost.fees == Decimal("150.00")
    assert cost.balance_then == Decimal("15450.00")
    assert cost.overdue_then == Decimal("12795.60")
    assert (cost.stage_now.name, cost.stage_then.name, cost.dpd_then) == ("M1", "M3", 65)
    assert cost.new_consequences == ("credit_bureau", "card_suspended")
    assert cost.added == Decimal("450.00")


def test_cost_of_waiting_zero_days_adds_nothing(policy):
    cost = cost_of_waiting(FIGURES, 0, policy)
    assert cost.added == 0 and cost.balance_then == FIGURES.statement_balance and cost.stage_then.name == "M1"


def test_cost_of_waiting_reaches_legal_stage(policy):
    cost = cost_of_waiting(FIGURES, 70, policy)
    assert cost.stage_then.name == "M4+" and "legal_action" in cost.new_consequences


def test_cost_of_waiting_bad_inputs(policy):
    with pytest.raises(CalculationError, match="days must be a whole number from 0 to 3650"):
        cost_of_waiting(FIGURES, -1, policy)
    broken = AccountFigures("CNY", Decimal("-1"), Decimal("100"), Decimal("0.0005"), Decimal("0"), 3)
    with pytest.raises(CalculationError, match="overdue amount must be more than 0 or 0"):
        cost_of_waiting(broken, 10, policy)
    with pytest.raises(CalculationError, match="daily interest rate 0.5 is out of range"):
        cost_of_waiting(AccountFigures("CNY", Decimal("1"), Decimal("1"), Decimal("0.5"), Decimal("0"), 3), 1, policy)


# --- negotiation -----------------------------------------------------------------------------------


def test_negotiation_finds_the_shortest_term_that_fits(policy):
    result = negotiate(Decimal("1100"), Decimal("12000"), "CNY", policy, start=START)
    assert result.fits and result.plan.months == 12  # 1,000 + 72 fee
    result = negotiate(Decimal("5000"), Decimal("12000"), "CNY", policy, start=START)
    assert result.plan.months == 3
    result = negotiate(Decimal("600"), Decimal("12000"), "CNY", policy, start=START)
    assert result.plan.months == 24 and result.plan.max_payment <= Decimal("600")


def test_negotiation_counts_the_largest_payment(policy):
    # 893.33 a month except a last payment of 893.37 (12 months at 0.60 %)
    result = negotiate(Decimal("893.33"), Decimal("10000"), "CNY", policy, start=START)
    assert result.plan.months == 24


def test_negotiation_needs_an_agent_for_longer_terms(policy):
    result = negotiate(Decimal("420"), Decimal("12000"), "CNY", policy, start=START)
    assert not result.fits
    assert result.reason is OfferReason.NEEDS_LONGER_TERM_THAN_SELF_SERVICE
    assert result.closest.months == 24  # the cheapest monthly payment the bot may offer
    assert result.agent_plan.months == 36 and result.agent_plan.max_payment <= Decimal("420")
    as_agent = negotiate(Decimal("420"), Decimal("12000"), "CNY", policy, start=START, agent=True)
    assert as_agent.plan.months == 36


def test_negotiation_when_nothing_fits(policy):
    result = negotiate(Decimal("150"), Decimal("12000"), "CNY", policy, start=START)
    assert result.reason is OfferReason.NO_TERM_FITS and result.closest.months == 24


def test_negotiation_below_minimum_installment(policy):
    result = negotiate(Decimal("80"), Decimal("12000"), "CNY", policy, start=START)
    assert result.reason is OfferReason.BELOW_MINIMUM_INSTALLMENT
    assert result.minimum_installment == Decimal("100")
    assert result.closest is not None and result.closest.payment >= Decimal("100")


def test_negotiation_amount_too_small_for_installments(policy):
    result = negotiate(Decimal("200"), Decimal("250"), "CNY", policy, start=START)
    assert result.reason is OfferReason.AMOUNT_TOO_SMALL_FOR_INSTALLMENTS and result.closest is None


def test_negotiation_unlisted_currency_uses_the_default_share(policy):
    result = negotiate(Decimal("2200000"), Decimal("24000000"), "KRW", policy, start=START)
    assert result.minimum_installment == Decimal("480000")  # 2 % of the amount
    assert result.plan.months == 12  # 2,000,000 + 144,000 fee


def test_plan_menu_leaves_out_terms_below_the_minimum(policy):
    plans = available_plans(Decimal("1500"), "CNY", policy, start=START)
    assert [plan.months for plan in plans] == [3, 6, 12]  # 24 months would be 62.50 + 9.00 < 100
    assert [plan.months for plan in available_plans(Decimal("1500"), "CNY", policy, start=START, agent=True)] == [3, 6, 12]


def test_negotiation_bad_amount(policy):
    with pytest.raises(CalculationError, match="amount per month must be more than 0"):
        negotiate(Decimal("0"), Decimal("12000"), "CNY", policy, start=START)


# --- promise to pay --------------------------------------------------------------------------------


def test_promise_dates(policy):
    today = date(2026, 12, 1)
    assert check_promise_date(today, today, policy).allowed
    ok = check_promise_date(date(2026, 12, 15), today, policy)
    assert ok.allowed and ok.latest == date(2026, 12, 15)
    late = check_promise_date(date(2026, 12, 16), today, policy)
    assert not late.allowed and late.reason is PromiseReason.TOO_FAR
    past = check_promise_date(date(2026, 11, 30), today, policy)
    assert not past.allowed and past.reason is PromiseReason.IN_THE_PAST
    for far in (date(2027, 3, 2), date(2999, 12, 31), date.max):
        out_of_reach = check_promise_date(far, today, policy)
        assert not out_of_reach.allowed and out_of_reach.reason is PromiseReason.OUT_OF_REACH
        assert out_of_reach.latest == date(2026, 12, 15)
    assert check_promise_date(date(2027, 3, 1), today, policy).reason is PromiseReason.TOO_FAR, "90 days on, an agent may approve it"
    with pytest.raises(CalculationError, match="promised date must be a date"):
        check_promise_date("tomorrow", today, policy)
