"""Jurisdiction packs: validated like the rest of the policy, and their calculations."""

from __future__ import annotations

import copy
import tomllib
from datetime import date, datetime
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from bot.domain.policy import PolicyError, load_policy, parse_policy
from bot.settings import DEFAULT_POLICY_FILE

POLICY = load_policy(DEFAULT_POLICY_FILE)
MOSCOW, SHANGHAI, LOS_ANGELES = ZoneInfo("Europe/Moscow"), ZoneInfo("Asia/Shanghai"), ZoneInfo("America/Los_Angeles")


@pytest.fixture
def raw() -> dict:
    return tomllib.loads(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))


def problems_of(raw: dict) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(raw)
    return caught.value.problems


def test_the_shipped_packs() -> None:
    assert sorted(POLICY.jurisdictions) == ["CN", "RU", "US"]
    assert POLICY.pack_for(None, "USD").code == "US"
    assert POLICY.pack_for(None, "RUB").code == "RU"
    assert POLICY.pack_for(None, "JPY").code == "CN", "another currency takes the default"
    assert POLICY.pack_for("RU", "USD").code == "RU", "the account's own jurisdiction comes first"


def test_an_accounts_view_has_its_packs_terms() -> None:
    us = POLICY.for_account(SimpleNamespace(currency="USD", jurisdiction=None))
    cn = POLICY.for_account(SimpleNamespace(currency="CNY", jurisdiction=None))
    assert us.terms.self_service_method == "amortizing" and us.plan_terms(12) == ("amortizing", Decimal("0.0990"))
    assert cn.terms.self_service_method == "flat" and cn.plan_terms(12) == ("flat", Decimal("0.0060"))
    assert us.rules.code == "US" and us.credit_record_years == 7 and cn.credit_record_years == 5
    assert us.for_jurisdiction("CN") is cn, "a view knows every other view"


@pytest.mark.parametrize(
    ("local", "zone", "expected"),
    [
        (datetime(2026, 12, 3, 23, 30), MOSCOW, datetime(2026, 12, 4, 8, 0)),  # Thursday night: Friday 08:00
        (datetime(2026, 12, 5, 23, 30), MOSCOW, datetime(2026, 12, 6, 9, 0)),  # Saturday night: Sunday 09:00
        (datetime(2026, 12, 6, 19, 59), MOSCOW, datetime(2026, 12, 6, 19, 59)),  # Sunday before 20:00: now
        (datetime(2026, 12, 6, 20, 0), MOSCOW, datetime(2026, 12, 7, 8, 0)),  # Sunday 20:00: Monday 08:00
        (datetime(2026, 12, 31, 7, 0), MOSCOW, datetime(2026, 12, 31, 9, 0)),  # a public holiday: 09:00
        (datetime(2026, 12, 1, 3, 0), LOS_ANGELES, datetime(2026, 12, 1, 8, 0)),
        (datetime(2026, 12, 1, 21, 0), LOS_ANGELES, datetime(2026, 12, 2, 8, 0)),
        (datetime(2026, 12, 1, 20, 59), LOS_ANGELES, datetime(2026, 12, 1, 20, 59)),
        (datetime(2026, 12, 5, 22, 30), SHANGHAI, datetime(2026, 12, 6, 8, 0)),
    ],
)
def test_contact_hours_in_the_cardholders_zone(local: datetime, zone: ZoneInfo, expected: datetime) -> None:
    code = {MOSCOW: "RU", LOS_ANGELES: "US", SHANGHAI: "CN"}[zone]
    rules = POLICY.jurisdictions[code].contact
    at = rules.next_allowed(local.replace(tzinfo=zone).astimezone(ZoneInfo("UTC")), zone)
    assert at.replace(tzinfo=None) == expected and at.utcoffset() == expected.replace(tzinfo=zone).utcoffset()


def test_caps_and_notices() -> None:
    ru, us, cn = (POLICY.jurisdictions[code].contact for code in ("RU", "US", "CN"))
    assert (ru.max_per_day, ru.max_per_week, ru.max_per_month) == (2, 4, 16)
    assert (us.max_per_day, cn.max_per_week) == (None, None)
    assert us.opt_out_notice and not cn.opt_out_notice and not ru.opt_out_notice


def test_bureau_dates() -> None:
    today = date(2026, 12, 1)
    cn, us = POLICY.jurisdictions["CN"].credit_bureau, POLICY.jurisdictions["US"].credit_bureau
    assert cn.record_ends(today=today, days_past_due=100) == date(2031, 12, 1)
    assert cn.record_ends(today=today, days_past_due=100, repaid_on=date(2027, 3, 1)) == date(2032, 3, 1)
    # US: the delinquency began 100 days ago (2026-08-23); 180 days later is 2027-02-19; 7 years on
    assert us.record_ends(today=today, days_past_due=100) == date(2034, 2, 19)
    assert us.record_ends(today=today, days_past_due=100, repaid_on=date(2027, 3, 1)) == date(2034, 2, 19)
    assert cn.paying_moves_the_date and not us.paying_moves_the_date
    assert "Experian" in us.name("en") and "人民银行" in cn.name("zh_CN")


