"""Self-service over HTTP: balance, options, negotiation, promises and acceptance, recorded first."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from babel.dates import format_date
from sqlalchemy import func, select, update

from bot.db.models import Account, Arrangement, ChatProfile, Installment, Offer
from bot.telegram_fake import ChatClient
from tests.conftest import BotHarness, make_account

pytestmark = pytest.mark.database

ACCOUNTS = {
    "zh-hans": dict(account_id="CN-1", phone="+8613800138000", currency="CNY", locale="zh_CN"),
    "ru": dict(account_id="RU-1", phone="+79123456789", currency="RUB", locale="ru", card_last4="7788"),
    "en": dict(account_id="US-1", phone="+14155550132", currency="USD", locale="en", card_last4="1111",
               statement_balance=Decimal("5200.00"), overdue_amount=Decimal("1234.00"), minimum_due=Decimal("260.00"),
               late_fee=Decimal("35.00"), days_past_due=75),
}
BIRTH_DATE = {"en": "03/07/1985", "ru": "07.03.1985", "zh-hans": "1985年3月7日"}


@pytest.fixture
async def bank(harness: BotHarness) -> BotHarness:
    await harness.add_accounts(*(make_account(**values) for values in ACCOUNTS.values()))
    return harness


async def signed_in(bank: BotHarness, language: str = "en") -> ChatClient:
    cardholder = bank.cardholder(language_code=language, phone=ACCOUNTS[language]["phone"])
    await cardholder.send("/start")
    await cardholder.share_contact(ACCOUNTS[language]["phone"])
    verified = await cardholder.send(BIRTH_DATE[language])
    assert ACCOUNTS[language].get("card_last4", "4321") in verified[-1].text
    return cardholder


async def count(bank: BotHarness, model: type) -> int:
    async with bank.session_factory() as session:
        return await session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize(
    ("language", "amounts"),
    [
        ("en", ["$1,234.00", "$260.00", "$5,200.00", "$35.00"]),
        ("ru", ["12 345,60 ₽", "1 500,00 ₽", "15 000,00 ₽"]),
        ("zh-hans", ["¥12,345.60", "¥1,500.00", "¥15,000.00"]),
    ],
)
async def test_balance_in_the_readers_locale(bank: BotHarness, language: str, amounts: list[str]) -> None:
    cardholder = await signed_in(bank, language)
    balance = await cardholder.send("/balance")
    text = balance[-1].text.replace("\u00a0", " ").replace("\u202f", " ")
    for amount in amounts:
        assert amount in text
    assert len(text) < 4096


async def test_balance_explains_consequences_truthfully(bank: BotHarness) -> None:
    cardholder = await signed_in(bank, "en")
    balance = await cardholder.press("Balance")
    text = balance[-1].text
    assert "reported to the credit bureaus (Equifax, Experian and TransUnion)" in text
    assert "whether or not the debt is paid" in text and "People's Bank" not in text
    assert "card is suspended" in text
    assert "court" not in text, "75 days past due is not a legal-action stage"
    assert "If nothing is paid in the next 30 days" in text
    assert "The account would then be 105 days past due." in text and "M4+" not in text
    assert "/balance" not in text

    await cardholder.send("/start")
    first_contact = bank.fake.bot_messages(cardholder.chat_id)
    assert any("attempt to collect a debt" in message.text for message in first_contact)


async def test_choosing_and_accepting_a_plan(bank: BotHarness) -> None:
    cardholder = await signed_in(bank, "en")
    options = await cardholder.press("Ways to pay")
    menu = options[-1]
    assert "Paying only the minimum" in menu.text and "Paying in full now: $5,165.00" in menu.text
    assert any(label.startswith("12 months") for label in menu.labels)
    assert all(len(data.encode()) <= 64 for row in menu.inline_buttons for _, data in row if data)

    plan = await cardholder.press("12 months")
    # A US account's plan amortizes at the US pack's 9.90 %: $5,200.00 over 12 months is 456.9208 a
    # month exactly, 456.92 would leave a larger last payment, so 11 payments of 456.93 and a last
    # of 456.82; the IRR of those payments is the nominal 9.90 %.
    assert "Schedule:" in plan[-1].text and "Annualized rate (APR): 9.90% (interest on the remaining balance)" in plan[-1].text
    assert "Annualized rate (APR): 9.90%" in plan[-1].text and "12. Dec 2, 2027 — $456.82" in plan[-1].text
    accepted = await cardholder.press("Accept")
    assert "Done: your arrangement is recorded." in accepted[-1].text
    assert "First payment: $456.93 by" in accepted[-1].text

    async with bank.session_factory() as session:
        arrangement = await session.scalar(select(Arrangement))
        installments = (await session.scalars(select(Installment))).all()
    assert arrangement is not None and arrangement.status == "active" and arrangement.kind == "plan"
    assert len(installments) == 12
    assert sum(item.amount for item in installments) == arrangement.total

    my_plan = await cardholder.send("/myplan")
    assert "Next payment: $456.93 by" in my_plan[-1].text


async def test_double_accept_creates_one_arrangement(bank: BotHarness) -> None:
    cardholder = await signed_in(bank, "en")
    await cardholder.press("Ways to pay")
    plan = await cardholder.press("6 months")
    message_id = plan[-1].message_id
    data = next(data for label, data in plan[-1].inline_buttons[0])
    first = bank.fake.user_presses(cardholder.user_id, message_id, data)
    second = bank.fake.user_presses(cardholder.user_id, message_id, data)
    await cardholder.wait_quiet()
    assert await count(bank, Arrangement) == 1
    answers = [bank.fake.callback_answer(query) for query in (first, second)]
    assert any("already accepted" in (answer or {}).get("text", "") for answer in answers)
    assert sum("arrangement is recorded" in m.text for m in bank.fake.bot_messages(cardholder.chat_id)) == 1


async def test_another_accounts_offer_cannot_be_accepted(bank: BotHarness) -> None:
    victim = await signed_in(bank, "ru")
    await victim.send("/plans")
    async with bank.session_factory() as session:
        victims_offer = await session.scalar(select(Offer.id).order_by(Offer.id.desc()))
    attacker = await signed_in(bank, "en")
    await attacker.send("/plans")
    query = bank.fake.user_presses(attacker.user_id, attacker.last.message_id, f"offer:accept:{victims_offer}", forged=True)
    await attacker.wait_quiet()
    assert await count(bank, Arrangement) == 0
    assert "not available" in bank.fake.callback_answer(query)["text"]


async def test_expired_offer_and_changed_balance_are_refused(bank: BotHarness) -> None:
    cardholder = await signed_in(bank, "en")
    await cardholder.send("/plans")
    plan = await cardholder.press("12 months")
    async with bank.session_factory() as session, session.begin():
        await session.execute(update(Offer).values(expires_at=bank.clock.now()))
    expired = await cardholder.press_on(plan[-1], "Accept")
    assert any("expired" in message.text for message in expired)

    plan = await cardholder.press("12 months")
    async with bank.session_factory() as session, session.begin():
        await session.execute(update(Account).values(balance_version=Account.balance_version + 1))
    changed = await cardholder.press_on(plan[-1], "Accept")
    assert any("balance has changed" in message.text for message in changed)
    assert await count(bank, Arrangement) == 0


async def test_restart_between_confirm_and_accept(bank: BotHarness) -> None:
    cardholder = await signed_in(bank, "en")
    await cardholder.send("/plans")
    plan = await cardholder.press("24 months")
    await bank.restart()
    accepted = await cardholder.press_on(plan[-1], "Accept")
    assert "arrangement is recorded" in accepted[-1].text


async def test_accepting_a_second_arrangement_asks_to_replace(bank: BotHarness) -> None:
    cardholder = await signed_in(bank, "en")
    await cardholder.send("/plans")
    await cardholder.press("12 months")
    await cardholder.press("Accept")
    await cardholder.send("/plans")
    await cardholder.press("6 months")
    asked = await cardholder.press("Accept")
    assert "replace it" in asked[-1].text
    replaced = await cardholder.press("Replace")
    assert "arrangement is recorded" in replaced[-1].text
    async with bank.session_factory() as session:
        statuses = sorted((await session.scalars(select(Arrangement.status))).all())
    assert statuses == ["active", "replaced"]


@pytest.mark.parametrize(
    ("language", "typed", "fits"),
    [
        ("en", "1500", True),
        ("en", "1,500.50", True),
        ("en", "$1,500", True),
        ("ru", "1 500", True),
        ("ru", "1.500,50", True),
        ("ru", "500 руб", False),
        ("zh-hans", "１５００", True),
        ("zh-hans", "1500元", True),
        ("zh-hans", "¥1500", True),
        ("zh-hans", "50", False),
    ],
)
async def test_negotiating_a_monthly_amount(bank: BotHarness, language: str, typed: str, fits: bool) -> None:
    cardholder = await signed_in(bank, language)
    await cardholder.send("/plans")
    await cardholder.press("💬")
    answer = await cardholder.send(typed)
    labels = answer[-1].labels
    if fits:
        assert any(label.startswith("✅") for label in labels), answer[-1].text
    else:
        assert any(label.startswith("🙋") for label in labels), answer[-1].text


async def test_junk_amounts_get_a_polite_answer(bank: BotHarness) -> None:
    cardholder = await signed_in(bank, "en")
    await cardholder.send("/plans")
    await cardholder.press("💬")
    for junk in ("lots", "-5", "0", "1,50,0"):
        answer = await cardholder.send(junk)
        assert "couldn't read that as an amount" in answer[-1].text
    answer = await cardholder.send("9" * 40)
    assert "That number is too long for an amount" in answer[-1].text
    fits = await cardholder.send("600")
    assert any(label.startswith("✅") for label in fits[-1].labels)


async def test_promise_to_pay(bank: BotHarness) -> None:
    cardholder = await signed_in(bank, "en")
    await cardholder.send("/plans")
    dates = await cardholder.press("Promise to pay")
    assert len(dates[-1].labels) == 7
    too_far = await cardholder.send((bank.clock.now().date() + timedelta(days=20)).isoformat())
    assert "Please choose a date from today to" in too_far[-1].text and "talk to a person" in too_far[-1].text
    out_of_reach = await cardholder.send("2030-01-01")
    assert "That is too far ahead. Please choose a day below" in out_of_reach[-1].text
    amounts = await cardholder.press_on(dates[-1], dates[-1].labels[2])
    low = await cardholder.send("10")
    assert "Please choose an amount from $260.00" in low[-1].text
    proposal = await cardholder.press_on(amounts[-1], "Minimum due")
    assert "Promise to pay $260.00" in proposal[-1].text
    accepted = await cardholder.press("Accept")
    assert "First payment: $260.00" in accepted[-1].text
    my_plan = await cardholder.send("/myplan")
    assert "Promise to pay: active" in my_plan[-1].text


@pytest.mark.parametrize("language", ["en", "ru", "zh-hans"])
async def test_a_promise_date_without_a_year_is_the_next_such_day(bank: BotHarness, language: str) -> None:
    cardholder = await signed_in(bank, language)
    await cardholder.send("/plans")
    await cardholder.press({"en": "Promise to pay", "ru": "Обещание оплатить", "zh-hans": "承诺"}[language])
    nonsense = await cardholder.send("someday")
    assert len(nonsense[-1].labels) == 7, "a refusal offers the days to choose from"
    soon = bank.clock.now().date() + timedelta(days=5)
    typed = {
        "en": f"{format_date(soon, 'MMMM d', locale='en')}",
        "ru": f"{format_date(soon, 'd MMMM', locale='ru')}",
        "zh-hans": f"{soon.month}月{soon.day}日",
    }[language]
    amounts = await cardholder.send(typed)
    assert any(label.startswith(("Minimum due", "Минимальный", "最低")) for label in amounts[-1].labels), (typed, amounts[-1].text)
    assert format_date(soon, "medium", locale={"zh-hans": "zh_CN"}.get(language, language)) in amounts[-1].text


@pytest.mark.parametrize("language", ["en", "ru", "zh-hans"])
@pytest.mark.parametrize(("option", "kind"), [(1, "full"), (2, "current"), (3, "plan"), (None, "promise")])
async def test_each_option_end_to_end(bank: BotHarness, language: str, option: int | None, kind: str) -> None:
    cardholder = await signed_in(bank, language)
    menu = (await cardholder.send("/plans"))[-1]
    if option is None:
        dates = (await cardholder.press_on(menu, menu.labels[-2]))[-1]
        amounts = (await cardholder.press_on(dates, dates.labels[0]))[-1]
        proposal = (await cardholder.press_on(amounts, amounts.labels[0]))[-1]
    else:
        proposal = (await cardholder.press_on(menu, menu.labels[option]))[-1]
    accepted = (await cardholder.press_on(proposal, proposal.labels[0]))[-1]
    assert accepted.labels[0].startswith("💳"), "the confirmation carries the payment link"

    async with bank.session_factory() as session:
        arrangement = await session.scalar(select(Arrangement))
    assert arrangement is not None and arrangement.kind == kind and arrangement.status == "active"
    my_plan = (await cardholder.send("/myplan"))[-1]
    assert my_plan.text.count("\n") >= 3


async def test_a_broken_promise_shows_in_my_plan(bank: BotHarness) -> None:
    cardholder = await signed_in(bank, "en")
    await cardholder.send("/plans")
    dates = await cardholder.press("Promise to pay")
    amounts = await cardholder.press_on(dates[-1], dates[-1].labels[0])
    await cardholder.press_on(amounts[-1], "Minimum due")
    await cardholder.press("Accept")

    bank.clock.advance(days=3)
    await cardholder.send("/start")
    await cardholder.share_contact(ACCOUNTS["en"]["phone"])
    await cardholder.send(BIRTH_DATE["en"])
    my_plan = await cardholder.send("/myplan")
    assert "not kept" in my_plan[-1].text


async def test_stop_opts_out_and_start_resumes(bank: BotHarness) -> None:
    cardholder = await signed_in(bank, "en")
    stopped = await cardholder.send("/stop")
    assert "we will not send you messages" in stopped[-1].text
    async with bank.session_factory() as session:
        profile = await session.get(ChatProfile, cardholder.chat_id)
        assert profile is not None and profile.opted_out_at is not None
    await cardholder.send("/start")
    async with bank.session_factory() as session:
        profile = await session.get(ChatProfile, cardholder.chat_id)
        assert profile is not None and profile.opted_out_at is None


@pytest.mark.parametrize(
    ("language", "said"),
    [
        ("en", "I can pay 1,500 a month"), ("ru", "могу платить 2 000 руб в месяц"), ("zh-hans", "我每个月能还1500元"),
        ("en", "I can pay 1.5k a month"), ("ru", "могу платить 2 тыс. в месяц"), ("zh-hans", "我每月只能还一千五"),
        ("zh-hans", "每月能还1千5"), ("zh-hans", "我每月最多还两千块"),
    ],
)
async def test_saying_what_one_can_pay_a_month(bank: BotHarness, language: str, said: str) -> None:
    cardholder = await signed_in(bank, language)
    answer = await cardholder.send(said)
    assert any(label.startswith("✅") for label in answer[-1].labels), answer[-1].text


@pytest.mark.parametrize(
    ("language", "said", "budget", "plan"),
    [
        ("ru", "могу платить 30 тысяч рублей в месяц", "30 000,00 ₽", "Рассрочка: 3 мес."),
        ("zh-hans", "每月能还1.5万", "¥15,000.00", "3 期"),
        ("en", "I can pay 1.5k a month", "$1,500.00", "Installment plan: 6 months"),
    ],
)
async def test_a_budget_in_words_gets_the_shortest_plan_that_fits_it(
    bank: BotHarness, language: str, said: str, budget: str, plan: str
) -> None:
    cardholder = await signed_in(bank, language)
    answer = await cardholder.send(said)
    text = answer[-1].text.replace("\u00a0", " ").replace("\u202f", " ")
    assert budget in text and plan in text, text
    assert any(label.startswith("✅") for label in answer[-1].labels)
