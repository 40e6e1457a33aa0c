"""What the bot says about the credit bureau, the courts and rates is true for the account's jurisdiction.

A CN, a US and a RU account, in English, Chinese and Russian: the bureau's name and dates come from
the pack (CN: five years from the repayment, so paying today gives a date; US: seven years from 180
days after the delinquency began, whatever is paid); court action only above the pack's threshold;
China's criminal conditions only to a CN account that meets them; nothing promises that paying
"avoids" anything; the annualized rate comes first and a daily or monthly rate beside it keeps
every digit it has; Chinese plans call their cost interest, Russian ones name the ПСК.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from babel.messages.pofile import read_po

from bot.domain.calculator import make_plan
from bot.domain.consequences import outlook
from bot.domain.dates import add_years
from bot.domain.faq import Circumstances, FaqError, check_jurisdictions, knowledge_base, matcher_for, render_answer
from bot.domain.policy import load_policy
from bot.domain.rates import annual_percent, daily_percent
from bot.formatting import day, percent
from bot.i18n import LOCALES_DIR, create_i18n
from bot.services.arrangements import OfferKind, Proposal
from bot.settings import DEFAULT_POLICY_FILE, SUPPORTED_LOCALES
from handlers.balance import consequences, interest_rate
from handlers.faq import placeholder_values
from handlers.plans import proposal_text
from tests.conftest import BotHarness, make_account

TODAY = date(2026, 12, 1)
POLICY = load_policy(DEFAULT_POLICY_FILE)
I18N = create_i18n("en")
LOCALES = ("en", "zh_CN", "ru")


def cn(**figures):
    return make_account(**{"currency": "CNY", **figures})


def us(**figures):
    return make_account(**{"currency": "USD", "daily_interest_rate": Decimal("0.00068"), "statement_balance": Decimal("6420.55"), **figures})


def ru(**figures):
    return make_account(**{"currency": "RUB", **figures})


def plain(text: str) -> str:
    """Babel's narrow and non-breaking spaces as plain ones, to compare with written text."""
    return text.replace("\u202f", " ").replace("\xa0", " ")


def facts_of(account, today=TODAY):
    return outlook(POLICY.for_account(account), account, today)


def balance_lines(account, locale, today=TODAY):
    view = POLICY.for_account(account)
    with I18N.context(), I18N.use_locale(locale):
        return plain("\n".join(consequences(outlook(view, account, today), view.stage_for(account.days_past_due), locale)))


def faq_answer(account, entry_id, locale, today=TODAY):
    view = POLICY.for_account(account)
    facts = outlook(view, account, today)
    with I18N.context(), I18N.use_locale(locale):
        values = placeholder_values(account, facts, view)
    circumstances = Circumstances(facts.jurisdiction, facts.bureau.rule.rule, facts.thresholds_met)
    return plain(render_answer(knowledge_base(locale).get(entry_id), values, circumstances))


# --- the credit bureau --------------------------------------------------------------------------------


@pytest.mark.parametrize("make, years", [(cn, 5), (ru, 7)])
def test_paying_today_gives_the_date_the_record_goes(make, years) -> None:
    account = make(days_past_due=45)
    facts = facts_of(account)
    assert facts.bureau.reported and facts.bureau.paying_moves_the_date
    assert facts.bureau.record_ends == add_years(TODAY, years)
    assert facts_of(account, TODAY + timedelta(days=20)).bureau.record_ends == add_years(TODAY + timedelta(days=20), years)


def test_the_us_date_is_fixed_by_the_delinquency_whatever_is_paid() -> None:
    began = TODAY - timedelta(days=75)
    expected = add_years(began + timedelta(days=180), 7)
    unpaid = us(days_past_due=75, overdue_amount=Decimal("1850.00"))
    paid = us(days_past_due=75, overdue_amount=Decimal("0"), statement_balance=Decimal("0"))
    assert facts_of(unpaid).bureau.record_ends == expected == date(2034, 3, 16)
    assert facts_of(paid).bureau.record_ends == expected, "paying does not move the date"
    later = us(days_past_due=75 + 40, overdue_amount=Decimal("0"))
    assert facts_of(later, TODAY + timedelta(days=40)).bureau.record_ends == expected, "nor does time passing"
    assert not facts_of(unpaid).bureau.paying_moves_the_date