def test_legal_thresholds() -> None:
    cn = POLICY.jurisdictions["CN"].legal
    assert cn.criminal_notice is not None and cn.court_action is not None
    assert cn.criminal_notice.met_by(days_past_due=95, overdue=Decimal(50000), currency="CNY")
    assert not cn.criminal_notice.met_by(days_past_due=95, overdue=Decimal(49999), currency="CNY")
    assert not cn.criminal_notice.met_by(days_past_due=60, overdue=Decimal(90000), currency="CNY")
    assert not cn.criminal_notice.met_by(days_past_due=95, overdue=Decimal(90000), currency="USD"), "no floor: never"
    assert POLICY.jurisdictions["US"].legal.criminal_notice is None


def test_disclosures_follow_the_jurisdiction_not_the_currency() -> None:
    us_in_euros = SimpleNamespace(currency="EUR", jurisdiction="US")
    dollars_in_russia = SimpleNamespace(currency="USD", jurisdiction="RU")
    assert [item.when for item in POLICY.disclosures_for(us_in_euros, "first_contact")] == ["first_contact"]
    assert POLICY.disclosures_for(dollars_in_russia, "first_contact") == ()


def test_plan_conventions() -> None:
    cn, us = POLICY.jurisdictions["CN"].plans, POLICY.jurisdictions["US"].plans
    assert (cn.method, cn.rounding, cn.remainder) == ("flat", "down", "last")
    assert (us.method, us.rounding, us.remainder) == ("amortizing", "half_up", "last")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r["jurisdiction_by_currency"].update(USD="XX"), "jurisdiction_by_currency.USD: 'XX' has no [jurisdictions.XX] pack"),
        (lambda r: r["jurisdiction_by_currency"].pop("default"), "jurisdiction_by_currency.default: missing"),
        (lambda r: r["jurisdictions"].update(china=r["jurisdictions"]["CN"]), "jurisdictions.china: not a jurisdiction code"),
        (lambda r: r["jurisdictions"]["RU"]["contact"]["days_off"].update(end="08:00"), "jurisdictions.RU.contact.days_off.end: 08:00 is not after start 09:00"),
        (lambda r: r["jurisdictions"]["RU"]["contact"].update(max_per_day=-1), "jurisdictions.RU.contact.max_per_day: -1 is out of range"),
        (lambda r: r["jurisdictions"]["RU"]["contact"].update(weekly_days_off=[8]), "jurisdictions.RU.contact.weekly_days_off: 8 is not a weekday"),
        (lambda r: r["jurisdictions"]["RU"]["contact"].update(holidays=["31 Dec"]), "jurisdictions.RU.contact.holidays: '31 Dec' is not a date"),
        (lambda r: r["jurisdictions"]["US"]["credit_bureau"].update(rule="forever"), "jurisdictions.US.credit_bureau.rule: 'forever' is not one of"),
        (lambda r: r["jurisdictions"]["US"]["credit_bureau"]["name"].pop("ru"), "jurisdictions.US.credit_bureau.name.ru: missing"),
        (lambda r: r["jurisdictions"]["CN"]["legal"]["criminal_notice"]["min_overdue"].update(XYZ=1), "jurisdictions.CN.legal.criminal_notice.min_overdue.XYZ: unknown currency"),
        (lambda r: r["jurisdictions"]["CN"]["plans"].update(rounding="up"), "jurisdictions.CN.plans.rounding: 'up' is not one of half_up, down"),
        (lambda r: r["jurisdictions"]["US"]["fees"]["amortizing_apr"].pop("24"), "jurisdictions.US.terms.self_service: 24 has no rate in jurisdictions.US.fees.amortizing_apr"),
        (lambda r: r["jurisdictions"]["US"]["terms"].update(self_service_method="flat"), "jurisdictions.US.terms.self_service_method: unknown key"),
        (lambda r: r["jurisdictions"]["CN"]["hardship"].pop("ends_after_days_late"), "jurisdictions.CN.hardship.ends_after_days_late: missing"),
        (lambda r: r["jurisdictions"]["CN"].update(retention_years=0), "jurisdictions.CN.retention_years: 0 is out of range"),
        (lambda r: r["jurisdictions"]["CN"].update(colour="red"), "jurisdictions.CN.colour: unknown key"),
        (lambda r: r["disclosures"][0].update(jurisdictions=["GB"]), "disclosures[0].jurisdictions: 'GB' has no [jurisdictions.GB] pack"),
    ],
)
def test_each_mistake_in_a_pack_is_reported_with_its_key(raw: dict, change, expected: str) -> None:
    broken = copy.deepcopy(raw)
    change(broken)
    problems = problems_of(broken)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_a_mistake_in_the_banks_terms_is_reported_once(raw: dict) -> None:
    broken = copy.deepcopy(raw)
    broken["terms"]["self_service"] = [3, 3]
    assert problems_of(broken).count("terms.self_service: 3 appears twice") == 1
