"""Inputs that used to end in the apology: amounts the currency cannot hold, absurd dates, forged buttons."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from bot.clock import ManualClock
from bot.db.models import Arrangement, Case, Installment, Offer
from bot.settings import load_settings
from bot.telegram_fake import ChatClient, FakeTelegram
from tests.conftest import BOT_TOKEN, BotHarness, make_account

DESK = -1001234567890
AGENT = 501
APOLOGY = "Sorry, something went wrong"
ACCOUNTS = {
    "USD": dict(account_id="US-1", phone="+14155550132", currency="USD", locale="en", card_last4="1111",
                statement_balance=Decimal("5200.00"), overdue_amount=Decimal("1234.00"), minimum_due=Decimal("35.00")),
    "JPY": dict(account_id="JP-1", phone="+819012345678", currency="JPY", locale="en", card_last4="2222",
                statement_balance=Decimal("300000"), overdue_amount=Decimal("120000"), minimum_due=Decimal("8000"),
                late_fee=Decimal("3000")),
    "RUB": dict(account_id="RU-1", phone="+79123456789", currency="RUB", locale="ru", card_last4="7788"),
}
BIRTH = {"en": "1985-03-07", "ru": "07.03.1985", "zh-hans": "1985年3月7日"}


async def start_bank(fake: FakeTelegram, url: str, with_desk: bool) -> BotHarness:
    desk = dict(agent_chat_id=DESK, agent_ids=str(AGENT)) if with_desk else {}
    settings = load_settings(
        _env_file=None, bot_token=BOT_TOKEN, telegram_api_url=fake.base_url, database_url=url,
        flood_burst=1000,  # forged buttons pressed at machine speed; tests/test_flooding.py throttles
        **desk,
    )
    if with_desk:
        fake.add_forum_group(DESK)
        fake.add_user(AGENT, first_name="Agent")
    harness = BotHarness(fake, settings, ManualClock())
    await harness.start()
    await harness.add_accounts(*(make_account(**values) for values in ACCOUNTS.values()))
    return harness


@pytest.fixture
async def bank(fake: FakeTelegram, database_url: str) -> AsyncIterator[BotHarness]:
    harness = await start_bank(fake, database_url, with_desk=False)
    yield harness
    await harness.stop()


@pytest.fixture
async def bank_with_desk(fake: FakeTelegram, database_url: str) -> AsyncIterator[BotHarness]:
    harness = await start_bank(fake, database_url, with_desk=True)
    yield harness
    await harness.stop()


async def signed_in(bank: BotHarness, currency: str, language: str = "en") -> ChatClient:
    phone = ACCOUNTS[currency]["phone"]
    cardholder = bank.cardholder(language_code=language, phone=phone)
    await cardholder.send("/start")
    await cardholder.share_contact(phone)
    verified = await cardholder.send(BIRTH[language])
    assert ACCOUNTS[currency]["card_last4"] in verified[-1].text
    return cardholder


def no_apology(bank: BotHarness, *chat_ids: int) -> None:
    for chat_id in chat_ids:
        assert not any(APOLOGY in message.text for message in bank.fake.bot_messages(chat_id))


async def promises(bank: BotHarness) -> list[Offer]:
    async with bank.session_factory() as session:
        return list(await session.scalars(select(Offer).where(Offer.kind == "promise")))


async def promise_asks_amount(cardholder: ChatClient) -> None:
    await cardholder.send("/plans")
    dates = await cardholder.press("Promise to pay")
    await cardholder.press_on(dates[-1], dates[-1].labels[2])


# -- amounts the currency cannot hold --------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "typed", "answer"),
    [
        ("JPY", "8000.5", "The currency of your account, Japanese Yen, has no decimals: please type a whole number, for example ¥8,000."),
        ("JPY", "¥8,000.50", "Japanese Yen, has no decimals"),
        ("USD", "35.005", "US Dollar, has at most 2 decimals: please type an amount such as $35.00."),
    ],
)
async def test_a_promise_with_more_decimals_than_the_currency_has_is_refused(
    bank: BotHarness, currency: str, typed: str, answer: str
) -> None:
    cardholder = await signed_in(bank, currency)
    await promise_asks_amount(cardholder)
    refused = await cardholder.send(typed)
    assert answer in refused[-1].text
    assert await promises(bank) == []
    no_apology(bank, cardholder.chat_id)


@pytest.mark.parametrize(
    ("currency", "typed", "shown", "recorded"),
    [("JPY", "8000", "¥8,000", Decimal("8000")), ("JPY", "8000.00", "¥8,000", Decimal("8000")), ("USD", "35.5", "$35.50", Decimal("35.50"))],
)
async def test_what_is_recorded_is_what_is_shown(
    bank: BotHarness, currency: str, typed: str, shown: str, recorded: Decimal
) -> None:
    cardholder = await signed_in(bank, currency)
    await promise_asks_amount(cardholder)
    proposal = await cardholder.send(typed)
    assert f"Promise to pay {shown}" in proposal[-1].text
    accepted = await cardholder.press("Accept")
    assert f"First payment: {shown}" in accepted[-1].text
    async with bank.session_factory() as session:
        arrangement = await session.scalar(select(Arrangement))
        installment = await session.scalar(select(Installment))
    assert arrangement is not None and installment is not None
    assert arrangement.total == installment.amount == recorded
    (offer,) = await promises(bank)
    assert json.loads(offer.terms)["amount"] == str(recorded), "the offer holds the currency's decimals, no more"


@pytest.mark.parametrize(
    ("currency", "typed", "answer"),
    [
        ("USD", "100.123456789", "has at most 2 decimals: please type an amount such as $100.12."),
        ("JPY", "3000.5", "has no decimals: please type a whole number, for example ¥3,000."),
        ("USD", "123456789.123456789", "That number is too long for an amount."),
        ("USD", "1" * 16, "That number is too long for an amount."),
    ],
)
async def test_a_typed_budget_the_currency_cannot_hold_gets_a_specific_answer(
    bank: BotHarness, currency: str, typed: str, answer: str
) -> None:
    cardholder = await signed_in(bank, currency)
    await cardholder.send("/plans")
    await cardholder.press("💬")
    refused = await cardholder.send(typed)
    assert answer in refused[-1].text
    fits = await cardholder.send("3000" if currency == "USD" else "30000")
    assert any(label.startswith("✅") for label in fits[-1].labels), fits[-1].text
    no_apology(bank, cardholder.chat_id)


@pytest.mark.parametrize(
    ("currency", "language", "said", "answer"),
    [
        ("USD", "en", "I can pay 100.123456789 a month", "has at most 2 decimals: please type an amount such as $100.12."),
        ("JPY", "en", "I can pay 3000.5 a month", "has no decimals: please type a whole number, for example ¥3,000."),
        ("RUB", "ru", "могу платить 2 000,123 руб в месяц", "не более 2 знаков после запятой: введите сумму, например 2 000,12 ₽"),
    ],
)
async def test_saying_a_budget_the_currency_cannot_hold(
    bank: BotHarness, currency: str, language: str, said: str, answer: str
) -> None:
    cardholder = await signed_in(bank, currency, language)
    refused = await cardholder.send(said)
    assert answer in refused[-1].text.replace("\u00a0", " ")
    no_apology(bank, cardholder.chat_id)


# -- a promise day far away ------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["31.12.2999", "9999-12-31", "12/31/9999", "31.12.99999"])
async def test_a_promise_day_far_away_gets_the_allowed_window(bank_with_desk: BotHarness, typed: str) -> None:
    bank = bank_with_desk
    cardholder = await signed_in(bank, "USD")
    await cardholder.send("/plans")
    await cardholder.press("Promise to pay")
    assert bank.app is not None
    latest = bank.clock.now().date() + timedelta(days=bank.app.policy.promise_max_days)
    answer = (await cardholder.send(typed))[-1]
    if typed.endswith("99999"):
        assert "I couldn't read that as a date. Please choose a day below" in answer.text
    else:
        assert f"That is too far ahead. Please choose a day below or type a date from today to {latest:%b} {latest.day}, {latest.year}." == answer.text
        assert len(answer.labels) == 7
        chosen = await cardholder.press_on(answer, answer.labels[0])
        assert "How much will you pay by" in chosen[-1].text, "the day buttons of the answer work"
    async with bank.session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(Case)) == 0, "no agent is asked"
    no_apology(bank, cardholder.chat_id)


# -- callback data is input from the client ----------------------------------------------------------

HUGE = "9" * 20
FORGED_CARDHOLDER_DATA = [
    f"offer:view:{HUGE}", f"offer:accept:{HUGE}", "offer:accept:-1", "offer:view:0", "offer:view:abc", "offer:view:1:2",
    "offer:view:", "offers:view:1", f"ptp:{HUGE}", "ptp:-3", "ptp:100000", f"rate:{HUGE}:5", f"rate:1:{HUGE}",
    "rate:1:0", "plans:nonsense", "lang:xx", "person:1", "faq:no-such-entry", "faqok:x:maybe", ":", "",
]
FORGED_DESK_DATA = [
    f"case:claim:{HUGE}", f"case:resolve:{HUGE}", "case:claim:-1", "case:claim:x", "case:resolve:2", f"prop:approve:{HUGE}",
    "prop:approve:-5", "prop:accept:1", "case",
]


@pytest.fixture(params=["database_url", "postgres_url"], ids=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(request.param)


@pytest.fixture
async def any_bank(fake: FakeTelegram, url: str) -> AsyncIterator[BotHarness]:
    harness = await start_bank(fake, url, with_desk=True)
    yield harness
    await harness.stop()


async def test_forged_buttons_of_a_cardholder_get_a_specific_answer(any_bank: BotHarness) -> None:
    bank = any_bank
    cardholder = await signed_in(bank, "USD")
    await cardholder.send("/plans")
    await cardholder.press("Promise to pay")
    for data in FORGED_CARDHOLDER_DATA:
        before = len(cardholder.messages)
        query = bank.fake.user_presses(cardholder.user_id, cardholder.last.message_id, data, forged=True)
        await cardholder.wait_quiet()
        answer = bank.fake.callback_answer(query)
        assert answer is not None and answer.get("text") == "This button is no longer active.", (data, answer)
        shown = cardholder.messages[before:]
        assert shown and "Choose what you would like to do below." in shown[-1].text, (data, shown)
    no_apology(bank, cardholder.chat_id)
    assert await promises(bank) == []


async def test_forged_buttons_in_the_desk_get_a_specific_answer(any_bank: BotHarness) -> None:
    bank = any_bank
    cardholder = await signed_in(bank, "USD")
    await cardholder.send("/agent")
    async with bank.session_factory() as session:
        case = await session.scalar(select(Case))
    assert case is not None
    for data in FORGED_DESK_DATA:
        query = bank.fake.member_presses(DESK, AGENT, case.card_message_id, data, forged=True)
        await cardholder.wait_quiet()
        answer = bank.fake.callback_answer(query)
        assert answer is not None and answer.get("text") == "This button is no longer active.", (data, answer)
    async with bank.session_factory() as session:
        case = await session.scalar(select(Case))
    assert case is not None and case.status == "waiting"
    no_apology(bank, cardholder.chat_id, DESK)
