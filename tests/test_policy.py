"""The policy file: the default loads, and every mistake is reported with its key."""

from __future__ import annotations

import copy
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

from bot.domain.policy import PolicyError, load_policy, parse_policy
from bot.settings import DEFAULT_POLICY_FILE


@pytest.fixture
def raw() -> dict:
    return tomllib.loads(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"), parse_float=Decimal)


def problems_of(raw: dict) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(raw)
    return caught.value.problems


def test_default_policy_loads():
    policy = load_policy(DEFAULT_POLICY_FILE)
    assert policy.version == "2026-11-01" and policy.bank.name == "Example Bank"
    assert [stage.name for stage in policy.stages] == ["M1", "M2", "M3", "M4+"]
    assert policy.terms.self_service == (3, 6, 12, 24) and policy.terms.agent_only == (36, 48, 60)
    assert policy.fees.flat_monthly[12] == Decimal("0.0060")
    assert policy.fees.amortizing_apr[60] == Decimal("0.06")
    for currency in ("CNY", "USD", "RUB", "EUR", "JPY"):
        assert policy.minimum_installment.by_currency[currency] > 0
    assert policy.promise_max_days == 14 and policy.offer_expiry_minutes == 30
    assert policy.late_fee_waiver.allowed and policy.late_fee_waiver.condition == "pay_in_full"


def test_stage_lookup():
    policy = load_policy(DEFAULT_POLICY_FILE)
    assert policy.stage_for(0) is None
    assert policy.stage_for(1).name == "M1" and policy.stage_for(30).name == "M1"
    assert policy.stage_for(31).name == "M2" and policy.stage_for(90).name == "M3"
    assert policy.stage_for(91).name == "M4+" and policy.stage_for(5000).name == "M4+"
    assert policy.stage_for(45).consequences.credit_bureau
    assert not policy.stage_for(10).consequences.credit_bureau


def test_floats_written_by_hand_are_accepted(raw):
    raw["fees"]["flat_monthly"] = {"3": 0.0075, "6": 0.007, "12": 0.006, "24": 0.006}
    assert parse_policy(raw).fees.flat_monthly[6] == Decimal("0.007")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda raw: raw["stages"][1].update(min_dpd=30), "stages[1].min_dpd: overlaps stages[0]"),
        (lambda raw: raw["stages"][1].update(min_dpd=35), "stages[1].min_dpd: leaves a gap after stages[0]"),
        (lambda raw: raw["stages"][0].update(min_dpd=2), "stages[0].min_dpd: the first stage must start at 1"),
        (lambda raw: raw["stages"][3].update(max_dpd=120), "stages[3].max_dpd: the last stage must be open-ended"),
        (lambda raw: raw["stages"][1].pop("max_dpd"), "stages[1].max_dpd: missing (only the last stage may be open-ended)"),
        (lambda raw: raw["stages"][2].update(name="M1"), "stages[2].name: 'M1' is already used by stages[0]"),
        (lambda raw: raw["stages"][0]["consequences"].pop("interest"), "stages[0].consequences.interest: missing"),
        (lambda raw: raw["stages"][0]["consequences"].update(jail=True), "stages[0].consequences.jail: unknown key"),
        (lambda raw: raw["stages"][0]["consequences"].update(interest="yes"), "stages[0].consequences.interest: must be a boolean"),
        (lambda raw: raw["stages"][1].update(max_dpd=20), "stages[1].max_dpd: 20 is before min_dpd 31"),
        (lambda raw: raw.update(stages=[]), "stages: at least one stage is needed"),
        (lambda raw: raw["terms"]["self_service"].append(7), "terms.self_service: 7 has no fee rate in fees.flat_monthly"),
        (lambda raw: raw["terms"]["self_service"].append(12), "terms.self_service: 12 appears twice"),
        (lambda raw: raw["terms"]["self_service"].append(72), "terms.self_service: 72 is out of range (1 to 60 months)"),
        (lambda raw: raw["terms"]["agent_only"].append(24), "terms.agent_only: 24 is also a self-service term"),
        (lambda raw: raw["terms"]["agent_only"].append(42), "terms.agent_only: 42 has no rate in fees.amortizing_apr"),
        (lambda raw: raw["terms"].update(self_service_method="bullet"), "terms.self_service_method: 'bullet' is not"),
        (lambda raw: raw["terms"].update(self_service_method="amortizing"), "terms.self_service: 3 has no rate in fees.amortizing_apr"),
        (lambda raw: raw["fees"]["flat_monthly"].update({"12": Decimal("0.6")}), "fees.flat_monthly.12: 0.6 is out of range (0 to 0.03 a month)"),
        (lambda raw: raw["fees"]["amortizing_apr"].update({"36": Decimal("-0.1")}), "fees.amortizing_apr.36: -0.1 is out of range"),
        (lambda raw: raw["fees"]["amortizing_apr"].update({"36": "ten"}), "fees.amortizing_apr.36: 'ten' is not a number"),
        (lambda raw: raw["fees"]["flat_monthly"].update({"year": Decimal("0.01")}), "fees.flat_monthly.year: not a term in months"),
        (lambda raw: raw["minimum_installment"].update(XYZ=10), "minimum_installment.XYZ: unknown currency 'XYZ'"),
        (lambda raw: raw["minimum_installment"].update(JPY=Decimal("3000.5")), "minimum_installment.JPY: 3000.5 has more decimals than JPY allows (0)"),
        (lambda raw: raw["minimum_installment"].update(CNY=0), "minimum_installment.CNY: must be more than 0"),
        (lambda raw: raw["minimum_installment"].pop("default_share"), "minimum_installment.default_share: missing"),
        (lambda raw: raw["promise_to_pay"].update(max_days=400), "promise_to_pay.max_days: 400 is out of range (0 to 90)"),
        (lambda raw: raw["promise_to_pay"].update(max_days="two weeks"), "promise_to_pay.max_days: must be a whole number"),
        (lambda raw: raw["late_fee_waiver"].update(condition="be nice"), "late_fee_waiver.condition: 'be nice' is not one of"),
        (lambda raw: raw["late_fee_waiver"].pop("within_days"), "late_fee_waiver.within_days: missing"),
        (lambda raw: raw["offers"].update(expiry_minutes=0), "offers.expiry_minutes: 0 is out of range"),
        (lambda raw: raw.pop("offers"), "offers.expiry_minutes: missing"),
        (lambda raw: raw.update(fee={}), "fee: unknown key"),
        (lambda raw: raw["bank"].update(timezone="Mars/Base"), "bank.timezone: unknown time zone 'Mars/Base'"),
    ],
)
def test_each_mistake_is_reported_with_its_key(raw, change, expected):
    change(raw)
    problems = problems_of(raw)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_waiver_not_allowed_needs_no_condition(raw):
    raw["late_fee_waiver"] = {"allowed": False}
    waiver = parse_policy(raw).late_fee_waiver
    assert not waiver.allowed and waiver.condition is None


