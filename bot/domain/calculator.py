"""The one calculator behind every amount a cardholder or an agent sees: pure Python, no I/O.

Money is `Decimal`, in currency units (12000.00 CNY is ``Decimal("12000.00")``), rounded to the
currency's minor unit as Babel knows it (JPY 0 decimals, CNY 2, KWD 3). Rates are fractions:
``Decimal("0.006")`` is 0.60 % a month, ``Decimal("0.18")`` is an APR of 18 %.

Installment plans
-----------------
A plan follows two rounding conventions, set by the account's jurisdiction (its pack's ``plans``):
`rounding`, how the per-period amount is rounded to the minor unit ("half_up" or "down"), and
`remainder`, which period takes what that rounding leaves ("first" or "last"). Every schedule sums
to its total to the minor unit whatever the conventions.

* **flat** (Chinese card installments, 分期): the fee each month is principal x monthly fee rate,
  on the *original* principal, rounded half-up to the minor unit and the same every month; the
  principal is split evenly, each month's part rounded by `rounding` (default down), and the
  period named by `remainder` (default the last) repays the rest. Total fee = months x monthly fee.
* **amortizing** (declining balance, e.g. a hardship plan): r = APR / 12; the level payment is
  P x r / (1 - (1 + r)^-n) rounded by `rounding` (default half-up); each month's interest is the
  remaining balance x r, rounded half-up (both computed exactly, in rational arithmetic on whole
  minor units). With the remainder last, the last month pays the exact remaining balance plus its
  interest; rounded half-up, should that last payment come out larger than the others, the level
  payment is raised by one minor unit until it is not, so payments never increase. With the
  remainder first, the first month pays what makes the level payment come out even in the last:
  every month between pays the level payment, and the last one pays the exact remaining balance
  plus its interest. That is the level payment unless the monthly roundings of interest leave a few
  minor units that no first payment can absorb (about a third of plans); they are settled in the
  last month, never more than the remainder last would have put there, and never by an interest
  other than balance x r.

Payment k falls due k calendar months after the plan's start date, on the start's day of the month
or the month's last day when it has no such day (start Dec 31: Jan 31, Feb 28/29, Mar 31).

The annualized rate disclosed to the cardholder (`InstallmentPlan.annual_rate`) is the internal rate
of return of the cash flows (the principal received at the start, each payment at its month),
monthly IRR x 12, in percent, rounded half-up to two decimals: ``Decimal("13.03")`` means 13.03 %.
Months count as equal periods, as the disclosure rules for installments (PBOC 2021 No. 3; the
actuarial method of Regulation Z, Appendix J) require.

Every unusable input raises `CalculationError` with a message that names the input and why.
"""

from __future__ import annotations

import enum
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import (
    ROUND_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from babel.numbers import get_currency_precision, list_currencies

from bot.domain.errors import CalculationError
from bot.domain.jurisdiction import REMAINDERS, ROUNDINGS

if TYPE_CHECKING:
    from bot.domain.policy import Policy, Stage

FLAT = "flat"
AMORTIZING = "amortizing"
METHODS = (FLAT, AMORTIZING)
HALF_UP, DOWN = ROUNDINGS
FIRST, LAST = REMAINDERS
DEFAULT_ROUNDING = {FLAT: DOWN, AMORTIZING: HALF_UP}

MAX_MONTHS = 60  # five years: the longest installment plan allowed (CN Measures, Art. 70)
MAX_FLAT_MONTHLY_RATE = Decimal("0.03")  # 3 % a month flat is already about 60 % a year
MAX_APR = Decimal("0.36")
MAX_AMOUNT = Decimal(10) ** 12  # in currency units; anything above is a typing mistake
MIN_MINOR_UNITS_PER_MONTH = 100  # a plan repays at least 100 minor units (1.00 CNY, 100 JPY) a month
MAX_DAILY_RATE = Decimal("0.01")
MAX_WAITING_DAYS = 3650
MAX_PROMISE_DAYS = 90  # the longest promise-to-pay delay any policy may allow

_CONTEXT = Context(prec=34, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])
_PERCENT = Decimal("0.01")


# --------------------------------------------------------------------------------------------
# Currencies


@lru_cache(maxsize=None)
def _known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def is_known_currency(code: object) -> bool:
    return isinstance(code, str) and code in _known_currencies()