BUREAU_WORDS = {
    "CN": {"en": "People's Bank of China", "zh_CN": "中国人民银行征信中心", "ru": "Народного банка Китая"},
    "US": {"en": "Equifax, Experian and TransUnion", "zh_CN": "Equifax、Experian 和 TransUnion", "ru": "Equifax, Experian и TransUnion"},
    "RU": {"en": "credit history bureaus", "zh_CN": "信用历史局", "ru": "бюро кредитных историй"},
}
PAID_WORDS = {"en": "as paid", "zh_CN": "已还清", "ru": "погашен"}


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("code, make", [("CN", cn), ("US", us), ("RU", ru)])
def test_balance_and_faq_name_the_packs_bureau_and_its_dates(code, make, locale) -> None:
    account = make(days_past_due=75)
    ends = plain(day(facts_of(account).bureau.record_ends, locale))
    others = [words[locale] for other, words in BUREAU_WORDS.items() if other != code]
    for text in (balance_lines(account, locale), faq_answer(account, "credit_record", locale), faq_answer(account, "pay_in_full_today", locale)):
        assert ends in text, text
        assert not any(word in text for word in others), text
        if code == "US":
            assert PAID_WORDS[locale] in text, "what paying changes: the record shows the account as paid"
    for text in (balance_lines(account, locale), faq_answer(account, "credit_record", locale)):
        assert BUREAU_WORDS[code][locale] in text


def test_the_us_texts_read_right_in_each_language() -> None:
    account = us(days_past_due=75)
    assert (
        "• The overdue is reported to the credit bureaus (Equifax, Experian and TransUnion). The record stays for "
        "7 years counted from 180 days after the delinquency began, that is until Mar 16, 2034, whether or not the "
        "debt is paid; once it is paid, the record shows the account as paid."
    ) in balance_lines(account, "en")
    assert (
        "该记录自逾期开始满 180天之日起保留 7年，即保留到 2034年3月16日，无论欠款是否还清；还清后，记录会显示该账户已还清。"
    ) in balance_lines(account, "zh_CN")
    assert (
        "Запись хранится 7 лет, считая с того дня, когда с начала просрочки прошло 180 дней, то есть до "
        "16 мар. 2034 г., независимо от того, погашен ли долг; после оплаты в записи будет указано, что счёт погашен."
    ) in balance_lines(account, "ru")
    text = faq_answer(account, "credit_record", "en")
    assert "for 7 years, counted from 180 days after the delinquency began: for this account, until Mar 16, 2034." in text
    assert "Paying does not move that date" in text and "reported as paid" in text


def test_the_cn_and_ru_texts_give_the_date_of_paying_today() -> None:
    assert "if you pay today, it would be removed on Dec 1, 2031." in balance_lines(cn(days_past_due=45), "en")
    assert "如果您今天还款，该记录将于 2031年12月1日 删除。" in balance_lines(cn(days_past_due=45), "zh_CN")
    assert "если оплатить сегодня, 1 дек. 2033 г. она будет удалена." in balance_lines(ru(days_past_due=45), "ru")
    assert "If you repaid today, it would be deleted on Dec 1, 2031" in faq_answer(cn(days_past_due=45), "credit_record", "en")
    assert "如果今天还清，记录将在 2031年12月1日 删除" in faq_answer(cn(days_past_due=45), "credit_record", "zh_CN")
    assert "Если погасить долг сегодня, запись будет удалена 1 дек. 2033 г.;" in faq_answer(ru(days_past_due=45), "credit_record", "ru")


def test_before_the_bureau_stage_the_pack_names_its_bureau() -> None:
    lines = balance_lines(us(days_past_due=10), "en")
    assert "• If the account reaches 31 days past due, the overdue is reported to the credit bureaus (Equifax, Experian and TransUnion)." in lines
    assert "whether or not" not in lines and "2034" not in lines


@pytest.mark.parametrize("locale", LOCALES)
def test_experian_asked_by_a_us_account_is_the_us_bureaus(locale) -> None:
    question = {"en": "Do you report me to Experian?", "zh_CN": "你们会把我报给Experian征信吗", "ru": "Вы сообщаете о просрочке в Experian?"}
    found = matcher_for(locale).match(question[locale], verified=True).best
    assert found is not None and found.id == "credit_record", found
    text = faq_answer(us(days_past_due=75), found.id, locale)
    assert BUREAU_WORDS["US"][locale] in text
    assert BUREAU_WORDS["CN"][locale] not in text and "人民银行" not in text and "People's Bank" not in text


# --- legal consequences ---------------------------------------------------------------------------


COURT = {"en": "court", "zh_CN": "法院", "ru": "суд"}
CRIMINAL = {"en": "malicious overdraft", "zh_CN": "恶意透支", "ru": "злостный овердрафт"}