def test_several_mistakes_are_reported_together(raw):
    broken = copy.deepcopy(raw)
    broken["stages"][1]["min_dpd"] = 25
    broken["terms"]["self_service"].append(7)
    broken["fees"]["flat_monthly"]["3"] = Decimal("0.5")
    broken["minimum_installment"]["ABC"] = 5
    broken["promise_to_pay"]["max_days"] = -1
    broken["bank"].pop("name")
    problems = problems_of(broken)
    for expected in (
        "bank.name: missing",
        "stages[1].min_dpd: overlaps stages[0]",
        "terms.self_service: 7 has no fee rate in fees.flat_monthly",
        "fees.flat_monthly.3: 0.5 is out of range",
        "minimum_installment.ABC: unknown currency",
        "promise_to_pay.max_days: -1 is out of range",
    ):
        assert any(problem.startswith(expected) for problem in problems), (expected, problems)
    # a wrong rate is reported once, not again as a missing one
    assert not any(problem.startswith("terms.self_service: 3 ") for problem in problems)


def test_unreadable_and_invalid_files(tmp_path: Path):
    with pytest.raises(PolicyError, match="cannot be read"):
        load_policy(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("version = \n", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(bad)


def test_a_file_edited_by_a_bank_is_read_exactly(tmp_path: Path):
    text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8").replace("12 = 0.0060", "12 = 0.0065")
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    assert load_policy(path).fees.flat_monthly[12] == Decimal("0.0065")


def test_handoff_words_ignore_case_width_and_apostrophes() -> None:
    handoff = load_policy(DEFAULT_POLICY_FILE).handoff
    assert handoff.reason_in("I didnt make this payment", "en") == "dispute"
    assert handoff.reason_in("I didn’t make this purchase", "en") == "dispute"
    assert handoff.reason_in("ＨＵＭＡＮ please", "en") == "person"
    assert handoff.reason_in("I studied the statement", "en") is None
    assert handoff.reason_in("这笔是盗刷的", "zh_CN") == "dispute"
    assert handoff.reason_in("Позовите ОПЕРАТОРА", "ru") == "person"