@lru_cache(maxsize=None)
def currency_exponent(code: str) -> int:
    """Decimal places of the currency's minor unit (JPY 0, CNY 2, KWD 3)."""
    return get_currency_precision(code)


@lru_cache(maxsize=None)
def _unit(exponent: int) -> Decimal:
    return Decimal(1).scaleb(-exponent)


def _currency(code: object) -> tuple[str, int]:
    if not isinstance(code, str) or not code.strip():
        raise CalculationError("currency is missing; use an ISO 4217 code such as CNY")
    normalized = code.strip().upper()
    if normalized not in _known_currencies():
        raise CalculationError(f"unknown currency {code!r}; use an ISO 4217 code such as CNY, USD or JPY")
    return normalized, currency_exponent(normalized)


def format_amount(amount: Decimal, currency: str) -> str:
    """The amount with exactly the currency's decimals, no grouping: '893.33', '1200' (JPY)."""
    return f"{amount.quantize(_unit(currency_exponent(currency)), rounding=ROUND_HALF_UP):f}"


# --------------------------------------------------------------------------------------------
# Input checks


def _number(value: object, what: str) -> Decimal:
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, bool) or isinstance(value, float):
        raise CalculationError(
            f"{what} must be a Decimal, an int or a string such as '12000.00', not {type(value).__name__}"
        )
    elif isinstance(value, (int, str)):
        try:
            number = Decimal(value.strip() if isinstance(value, str) else value)
        except InvalidOperation:
            raise CalculationError(f"{what} {value!r} is not a number") from None
    else:
        raise CalculationError(f"{what} is missing or not a number")
    if not number.is_finite():
        raise CalculationError(f"{what} {value!r} is not a number")
    return number


def _money(value: object, currency: str, exponent: int, what: str = "amount", *, allow_zero: bool = False) -> Decimal:
    number = _number(value, what)
    if number < 0 or (number == 0 and not allow_zero):
        raise CalculationError(f"{what} must be more than 0{' or 0' if allow_zero else ''}, got {number} {currency}")
    if number > MAX_AMOUNT:
        raise CalculationError(f"{what} {number} {currency} is absurdly large (at most {MAX_AMOUNT:,} {currency})")
    unit = _unit(exponent)
    rounded = number.quantize(unit)
    if rounded != number:
        raise CalculationError(f"{what} {number} has more decimals than {currency} allows ({exponent})")
    return rounded