@pytest.mark.parametrize(
    "account, court, criminal",
    [
        (cn(days_past_due=90, overdue_amount=Decimal("80000")), False, False),  # not yet 91 days
        (cn(days_past_due=91, overdue_amount=Decimal("9999.99")), False, False),  # below 10,000
        (cn(days_past_due=91, overdue_amount=Decimal("10000")), True, False),
        (cn(days_past_due=91, overdue_amount=Decimal("49999.99")), True, False),
        (cn(days_past_due=91, overdue_amount=Decimal("50000")), True, True),
        (us(days_past_due=119, overdue_amount=Decimal("90000")), False, False),  # not yet 120 days
        (us(days_past_due=120, overdue_amount=Decimal("2499.99")), False, False),
        (us(days_past_due=120, overdue_amount=Decimal("2500")), True, False),
        (us(days_past_due=400, overdue_amount=Decimal("900000")), True, False),  # no criminal notice in the US
        (ru(days_past_due=91, overdue_amount=Decimal("29999")), False, False),
        (ru(days_past_due=91, overdue_amount=Decimal("30000")), True, False),
        (ru(days_past_due=400, overdue_amount=Decimal("9000000")), True, False),
    ],
)
def test_legal_texts_follow_the_packs_thresholds(account, court, criminal) -> None:
    facts = facts_of(account)
    assert (facts.court_action, facts.criminal_notice) == (court, criminal)
    for locale in LOCALES:
        balance = balance_lines(account, locale)
        answer = faq_answer(account, "legal_consequences", locale)
        assert (COURT[locale] in balance) is court, (locale, balance)
        assert (COURT[locale] in answer) is court, (locale, answer)
        assert (CRIMINAL[locale] in answer) is criminal, (locale, answer)
        assert CRIMINAL[locale] not in balance


def test_the_court_sentence_reads_right_in_each_language() -> None:
    account = us(days_past_due=150, overdue_amount=Decimal("3000"))
    assert (
        "• The bank may consider asking a court to order repayment of the debt. You would be told of any claim and "
        "could present your side."
    ) in balance_lines(account, "en")
    assert "• 银行可能考虑向法院起诉，要求偿还欠款。如有起诉，您会收到通知，并可以陈述自己的意见。" in balance_lines(account, "zh_CN")
    assert (
        "• Банк может рассмотреть обращение в суд о взыскании долга. О любом таком обращении вам сообщат, и вы "
        "сможете изложить свою позицию."
    ) in balance_lines(account, "ru")


AVOID = ("avoid", "避免", "избеж", "legal department", "法务部门", "юридический отдел")


