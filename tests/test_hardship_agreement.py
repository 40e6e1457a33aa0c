"""The hardship agreement: figures from the schedule (a different payment stated), terms from the
account's pack, the language it is written in, in each language."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from bot.domain.calculator import amortizing_plan
from bot.domain.jurisdiction import HardshipTerms
from bot.domain.policy import load_policy
from bot.i18n import create_i18n
from bot.services.arrangements import OfferKind, Proposal
from bot.settings import DEFAULT_POLICY_FILE
from handlers.plans import agreement_text
from tests.conftest import make_account

POLICY = load_policy(DEFAULT_POLICY_FILE)
CN = POLICY.for_jurisdiction("CN")
I18N = create_i18n("en")
ACCOUNT = make_account(statement_balance=Decimal("12000.00"))


def agreement(
    locale: str, policy=CN, rounding: str = "half_up", remainder: str = "last", months: int = 60, apr: str = "0.06"
) -> str:
    plan = amortizing_plan(
        Decimal("12000"), "CNY", months, Decimal(apr), start=date(2026, 12, 1), rounding=rounding, remainder=remainder
    )
    proposal = Proposal(0, OfferKind.PLAN, "CNY", plan.total_paid, plan.schedule[0].due_date, plan)
    with I18N.context(), I18N.use_locale(locale):
        return agreement_text(ACCOUNT, proposal, policy).replace("\u00a0", " ").replace("\u202f", " ")


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        (
            "en",
            [
                "Repayment: 59 monthly payments of CN¥232.00 and a last payment of CN¥231.53, from Jan 1, 2027 "
                "to Dec 1, 2031; CN¥13,919.53 in all.",
                "Interest: 6.00% a year on the remaining balance, CN¥1,919.53 in all.",
                "No late fees or overdue interest are charged while you keep to the schedule.",
                "If a payment is more than 30 days late, the agreement ends",
                "While you keep to the schedule, the bank sends you no collection messages.",
                "This agreement is written in English.",
            ],
        ),
        (
            "zh_CN",
            [
                "还款安排：59 期每期还款 ¥232.00和最后一期还款 ¥231.53，自 2027年1月1日 起至 2031年12月1日 止，合计 ¥13,919.53。",
                "利息：按剩余欠款年利率 6.00% 计息，合计 ¥1,919.53。",
                "只要您按计划还款，银行不收取违约金和逾期利息。",
                "如任何一期还款逾期超过 30 天，本协议即终止",
                "只要您按计划还款，银行不会向您发送催收信息。",
                "本协议以简体中文订立。",
            ],
        ),
        (
            "ru",
            [
                "Погашение: 59 ежемесячных платежей по 232,00 CN¥ и последний платёж 231,53 CN¥, с 1 янв. 2027 г. "
                "по 1 дек. 2031 г.; всего 13 919,53 CN¥.",
                "Проценты: 6,00% годовых на остаток задолженности, всего 1 919,53 CN¥.",
                "Пока вы соблюдаете график, плата за просрочку и проценты на просроченную задолженность не начисляются.",
                "Если платёж просрочен более чем на 30 дней, соглашение прекращается",
                "Пока вы соблюдаете график, банк не присылает вам сообщений о взыскании задолженности.",
                "Настоящее соглашение составлено на русском языке.",
            ],
        ),
    ],
)
def test_the_schedules_figures_and_the_packs_terms_in_each_language(locale: str, expected: list[str]) -> None:
    # 12,000 at 6 % over 60 months, rounded half-up with the remainder last: 59 x 232.00 + 231.53
    # = 13,919.53 (232.00 x 60 would be 13,920.00, which the schedule does not add up to).
    text = agreement(locale)
    for sentence in expected:
        assert sentence in text, f"{locale}: {sentence!r} not in\n{text}"
    assert "13,920.00" not in text and "13 920,00" not in text


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        (
            "en",
            [
                "Repayment: a first payment of CN¥232.15 and 59 monthly payments of CN¥231.99,",
                "Late fees and overdue interest are still charged under the card's terms while the plan runs.",
                "If a payment is more than 21 days late",
                "While the plan runs, the bank may still send you messages about the account.",
            ],
        ),
        (
            "zh_CN",
            [
                "还款安排：首期还款 ¥232.15和59 期每期还款 ¥231.99，",
                "在本协议履行期间，违约金和逾期利息仍按信用卡条款收取。",
                "逾期超过 21 天",
                "在本协议履行期间，银行仍可能就该账户向您发送信息。",
            ],
        ),
        (
            "ru",
            [
                "Погашение: первый платёж 232,15 CN¥ и 59 ежемесячных платежей по 231,99 CN¥,",
                "плата за просрочку и проценты на просроченную задолженность по-прежнему начисляются",
                "более чем на 21 день",
                "банк может по-прежнему присылать вам сообщения о счёте",
            ],
        ),
    ],
)
def test_other_terms_and_a_first_payment_that_differs(locale: str, expected: list[str]) -> None:
    terms = HardshipTerms(fees_during_plan=True, ends_after_days_late=21, stops_collection_messages=False)
    policy = replace(CN, jurisdiction=replace(CN.rules, hardship=terms))
    text = agreement(locale, policy, rounding="down", remainder="first")
    for sentence in expected:
        assert sentence in text, f"{locale}: {sentence!r} not in\n{text}"


def test_equal_payments_are_stated_once() -> None:
    # 12,000 at 6 % over 12 months: 1,032.797... a month, half-up 1,032.80, and a last of 1,032.78
    assert "11 monthly payments of CN¥1,032.80 and a last payment of CN¥1,032.78" in agreement("en", months=12)
    text = agreement("en", months=3, apr="0")  # 4,000.00 three times
    assert "Repayment: 3 monthly payments of CN¥4,000.00, from" in text
    assert "last payment" not in text and "first payment" not in text


@pytest.mark.parametrize(("days", "words"), [(1, "1 день"), (3, "3 дня"), (60, "60 дней")])
def test_russian_counts_days_in_its_own_plural(days: int, words: str) -> None:
    policy = replace(CN, jurisdiction=replace(CN.rules, hardship=replace(CN.rules.hardship, ends_after_days_late=days)))
    assert f"более чем на {words}," in agreement("ru", policy)


def test_the_us_pack_ends_the_agreement_after_60_days() -> None:
    assert "more than 60 days late" in agreement("en", POLICY.for_jurisdiction("US"))