def _months(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_MONTHS:
        raise CalculationError(f"months must be a whole number from 1 to {MAX_MONTHS}, got {value!r}")
    return value


def _rate(value: object, high: Decimal, what: str, hint: str) -> Decimal:
    rate = _number(value, what)
    if not 0 <= rate <= high:
        raise CalculationError(f"{what} {rate} is out of range (0 to {high}; {hint})")
    return rate


def _conventions(rounding: object, remainder: object) -> tuple[str, str]:
    if rounding not in ROUNDINGS:
        raise CalculationError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    if remainder not in REMAINDERS:
        raise CalculationError(f"remainder must be one of {', '.join(REMAINDERS)}, got {remainder!r}")
    return rounding, remainder  # type: ignore[return-value]


def _start(value: object) -> date:
    if not isinstance(value, date) or hasattr(value, "hour"):
        raise CalculationError(f"start must be a date such as 2026-12-01, got {value!r}")
    return value


def _check_splittable(principal: Decimal, months: int, currency: str, exponent: int) -> None:
    least = _unit(exponent) * MIN_MINOR_UNITS_PER_MONTH * months
    if principal < least:
        raise CalculationError(
            f"amount {principal} {currency} is too small to split into {months} monthly payments "
            f"(at least {least} {currency})"
        )


# --------------------------------------------------------------------------------------------
# Due dates


@lru_cache(maxsize=4096)
def due_dates(start: date, months: int) -> tuple[date, ...]:
    """Payment k falls due k calendar months after `start`; a missing day becomes the month's last."""
    dates = []
    for k in range(1, months + 1):
        index = start.month - 1 + k
        year, month = start.year + index // 12, index % 12 + 1
        try:
            dates.append(date(year, month, min(start.day, monthrange(year, month)[1])))
        except ValueError:
            raise CalculationError(f"start {start.isoformat()} is too late for a {months}-month plan") from None
    return tuple(dates)


# --------------------------------------------------------------------------------------------
# Plans


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    number: int  # 1 for the first payment
    due_date: date
    principal: Decimal  # part of the payment that repays principal
    fee: Decimal  # flat fee or interest of the month
    payment: Decimal  # principal + fee
    remaining: Decimal  # principal still owed after this payment


def _row_maker():  # noqa: ANN202
    """Builds ScheduleRow instances without the frozen __init__'s per-field checks (twice as fast).

    The rows are ordinary frozen ScheduleRow objects; only the calculator, which passes the fields in
    order and already checked them, uses this in its schedule loops.
    """
    new = object.__new__
    set_number, set_due, set_principal, set_fee, set_payment, set_remaining = (
        getattr(ScheduleRow, name).__set__
        for name in ("number", "due_date", "principal", "fee", "payment", "remaining")
    )

    def make(
        number: int, due_date: date, principal: Decimal, fee: Decimal, payment: Decimal, remaining: Decimal
    ) -> ScheduleRow:
        row = new(ScheduleRow)
        set_number(row, number)
        set_due(row, due_date)
        set_principal(row, principal)
        set_fee(row, fee)
        set_payment(row, payment)
        set_remaining(row, remaining)
        return row

    return make


_row = _row_maker()


@dataclass(frozen=True, slots=True)
class InstallmentPlan:
    method: str  # "flat" or "amortizing"
    principal: Decimal
    currency: str
    months: int
    rate: Decimal  # flat: monthly fee rate; amortizing: APR; both fractions (0.006 = 0.60 %)
    start: date  # the day the plan is agreed; payment k is due k months later
    schedule: tuple[ScheduleRow, ...]
    total_fee: Decimal  # all fees (flat) or all interest (amortizing)
    total_paid: Decimal  # principal + total_fee
    annual_rate: Decimal  # disclosed annualized rate in PERCENT, 2 decimals: Decimal("13.03") = 13.03 %
    payment: Decimal  # the regular monthly payment: that of every period but the one taking the remainder
    rounding: str = DOWN  # how the per-period amount was rounded: "half_up" or "down"
    remainder: str = LAST  # the period that took what rounding left: "first" or "last"

    @property
    def max_payment(self) -> Decimal:
        """The largest payment of the schedule: what the cardholder must be able to pay each month."""
        return max(self.schedule[0].payment, self.schedule[-1].payment)

    @property
    def first_payment(self) -> Decimal:
        return self.schedule[0].payment

    @property
    def last_payment(self) -> Decimal:
        return self.schedule[-1].payment


    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: amounts and rates as strings, dates in ISO format."""
        money = lambda amount: format_amount(amount, self.currency)  # noqa: E731
        return {
            "method": self.method,
            "principal": money(self.principal),
            "currency": self.currency,
            "months": self.months,
            "rate": str(self.rate),
            "rate_unit": "monthly fee, fraction of the principal" if self.method == FLAT else "APR, fraction",
            "start": self.start.isoformat(),
            "rounding": self.rounding,
            "remainder": self.remainder,
            "payment": money(self.payment),
            "total_fee": money(self.total_fee),
            "total_paid": money(self.total_paid),
            "annual_rate_percent": str(self.annual_rate),
            "schedule": [
                {
                    "number": row.number,
                    "due_date": row.due_date.isoformat(),
                    "principal": money(row.principal),
                    "fee": money(row.fee),
                    "payment": money(row.payment),
                    "remaining": money(row.remaining),
                }
                for row in self.schedule
            ],
        }


def flat_fee_plan(
    principal: Decimal | int | str,
    currency: str,
    months: int,
    monthly_rate: Decimal | int | str,
    *,
    start: date,
    rounding: str = DOWN,
    remainder: str = LAST,
) -> InstallmentPlan:
    """A flat-fee installment plan: fee each month = principal x monthly_rate; principal split evenly."""
    code, exponent = _currency(currency)
    amount = _money(principal, code, exponent)
    n = _months(months)
    rate = _rate(monthly_rate, MAX_FLAT_MONTHLY_RATE, "flat monthly fee rate", "write 0.0075 for 0.75 % a month")
    rounding, remainder = _conventions(rounding, remainder)
    start = _start(start)
    _check_splittable(amount, n, code, exponent)
    dates = due_dates(start, n)
    unit = _unit(exponent)
    with localcontext(_CONTEXT):
        part = (amount / n).quantize(unit, rounding=ROUND_DOWN if rounding == DOWN else ROUND_HALF_UP)
        fee = (amount * rate).quantize(unit, rounding=ROUND_HALF_UP)
        rest = amount - part * (n - 1)
        parts = [rest] + [part] * (n - 1) if remainder == FIRST else [part] * (n - 1) + [rest]
        rows = []
        remaining = amount
        for k, share in enumerate(parts):
            remaining -= share
            rows.append(_row(k + 1, dates[k], share, fee, share + fee, remaining))
        total_fee = fee * n
        payment = part + fee
    first, last = rows[0].payment, rows[-1].payment
    annual = _annual_rate(amount, float(first), float(payment), n - 1, float(last), fee == 0)
    return InstallmentPlan(
        FLAT, amount, code, n, rate, start, tuple(rows), total_fee, amount + total_fee, annual, payment, rounding,
        remainder,
    )


def amortizing_plan(
    principal: Decimal | int | str,
    currency: str,
    months: int,
    apr: Decimal | int | str,
    *,
    start: date,
    rounding: str = HALF_UP,
    remainder: str = LAST,
) -> InstallmentPlan:
    """Equal payments on the declining balance at a nominal annual rate (APR / 12 a month)."""
    code, exponent = _currency(currency)
    amount = _money(principal, code, exponent)
    n = _months(months)
    annual = _rate(apr, MAX_APR, "APR", "write 0.18 for 18 % a year")
    rounding, remainder = _conventions(rounding, remainder)
    start = _start(start)
    _check_splittable(amount, n, code, exponent)
    dates = due_dates(start, n)
    unit = _unit(exponent)
    # Exact rational arithmetic in whole minor units, r = APR / 12 = numerator / denominator:
    # payment = P r (1+r)^n / ((1+r)^n - 1) rounded, interest = round_half_up(balance x r).
    numerator, denominator = annual.as_integer_ratio()
    denominator *= 12
    balance = int(amount.scaleb(exponent))
    if numerator == 0:
        top, bottom = balance, n
    else:
        grown = (denominator + numerator) ** n
        top, bottom = balance * numerator * grown, denominator * (grown - denominator**n)
    level = (2 * top + bottom) // (2 * bottom) if rounding == HALF_UP else top // bottom
    if remainder == FIRST and n > 1:
        first = _first_payment(balance, n, numerator, denominator, level)
        interests, left = _interests(balance, n, numerator, denominator, level, first)
        last_interest = _interest(left, numerator, denominator)
    else:
        for _attempt in range(100):
            interests, left = _interests(balance, n, numerator, denominator, level)
            last_interest = _interest(left, numerator, denominator)
            if rounding == DOWN or left + last_interest <= level:
                break
            level += 1
        else:  # pragma: no cover - rounding never drifts this far within the limits above
            raise CalculationError(f"no level payment repays {amount} {code} in {n} months")
        first = level
    too_small = CalculationError(f"amount {amount} {code} is too small for a {n}-month plan")
    if left <= 0:
        raise too_small
    payment = Decimal(level) * unit
    rows = []
    remaining = amount
    paid = Decimal(first) * unit
    for k in range(n - 1):
        interest = Decimal(interests[k]) * unit
        part = paid - interest
        if part <= 0:
            raise too_small
        remaining -= part
        rows.append(_row(k + 1, dates[k], part, interest, paid, remaining))
        paid = payment
    last_fee = Decimal(last_interest) * unit
    last = remaining + last_fee
    rows.append(_row(n, dates[-1], remaining, last_fee, last, remaining - remaining))
    total_fee = Decimal(sum(interests) + last_interest) * unit
    disclosed = _annual_rate(
        amount, float(rows[0].payment), float(payment), n - 1, float(last), total_fee == 0, float(annual) / 12
    )
    return InstallmentPlan(
        AMORTIZING, amount, code, n, annual, start, tuple(rows), total_fee, amount + total_fee, disclosed, payment,
        rounding, remainder,
    )


def _interest(balance: int, numerator: int, denominator: int) -> int:
    """balance x r in minor units, rounded half-up."""
    return (2 * balance * numerator + denominator) // (2 * denominator)


def _interests(
    balance: int, n: int, numerator: int, denominator: int, payment: int, first: int | None = None
) -> tuple[list[int], int]:
    """Interest of months 1..n-1 (minor units, half-up) at a level payment (`first` in month 1, when
    given), and the balance left."""
    interests = []
    twice = 2 * denominator
    paid = payment if first is None else first
    for _ in range(n - 1):
        interest = (2 * balance * numerator + denominator) // twice
        interests.append(interest)
        balance += interest - paid
        paid = payment
        if balance <= 0:
            break
    return interests, balance


def _first_payment(balance: int, n: int, numerator: int, denominator: int, level: int) -> int:
    """The first payment after which `level` a month leaves a last payment (the balance left plus its
    interest) as near `level` as whole minor units allow: usually exactly it, and never further from
    it than with `level` paid in month 1 too (the remainder left in the last period).

    Paying one unit more in month 1 leaves about (1 + r)^(n-1) units less at the end, so the search
    starts where the last-period remainder, carried back to month 1, puts it; the interest of each
    month is rounded, so the nearest is looked for a few units either side.
    """
    _, left = _interests(balance, n, numerator, denominator, level)
    excess = left + _interest(left, numerator, denominator) - level  # the remainder, were it last
    best, best_gap = level, abs(excess)
    guess = level + round(excess / (1 + numerator / denominator) ** (n - 1))
    for step in range(2 * _FIRST_SEARCH + 1):
        if best_gap == 0:
            break
        first = guess + (step + 1) // 2 * (1 if step % 2 else -1)  # guess, +1, -1, +2, -2 ...
        interests, left = _interests(balance, n, numerator, denominator, level, first)
        if left <= 0 or len(interests) < n - 1:
            continue
        gap = abs(left + _interest(left, numerator, denominator) - level)
        if gap < best_gap:
            best, best_gap = first, gap
    return best


_FIRST_SEARCH = 12  # units either side of the estimate


def make_plan(
    method: str,
    principal: Decimal | int | str,
    currency: str,
    months: int,
    rate: Decimal | int | str,
    *,
    start: date,
    rounding: str | None = None,
    remainder: str = LAST,
) -> InstallmentPlan:
    """`flat_fee_plan` or `amortizing_plan` by name; `rounding` defaults to the method's own (flat
    down, amortizing half-up)."""
    if method not in METHODS:
        raise CalculationError(f"unknown method {method!r}; use flat or amortizing")
    build = flat_fee_plan if method == FLAT else amortizing_plan
    return build(
        principal, currency, months, rate, start=start, rounding=rounding or DEFAULT_ROUNDING[method], remainder=remainder
    )


def plan_for_term(
    principal: Decimal | int | str, currency: str, months: int, policy: Policy, *, start: date, agent: bool = False
) -> InstallmentPlan:
    """The plan the policy sets for a term (its method and rate), rounded as its pack says; the
    term must be offered."""
    method, rate = policy.plan_terms(_months(months), agent=agent)
    plans = policy.rules.plans
    return make_plan(
        method, principal, currency, months, rate, start=start, rounding=plans.rounding, remainder=plans.remainder
    )


def available_plans(
    principal: Decimal | int | str, currency: str, policy: Policy, *, start: date, agent: bool = False
) -> tuple[InstallmentPlan, ...]:
    """Every plan the policy offers for this amount (the plan menu), shortest term first.

    Terms whose payment would be below the minimum installment are left out.
    """
    code, exponent = _currency(currency)
    amount = _money(principal, code, exponent)
    minimum = policy.minimum_installment.for_plan(code, amount)
    return tuple(plan for plan in _plans(amount, code, policy, policy.terms.offered(agent), start) if plan.payment >= minimum)


def _plans(amount: Decimal, code: str, policy: Policy, terms: tuple[int, ...], start: date) -> list[InstallmentPlan]:
    plans = []
    for months in terms:
        try:
            plans.append(plan_for_term(amount, code, months, policy, start=start, agent=True))
        except CalculationError:
            continue  # too small to split over this many months
    return plans


# --------------------------------------------------------------------------------------------
# Annualized rate (IRR)


def _annual_rate(
    principal: Decimal, first: float, payment: float, count: int, last: float, free: bool, guess: float | None = None
) -> Decimal:
    """Monthly IRR x 12 in percent, half-up to 2 decimals, of: +principal now, then `count` payments
    of `payment` (the first of them `first`), then `last`."""
    if free:
        return Decimal("0.00")
    monthly = _level_irr(float(principal), first if count else payment, payment, count, last, guess)
    return Decimal(repr(monthly * 1200)).quantize(_PERCENT, rounding=ROUND_HALF_UP)


def _level_irr(
    principal: float, first: float, payment: float, count: int, last: float, guess: float | None = None
) -> float:
    """`monthly_irr` for `count` equal payments (the first one `first`) then one last payment, in
    closed form (fast)."""
    n = count + 1
    total = payment * count + last + first - payment
    if total <= principal:  # pragma: no cover - fees are never negative
        return monthly_irr(principal, _flows(first, payment, count, last))
    low, high = 0.0, 0.05
    while _level_npv(principal, first, payment, count, last, high)[0] > 0:
        low, high = high, high * 2
        if high > 1e6:  # pragma: no cover - impossible with the rate limits above
            raise CalculationError("the annualized rate cannot be computed for these payments")
    if guess is None:
        guess = 2 * (total - principal) / (principal * (n + 1))
    rate = min(max(guess, low), high)
    for _ in range(200):
        value, slope = _level_npv(principal, first, payment, count, last, rate)
        if value > 0:
            low = rate
        else:
            high = rate
        step = rate - value / slope if slope else (low + high) / 2
        if not low < step < high:
            step = (low + high) / 2
        if abs(step - rate) <= 1e-15 * max(1.0, rate) or high - low <= 1e-16:
            return step
        rate = step
    return rate  # pragma: no cover


def _flows(first: float, payment: float, count: int, last: float) -> tuple[float, ...]:
    return ((first,) + (payment,) * (count - 1) if count else ()) + (last,)


def _level_npv(
    principal: float, first: float, payment: float, count: int, last: float, rate: float
) -> tuple[float, float]:
    if rate < 1e-9:  # the closed form loses precision near 0: sum the terms instead
        return _npv(principal, _flows(first, payment, count, last), rate)
    x = 1.0 + rate
    v = 1.0 / x
    v_count = x**-count
    v_n = v_count / x
    annuity = (1.0 - v_count) / rate  # sum of v^k, k = 1..count
    d_annuity = (count * v_count / x * rate - (1.0 - v_count)) / (rate * rate)
    n = count + 1
    odd = first - payment  # month 1 pays this much more than the others
    value = payment * annuity + last * v_n + odd * v - principal
    slope = payment * d_annuity - n * last * v_n / x - odd * v * v
    return value, slope


def monthly_irr(principal: float, payments: tuple[float, ...]) -> float:
    """The monthly rate m at which the payments (at months 1..n) are worth `principal` today.

    Newton's method, kept inside a bracket that always holds the root, with bisection whenever a
    Newton step would leave it. Payments are positive, so the present value falls as m rises and the
    root is unique; with total payments >= principal it is >= 0.
    """
    total = sum(payments)
    if total <= principal:
        return 0.0 if total == principal else _bisect_negative(principal, payments)
    low, high = 0.0, 0.05
    while _npv(principal, payments, high)[0] > 0:
        low, high = high, high * 2
        if high > 1e6:  # pragma: no cover - impossible with the rate limits above
            raise CalculationError("the annualized rate cannot be computed for these payments")
    n = len(payments)
    rate = min(max(2 * (total - principal) / (principal * (n + 1)), low), high)
    for _ in range(200):
        value, slope = _npv(principal, payments, rate)
        if value > 0:
            low = rate
        else:
            high = rate
        step = rate - value / slope if slope else (low + high) / 2
        if not low < step < high:
            step = (low + high) / 2
        if abs(step - rate) <= 1e-15 * max(1.0, rate) or high - low <= 1e-16:
            return step
        rate = step
    return rate  # pragma: no cover


def _npv(principal: float, payments: tuple[float, ...], rate: float) -> tuple[float, float]:
    """Present value of the payments minus the principal, and its derivative in the rate."""
    v = 1.0 / (1.0 + rate)
    discount = 1.0
    value = -principal
    slope = 0.0
    for k, payment in enumerate(payments, 1):
        discount *= v
        term = payment * discount
        value += term
        slope -= k * term
    return value, slope * v


def _bisect_negative(principal: float, payments: tuple[float, ...]) -> float:  # pragma: no cover
    low, high = -0.99, 0.0
    for _ in range(200):
        middle = (low + high) / 2
        if _npv(principal, payments, middle)[0] > 0:
            low = middle
        else:
            high = middle
    return (low + high) / 2


# --------------------------------------------------------------------------------------------
# Cost of waiting


@dataclass(frozen=True)
class AccountFigures:
    """What the calculator needs to know about an account (copied from the record, no ORM)."""

    currency: str
    overdue_amount: Decimal
    statement_balance: Decimal
    daily_interest_rate: Decimal  # fraction a day: 0.0005 is 0.05 % (万分之五)
    late_fee: Decimal  # penalty fee charged at each missed due date
    days_past_due: int


@dataclass(frozen=True)
class WaitingCost:
    """What `days` more without any payment adds to an account.

    Interest: statement balance x daily rate x the days on which the stage charges interest (simple
    interest, rounded once; no interest on fees). Paying less than the full statement loses the
    interest-free period, so interest runs on the whole statement balance. Late fees: one late fee
    at every further missed due date (every 30 days past due: 30, 60, 90 ...) while the stage
    charges late fees.
    """

    days: int
    currency: str
    dpd_now: int
    dpd_then: int
    stage_now: Stage | None
    stage_then: Stage | None
    interest_days: int
    interest: Decimal
    late_fees_charged: int
    fees: Decimal
    balance_now: Decimal
    balance_then: Decimal
    overdue_now: Decimal
    overdue_then: Decimal
    new_consequences: tuple[str, ...]  # consequence names that apply then but not now

    @property
    def added(self) -> Decimal:
        return self.interest + self.fees


def cost_of_waiting(figures: AccountFigures, days: int, policy: Policy) -> WaitingCost:
    """The balance and what is added if nothing is paid for `days` days, and the stage reached."""
    code, exponent = _currency(figures.currency)
    overdue = _money(figures.overdue_amount, code, exponent, "overdue amount", allow_zero=True)
    balance = _money(figures.statement_balance, code, exponent, "statement balance", allow_zero=True)
    late_fee = _money(figures.late_fee, code, exponent, "late fee", allow_zero=True)
    rate = _rate(figures.daily_interest_rate, MAX_DAILY_RATE, "daily interest rate", "write 0.0005 for 0.05 % a day")
    dpd = figures.days_past_due
    if isinstance(dpd, bool) or not isinstance(dpd, int) or dpd < 0:
        raise CalculationError(f"days past due must be a whole number of 0 or more, got {dpd!r}")
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_WAITING_DAYS:
        raise CalculationError(f"days must be a whole number from 0 to {MAX_WAITING_DAYS}, got {days!r}")
    interest_days = fee_count = 0
    stage_now = policy.stage_for(dpd)
    stage = stage_now
    for day in range(dpd + 1, dpd + days + 1):
        if stage is None or not stage.contains(day):
            stage = policy.stage_for(day)
        if stage is None:
            continue
        if stage.consequences.interest:
            interest_days += 1
        if day % 30 == 0 and stage.consequences.late_fees:
            fee_count += 1
    unit = _unit(exponent)
    with localcontext(_CONTEXT):
        interest = (balance * rate * interest_days).quantize(unit, rounding=ROUND_HALF_UP)
        fees = late_fee * fee_count
        added = interest + fees
    before = set(stage_now.consequences.active()) if stage_now else set()
    after = stage.consequences.active() if stage else ()
    return WaitingCost(
        days=days,
        currency=code,
        dpd_now=dpd,
        dpd_then=dpd + days,
        stage_now=stage_now,
        stage_then=stage,
        interest_days=interest_days,
        interest=interest,
        late_fees_charged=fee_count,
        fees=fees,
        balance_now=balance,
        balance_then=balance + added,
        overdue_now=overdue,
        overdue_then=overdue + added,
        new_consequences=tuple(name for name in after if name not in before),
    )


# --------------------------------------------------------------------------------------------
# Negotiation


class OfferReason(enum.Enum):
    """Why no plan fits what the cardholder can pay (the bot counter-offers and offers a person)."""

    BELOW_MINIMUM_INSTALLMENT = "below_minimum_installment"  # less than the policy's smallest installment
    NEEDS_LONGER_TERM_THAN_SELF_SERVICE = "needs_longer_term_than_self_service"  # an agent-only term fits
    NO_TERM_FITS = "no_term_fits"  # even the longest term the policy allows costs more a month
    AMOUNT_TOO_SMALL_FOR_INSTALLMENTS = "amount_too_small_for_installments"  # pay in full instead


@dataclass(frozen=True)
class Negotiation:
    amount_per_month: Decimal
    minimum_installment: Decimal
    plan: InstallmentPlan | None  # the shortest allowed plan whose every payment fits
    closest: InstallmentPlan | None  # none fits: the allowed plan with the lowest monthly payment
    reason: OfferReason | None  # none fits: why
    agent_plan: InstallmentPlan | None = None  # NEEDS_LONGER_TERM_THAN_SELF_SERVICE: what an agent may offer

    @property
    def fits(self) -> bool:
        return self.plan is not None


def negotiate(
    amount_per_month: Decimal | int | str,
    principal: Decimal | int | str,
    currency: str,
    policy: Policy,
    *,
    start: date,
    agent: bool = False,
) -> Negotiation:
    """The shortest term the policy allows whose payments all fit `amount_per_month`.

    The bot negotiates with agent=False (self-service terms); an agent with agent=True (all terms).
    A plan is allowed when its regular payment is at least the policy's minimum installment.
    """
    code, exponent = _currency(currency)
    amount = _money(principal, code, exponent)
    budget = _money(amount_per_month, code, exponent, "amount per month")
    start = _start(start)
    minimum = policy.minimum_installment.for_plan(code, amount)
    allowed = [plan for plan in _plans(amount, code, policy, policy.terms.offered(agent), start) if plan.payment >= minimum]
    if not allowed:
        return Negotiation(budget, minimum, None, None, OfferReason.AMOUNT_TOO_SMALL_FOR_INSTALLMENTS)
    closest = min(allowed, key=lambda plan: (plan.max_payment, plan.months))
    if budget < minimum:
        return Negotiation(budget, minimum, None, closest, OfferReason.BELOW_MINIMUM_INSTALLMENT)
    for plan in allowed:
        if plan.max_payment <= budget:
            return Negotiation(budget, minimum, plan, None, None)
    if not agent:
        longer = _plans(amount, code, policy, policy.terms.agent_only, start)
        for plan in longer:
            if minimum <= plan.payment and plan.max_payment <= budget:
                return Negotiation(
                    budget, minimum, None, closest, OfferReason.NEEDS_LONGER_TERM_THAN_SELF_SERVICE, plan
                )
    return Negotiation(budget, minimum, None, closest, OfferReason.NO_TERM_FITS)


# --------------------------------------------------------------------------------------------
# Promise to pay


class PromiseReason(enum.Enum):
    IN_THE_PAST = "in_the_past"
    TOO_FAR = "too_far"  # later than the policy's longest promise-to-pay delay: an agent may approve it
    OUT_OF_REACH = "out_of_reach"  # later than any policy may allow (MAX_PROMISE_DAYS): nobody approves it


@dataclass(frozen=True)
class PromiseCheck:
    allowed: bool
    reason: PromiseReason | None
    latest: date  # the latest date the policy allows from `today`


def check_promise_date(promised: date, today: date, policy: Policy) -> PromiseCheck:
    """Whether a promise to pay on `promised` is allowed: from today to today + the policy's maximum.

    A date later than `MAX_PROMISE_DAYS`, the most any policy may allow, is out of reach even for an
    agent (a year such as 2999 is a typing mistake).
    """
    for value, name in ((promised, "promised date"), (today, "today")):
        if not isinstance(value, date) or hasattr(value, "hour"):
            raise CalculationError(f"{name} must be a date such as 2026-12-01, got {value!r}")
    latest = today + timedelta(days=policy.promise_max_days)
    if promised < today:
        return PromiseCheck(False, PromiseReason.IN_THE_PAST, latest)
    if promised > today + timedelta(days=MAX_PROMISE_DAYS):
        return PromiseCheck(False, PromiseReason.OUT_OF_REACH, latest)
    if promised > latest:
        return PromiseCheck(False, PromiseReason.TOO_FAR, latest)
    return PromiseCheck(True, None, latest)