def test_no_text_promises_that_paying_avoids_anything() -> None:
    for locale in LOCALES:
        for entry in knowledge_base(locale):
            for answer in entry.answers:
                assert not any(word in answer.lower() for word in AVOID), (locale, entry.id)
    for locale in SUPPORTED_LOCALES:
        with (LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as source:
            for message in read_po(source, locale=locale):
                if message.id:
                    assert not any(word in every_form(message).lower() for word in AVOID), (locale, message.id)


# --- rates ------------------------------------------------------------------------------------------


def test_a_daily_rate_keeps_its_digits_and_comes_after_the_annual_one() -> None:
    assert annual_percent(Decimal("0.00068")) == Decimal("24.82") and daily_percent(Decimal("0.00068")) == Decimal("0.068")
    assert percent(Decimal("0.068"), "en") == "0.068%" and percent(Decimal("13.03"), "ru") == "13,03%"
    expected = {
        "en": "24.82% a year (0.068% a day)",
        "zh_CN": "年化利率 24.82%（日利率 0.068%）",
        "ru": "24,82% годовых (0,068% в день)",
    }
    for locale, text in expected.items():
        with I18N.context(), I18N.use_locale(locale):
            assert interest_rate(Decimal("0.00068"), locale) == text
        answer = faq_answer(us(days_past_due=75), "balance_grew", locale)
        assert text in answer and "0.07%" not in answer and "0,07%" not in answer
        assert answer.index(text) < answer.index("4.37" if locale != "ru" else "4,37")


def plan_text(method: str, currency: str, rate: str, locale: str) -> str:
    plan = make_plan(method, Decimal("10000"), currency, 3, Decimal(rate), start=date(2026, 12, 31))
    proposal = Proposal(1, OfferKind.PLAN, currency, plan.total_paid, plan.schedule[0].due_date, plan)
    with I18N.context(), I18N.use_locale(locale):
        return proposal_text(proposal)


def test_plans_show_the_annualized_rate_first() -> None:
    flat = plan_text("flat", "CNY", "0.00745", "en").splitlines()
    assert flat[:2] == ["Installment plan: 3 months", "Annualized rate (APR): 13.36% (interest of 0.745% of the amount each month)"]
    assert "Total interest: CN¥223.50" in flat
    amortizing = plan_text("amortizing", "USD", "0.099", "en").splitlines()
    assert amortizing[1] == "Annualized rate (APR): 9.90% (interest on the remaining balance)"


def test_chinese_plans_show_the_annualized_rate_first_and_call_the_cost_interest() -> None:
    text = plan_text("flat", "CNY", "0.0060", "zh_CN")
    lines = text.splitlines()
    assert lines[1] == "年化利率：10.77%（按分期本金每月 0.60% 计收利息）"
    assert "利息合计：¥180.00" in lines
    assert "手续费" not in text and text.index("年化利率") < text.index("每月")
    with I18N.context(), I18N.use_locale("zh_CN"):
        menu = I18N.gettext("{months}-month plan: APR {rate}, {total} in all.")
    assert menu.index("年化利率") < menu.index("{total}")


def test_russian_plans_name_the_full_cost_of_credit() -> None:
    for method, rate in (("flat", "0.0060"), ("amortizing", "0.18")):
        text = plan_text(method, "RUB", rate, "ru")
        assert text.splitlines()[1].startswith("Полная стоимость кредита (ПСК): ")
        assert " годовых (проценты " in text.splitlines()[1]
        assert "эффективн" not in text.lower() and "Всего процентов:" in text
    with (LOCALES_DIR / "ru" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source, locale="ru")
    assert "ПСК {rate} годовых" in catalog.get("Offer sent: {months} months, APR {rate}, {payment} a month.").string
    assert "полная стоимость кредита {rate} годовых" in catalog.get("{months}-month plan: APR {rate}, {total} in all.").string
    assert not any("эффективн" in every_form(message).lower() for message in catalog if message.id)


# --- over HTTP ------------------------------------------------------------------------------------


BIRTH = {"en": "03/07/1985", "ru": "07.03.1985", "zh-hans": "1985年3月7日"}


async def signed_in(bank: BotHarness, phone: str, language: str):
    cardholder = bank.cardholder(language_code=language, phone=phone)
    await cardholder.send("/start")
    await cardholder.share_contact(phone)
    await cardholder.send(BIRTH[language])
    return cardholder


@pytest.mark.database
async def test_a_us_cardholder_hears_about_the_us_bureaus_and_a_fixed_date(harness: BotHarness) -> None:
    await harness.add_accounts(us(account_id="US-1", phone="+14155550132", days_past_due=75, overdue_amount=Decimal("1850.00"), locale="en"))
    cardholder = await signed_in(harness, "+14155550132", "en")
    today = harness.clock.now().date()
    ends = day(add_years(today - timedelta(days=75) + timedelta(days=180), 7), "en")
    answer = (await cardholder.send("do you report me to experian?"))[-1].text
    assert "Equifax, Experian and TransUnion" in answer and f"until {ends}" in answer
    assert "People's Bank" not in answer and "Paying does not move that date" in answer
    balance = (await cardholder.send("/balance"))[-1].text
    assert f"until {ends}, whether or not the debt is paid" in balance
    assert "24.82% a year (0.068% a day), about $4.37 a day" in balance
    assert "court" not in balance and "avoid" not in balance
    jail = (await cardholder.send("can I go to jail for this?"))[-1].text
    assert "not in itself a crime" in jail and "malicious" not in jail and "court" not in jail


@pytest.mark.database
@pytest.mark.parametrize("overdue, criminal", [(Decimal("12000.00"), False), (Decimal("60000.00"), True)])
async def test_the_criminal_conditions_only_reach_a_cn_account_that_meets_them(harness: BotHarness, overdue, criminal) -> None:
    await harness.add_accounts(cn(days_past_due=120, overdue_amount=overdue, statement_balance=overdue + 1000))
    cardholder = await signed_in(harness, "+8613800138000", "zh-hans")
    answer = (await cardholder.send("欠信用卡会坐牢吗？"))[-1].text
    assert "本身不是犯罪" in answer and "法院" in answer
    assert ("恶意透支" in answer) is criminal
    assert "避免" not in answer


def test_a_variant_for_a_jurisdiction_without_a_pack_stops_the_start() -> None:
    check_jurisdictions(POLICY.jurisdictions)
    with pytest.raises(FaqError) as caught:
        check_jurisdictions({"US", "RU"})
    assert all("legal_consequences" in problem and "'CN' has no pack" in problem for problem in caught.value.problems)
    assert len(caught.value.problems) == 3, "one per language"


def every_form(message: object) -> str:
    """A catalog entry's translation, all its plural forms together."""
    string = message.string  # type: ignore[attr-defined]
    return " ".join(string) if isinstance(string, tuple) else string
