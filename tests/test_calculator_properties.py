"""Property tests of the calculator over amounts, currencies, terms and rates."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, localcontext

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.domain.calculator import (
    DOWN,
    FIRST,
    HALF_UP,
    LAST,
    MAX_MONTHS,
    MIN_MINOR_UNITS_PER_MONTH,
    REMAINDERS,
    ROUNDINGS,
    amortizing_plan,
    currency_exponent,
    flat_fee_plan,
    negotiate,
    plan_for_term,
)
from bot.domain.errors import CalculationError
from bot.domain.policy import load_policy
from bot.settings import DEFAULT_POLICY_FILE

POLICY = load_policy(DEFAULT_POLICY_FILE)
CURRENCIES = ("CNY", "USD", "EUR", "RUB", "JPY", "KWD", "KRW")
FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

currencies = st.sampled_from(CURRENCIES)
months = st.integers(1, MAX_MONTHS)
flat_rates = st.integers(0, 3000).map(lambda n: Decimal(n).scaleb(-5))  # 0 to 0.03, 5 decimals
aprs = st.integers(0, 3600).map(lambda n: Decimal(n).scaleb(-4))  # 0 to 0.36, i.e. 2 decimals of a percent
starts = st.integers(0, 3650).map(lambda n: date(2026, 1, 1) + timedelta(days=n))
conventions = st.tuples(st.sampled_from(ROUNDINGS), st.sampled_from(REMAINDERS))


@st.composite
def loans(draw, smallest_per_month: int = MIN_MINOR_UNITS_PER_MONTH):
    currency = draw(currencies)
    n = draw(months)
    exponent = currency_exponent(currency)
    minor = draw(st.integers(n * smallest_per_month, 10**11))
    return Decimal(minor).scaleb(-exponent), currency, n


def check_schedule(plan) -> None:
    rows = plan.schedule
    assert len(rows) == plan.months
    assert [row.number for row in rows] == list(range(1, plan.months + 1))
    assert sum(row.principal for row in rows) == plan.principal
    assert sum(row.fee for row in rows) == plan.total_fee
    assert sum(row.payment for row in rows) == plan.total_paid == plan.principal + plan.total_fee
    exponent = -currency_exponent(plan.currency)
    remaining = plan.principal
    for row in rows:
        assert row.payment > 0 and row.principal > 0 and row.fee >= 0
        assert row.payment == row.principal + row.fee
        remaining -= row.principal
        assert row.remaining == remaining >= 0
        for amount in (row.principal, row.fee, row.payment, row.remaining):
            assert amount.as_tuple().exponent == exponent
    assert rows[-1].remaining == 0
    dates = [row.due_date for row in rows]
    assert dates == sorted(dates) and len(set(dates)) == len(dates) and dates[0] > plan.start


def npv(plan, annual_percent: Decimal) -> Decimal:
    """Present value of the payments minus the principal at a monthly rate of annual_percent / 1200."""
    with localcontext() as context:
        context.prec = 60
        v = 1 / (1 + annual_percent / 1200)
        total = -plan.principal
        discount = Decimal(1)
        for row in plan.schedule:
            discount *= v
            total += row.payment * discount
        return total


def check_annual_rate(plan) -> None:
    """The disclosed rate is the IRR rounded half-up: the true IRR lies within half a hundredth of it."""
    assert plan.annual_rate.as_tuple().exponent == -2
    half = Decimal("0.005")
    assert npv(plan, plan.annual_rate - half) >= 0 >= npv(plan, plan.annual_rate + half)


def unit_of(currency: str) -> Decimal:
    return Decimal(1).scaleb(-currency_exponent(currency))


def odd_index(plan) -> int:
    """The row that takes the remainder."""
    return 0 if plan.remainder == FIRST else plan.months - 1


@FAST
@given(loans(), flat_rates, starts, conventions)
def test_flat_plans(loan, rate, start, convention):
    principal, currency, n = loan
    rounding, remainder = convention
    plan = flat_fee_plan(principal, currency, n, rate, start=start, rounding=rounding, remainder=remainder)
    check_schedule(plan)
    check_annual_rate(plan)
    assert (plan.rounding, plan.remainder) == convention
    fees = {row.fee for row in plan.schedule}
    assert len(fees) == 1  # the same flat fee every month
    unit = unit_of(currency)
    part = (principal / n).quantize(unit, rounding=ROUND_DOWN if rounding == DOWN else ROUND_HALF_UP)
    odd = odd_index(plan)
    for index, row in enumerate(plan.schedule):
        if index != odd:
            assert row.principal == part and row.payment == plan.payment
    rest = plan.schedule[odd].principal
    assert rest == principal - part * (n - 1)
    if rounding == DOWN:  # only the principal's rounding difference is added, in the remainder's period
        assert 0 <= rest - part < n * unit
        assert plan.max_payment == plan.schedule[odd].payment
    else:
        assert abs(rest - part) <= n * unit / 2
    assert flat_fee_plan(principal, currency, n, rate, start=start, rounding=rounding, remainder=remainder) == plan


def level_only_remainder(plan, apr: Decimal, level: Decimal) -> Decimal:
    """What the last payment would differ from `level` by, were every month before it `level`."""
    unit = unit_of(plan.currency)
    balance = plan.principal
    with localcontext() as context:
        context.prec = 60
        for _ in range(plan.months - 1):
            balance += (balance * apr / 12).quantize(unit, rounding=ROUND_HALF_UP) - level
        return balance + (balance * apr / 12).quantize(unit, rounding=ROUND_HALF_UP) - level


@FAST
@given(loans(), aprs, starts, conventions)
@example(loan=(Decimal("6.00"), "CNY", 1), apr=Decimal("0.0600"), start=date(2026, 1, 1), convention=("down", "first"))
def test_amortizing_plans(loan, apr, start, convention):
    principal, currency, n = loan
    rounding, remainder = convention
    plan = amortizing_plan(principal, currency, n, apr, start=start, rounding=rounding, remainder=remainder)
    check_schedule(plan)
    check_annual_rate(plan)
    assert (plan.rounding, plan.remainder) == convention
    unit = unit_of(currency)
    with localcontext() as context:
        context.prec = 60
        balance = principal
        for row in plan.schedule:  # every month's interest is its balance x APR / 12, rounded half-up
            assert row.fee == (balance * apr / 12).quantize(unit, rounding=ROUND_HALF_UP)
            balance -= row.principal
        r = apr / 12
        exact = principal / n if r == 0 else principal * r / (1 - (1 + r) ** -n)
    fees = [row.fee for row in plan.schedule]
    assert all(a >= b for a, b in zip(fees, fees[1:]))  # interest falls with the balance
    level = plan.payment
    payments = [row.payment for row in plan.schedule]
    if remainder == LAST:
        assert all(payment == level for payment in payments[:-1])
    else:
        assert all(payment == level for payment in payments[1:-1])
        # the first payment takes the remainder; the last keeps at most what it would have kept
        assert abs(plan.last_payment - level) <= abs(level_only_remainder(plan, apr, level))
    if rounding == DOWN:
        # the formula's payment, rounded down (its 60 digits may fall a hair short of a whole cent)
        assert -Decimal("1e-50") <= exact - level < unit
    elif remainder == LAST:
        # the formula's payment rounded half-up, or raised so that payments never increase
        assert -unit / 2 <= level - exact <= unit * Decimal("1.5")
        assert all(a >= b for a, b in zip(payments, payments[1:]))
    else:
        assert abs(level - exact) <= unit / 2
    if principal >= 10**6 * unit:  # large enough that rounding cannot move the rate by 0.005 %
        assert plan.annual_rate == (apr * 100).quantize(Decimal("0.01"))


@FAST
@given(loans(smallest_per_month=1), st.one_of(flat_rates, aprs), starts, conventions)
def test_any_input_gives_a_valid_plan_or_one_clear_error(loan, rate, start, convention):
    principal, currency, n = loan
    rounding, remainder = convention
    for build in (flat_fee_plan, amortizing_plan):
        try:
            plan = build(principal, currency, n, rate, start=start, rounding=rounding, remainder=remainder)
        except CalculationError as error:
            assert "too small" in str(error) or "out of range" in str(error)
            continue
        check_schedule(plan)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(("CNY", "USD", "JPY", "KRW")),
    st.integers(1, 10**9),
    st.integers(1, 10**9),
    st.booleans(),
)
def test_negotiated_plan_is_the_shortest_that_fits(currency, principal_minor, budget_minor, agent):
    exponent = currency_exponent(currency)
    principal = Decimal(principal_minor).scaleb(-exponent)
    budget = Decimal(budget_minor % (principal_minor + 1) or 1).scaleb(-exponent)
    start = date(2026, 12, 31)
    result = negotiate(budget, principal, currency, POLICY, start=start, agent=agent)
    minimum = result.minimum_installment
    allowed = []
    for months in POLICY.terms.offered(agent):
        try:
            plan = plan_for_term(principal, currency, months, POLICY, start=start, agent=True)
        except CalculationError:
            continue
        if plan.payment >= minimum:
            allowed.append(plan)
    fitting = [plan for plan in allowed if plan.max_payment <= budget and budget >= minimum]
    if fitting:
        assert result.fits and result.plan == fitting[0]
        assert all(plan.months > result.plan.months for plan in fitting[1:])
        assert result.reason is None
    else:
        assert not result.fits and result.reason is not None
        if allowed:
            assert result.closest in allowed
            assert result.closest.max_payment == min(plan.max_payment for plan in allowed)
        if result.agent_plan is not None:
            assert not agent and result.agent_plan.months in POLICY.terms.agent_only
            assert result.agent_plan.max_payment <= budget
