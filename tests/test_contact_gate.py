"""The contact gate: what the bank starts in a cardholder's chat waits for their hours and caps,
and never goes after /stop, to a flagged account, during a dispute or a kept hardship agreement.

Journeys run the real bot over HTTP against the fake Bot API on a real database, with the clock
fixed at chosen local moments; the caps and the many-at-once cases talk to the gate and the courier
directly on the same database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.clock import ManualClock
from bot.db.models import Account, AuditEvent, Case, ChatProfile, Contact, OutboxMessage, Relay
from bot.db.unit_of_work import unit_of_work
from bot.domain.policy import load_policy
from bot.services.contact import COLLECTION, ContactGate, Verdict
from bot.services.outbox import Outbox
from bot.settings import DEFAULT_POLICY_FILE, load_settings
from bot.telegram_fake import ChatClient, FakeTelegram
from tests.conftest import BOT_TOKEN, BotHarness, make_account

pytestmark = pytest.mark.database

DESK = -1001234567890
AGENT = 501
MOSCOW, LOS_ANGELES, SHANGHAI = ZoneInfo("Europe/Moscow"), ZoneInfo("America/Los_Angeles"), ZoneInfo("Asia/Shanghai")
PHONES = {"RU": "+79123456789", "US": "+14155550132", "CN": "+8613800138000"}
BIRTH = {"en": "1985-03-07", "ru": "07.03.1985", "zh-hans": "1985年3月7日"}
POLICY = load_policy(DEFAULT_POLICY_FILE)
QUIET = 31
"""Minutes after which the cardholder has gone quiet: the pack's reply window is 30."""
NOTICE = {
    "en": "To stop messages from the bank in this chat, send /stop.",
    "zh-hans": "如不想再在本聊天中收到银行的消息，请发送 /stop。",
    "ru": "Чтобы банк больше не писал вам в этом чате, отправьте /stop.",
}


def local(text: str, zone: ZoneInfo) -> datetime:
    """A moment given as the cardholder's wall clock reads it, in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).astimezone(timezone.utc)


def accounts() -> list[Account]:
    return [
        make_account(account_id="RU-1", phone=PHONES["RU"], currency="RUB", locale="ru", card_last4="7788", timezone="Europe/Moscow"),
        make_account(
            account_id="US-1", phone=PHONES["US"], currency="USD", locale="en", card_last4="1111", timezone="America/Los_Angeles",
            statement_balance=Decimal("5200.00"), overdue_amount=Decimal("1234.00"), minimum_due=Decimal("260.00"),
        ),
        make_account(account_id="CN-1", phone=PHONES["CN"]),
    ]


Bank = Callable[..., Awaitable[BotHarness]]


@pytest.fixture
async def bank_at(fake: FakeTelegram, database_url: str) -> AsyncIterator[Bank]:
    """Starts the bot with its clock at a chosen moment (a desk unless `desk=False`); the courier
    runs only when a test calls it."""
    started: list[BotHarness] = []

    async def start(moment: datetime, desk: bool = True) -> BotHarness:
        options = {"agent_chat_id": DESK, "agent_ids": str(AGENT)} if desk else {}
        settings = load_settings(
            _env_file=None, bot_token=BOT_TOKEN, telegram_api_url=fake.base_url, database_url=database_url,
            outbox_every_seconds=3600, **options,
        )
        if desk:
            fake.add_forum_group(DESK)
            fake.add_user(AGENT, first_name="Agent")
        harness = BotHarness(fake, settings, ManualClock(start=moment))
        await harness.start()
        await harness.add_accounts(*accounts())
        started.append(harness)
        return harness

    yield start
    for harness in started:
        await harness.stop()


def move_to(bank: BotHarness, moment: datetime) -> None:
    bank.clock.advance(seconds=(moment - bank.clock.now()).total_seconds())


async def signed_in(bank: BotHarness, pack: str, language: str) -> ChatClient:
    cardholder = bank.cardholder(language_code=language, phone=PHONES[pack])
    await cardholder.send("/start")
    await cardholder.share_contact(PHONES[pack])
    await cardholder.send(BIRTH[language])
    return cardholder


async def case_of(bank: BotHarness, cardholder: ChatClient) -> Case:
    async with bank.session_factory() as session:
        case = await session.scalar(select(Case).where(Case.chat_id == cardholder.chat_id).order_by(Case.id.desc()))
    assert case is not None
    return case


async def claimed(bank: BotHarness, pack: str, language: str) -> tuple[ChatClient, ChatClient, Case]:
    cardholder = await signed_in(bank, pack, language)
    await cardholder.send("/agent")
    case = await case_of(bank, cardholder)
    desk_agent = ChatClient(bank.fake, AGENT, chat_id=DESK, message_thread_id=case.topic_id, handled=bank.handled)
    await desk_agent.press_on(case.card_message_id, "Claim", expect_reply=False)
    return cardholder, desk_agent, await case_of(bank, cardholder)


def texts(client: ChatClient) -> list[str]:
    return [message.text for message in client.messages]


def plain(text: str) -> str:
    """Babel puts a narrow no-break space before AM and PM."""
    return text.replace("\u202f", " ")


async def run_courier(bank: BotHarness) -> int:
    assert bank.app is not None
    return await bank.app.courier.run_once()


# -- contact hours, in the cardholder's time zone --------------------------------------------------


@pytest.mark.parametrize(
    ("evening", "delivered_at", "when_said"),
    [
        ("2026-12-02 22:50", "2026-12-03 08:00", "Thu, Dec 3, 8:00 AM their time (1:00 PM yours)"),
        ("2026-12-05 22:50", "2026-12-06 09:00", "Sun, Dec 6, 9:00 AM their time (2:00 PM yours)"),
    ],
    ids=["working-day", "sunday"],
)
async def test_an_agents_message_at_2330_moscow_time_waits_for_the_morning(
    bank_at: Bank, evening: str, delivered_at: str, when_said: str
) -> None:
    bank = await bank_at(local(evening, MOSCOW))
    cardholder, desk_agent, case = await claimed(bank, "RU", "ru")
    assert "Сотрудник банка подключился" in texts(cardholder)[-1] or len(texts(cardholder)) > 3, "a reply goes at once"
    before = len(cardholder.messages)

    bank.clock.advance(minutes=40)  # 23:30 in Moscow, the cardholder quiet since 22:50
    told = await desk_agent.send("Добрый вечер! Готовы обсудить график?", expect_reply=False)
    assert plain(told[-1].text) == f"Held: the cardholder's local time is 11:30 PM; it will be delivered at {when_said}."
    assert len(cardholder.messages) == before

    assert await run_courier(bank) == 0
    move_to(bank, local(delivered_at, MOSCOW) - timedelta(minutes=1))
    assert await run_courier(bank) == 0, "not a minute early"
    move_to(bank, local(delivered_at, MOSCOW))
    assert await run_courier(bank) == 1
    assert texts(cardholder)[-1] == "Добрый вечер! Готовы обсудить график?"
    assert await run_courier(bank) == 0, "delivered once"
    async with bank.session_factory() as session:
        contact = await session.scalar(select(Contact))
        relay = await session.scalar(select(Relay).where(Relay.direction == "to_cardholder"))
    assert contact is not None and contact.status == "sent" and contact.due_at == local(delivered_at, MOSCOW)
    assert relay is not None and relay.status == "sent" and relay.contact_id == contact.id


async def test_a_los_angeles_cardholder_hears_nothing_from_the_bank_after_9_pm(bank_at: Bank) -> None:
    bank = await bank_at(local("2026-12-02 20:25", LOS_ANGELES))
    cardholder, desk_agent, case = await claimed(bank, "US", "en")
    bank.clock.advance(minutes=QUIET)  # 20:56: still inside the hours, so it goes, with the opt-out notice
    await desk_agent.send("Hi, following up on your plan.", expect_reply=False)
    assert texts(cardholder)[-1] == f"Hi, following up on your plan.\n\n{NOTICE['en']}"

    bank.clock.advance(minutes=5)  # 21:01
    told = await desk_agent.send("One more thing.", expect_reply=False)
    assert plain(told[-1].text) == (
        "Held: the cardholder's local time is 9:01 PM; it will be delivered at Thu, Dec 3, 8:00 AM their time "
        "(Fri, Dec 4, 12:00 AM yours)."
    )
    move_to(bank, local("2026-12-03 08:00", LOS_ANGELES))
    assert await run_courier(bank) == 1
    assert texts(cardholder)[-1] == f"One more thing.\n\n{NOTICE['en']}"


@pytest.mark.parametrize(
    ("pack", "moment", "zone", "goes_at"),
    [
        ("CN", "2026-12-02 22:00", SHANGHAI, "2026-12-03 08:00"),
        ("CN", "2026-12-05 07:59", SHANGHAI, "2026-12-05 08:00"),
        ("US", "2026-12-02 21:00", LOS_ANGELES, "2026-12-03 08:00"),
        ("US", "2026-12-02 20:59", LOS_ANGELES, "2026-12-02 20:59"),
        ("RU", "2026-12-04 23:30", MOSCOW, "2026-12-05 09:00"),
        ("RU", "2026-12-05 20:00", MOSCOW, "2026-12-06 09:00"),
        ("RU", "2026-12-31 23:30", MOSCOW, "2027-01-01 09:00"),
    ],
)
async def test_each_packs_hours_in_the_accounts_time_zone(
    session_factory: object, pack: str, moment: str, zone: ZoneInfo, goes_at: str
) -> None:
    gate_session, account = await quiet_account(session_factory, pack, zone)
    async with gate_session() as session:
        gate = ContactGate(session, POLICY, ManualClock(start=local(moment, zone)))
        decision = await gate.decide(account.id, account.id)
    assert decision.at == local(goes_at, zone)
    assert decision.verdict is (Verdict.NOW if goes_at == moment else Verdict.HOLD)


async def quiet_account(session_factory: object, pack: str, zone: ZoneInfo, account_id: str = "") -> tuple[object, Account]:
    """An account of the pack in `zone`, and its chat (chat id = account id), silent for a week."""
    currency = {"CN": "CNY", "US": "USD", "RU": "RUB"}[pack]
    account = make_account(account_id=account_id or f"{pack}-{zone.key}", currency=currency, timezone=zone.key)
    async with session_factory() as session, session.begin():  # type: ignore[operator]
        session.add(account)
        await session.flush()
        session.add(ChatProfile(chat_id=account.id, user_id=account.id, account_pk=account.id, last_seen_at=datetime(2020, 1, 1, tzinfo=timezone.utc)))
    return session_factory, account


# -- caps (RU: 2 a day, 4 a week, 16 a month) ------------------------------------------------------


async def sent_at(session_factory: object, account: Account, *moments: datetime) -> None:
    async with session_factory() as session, session.begin():  # type: ignore[operator]
        for moment in moments:
            session.add(Contact(
                chat_id=account.id, account_pk=account.id, purpose=COLLECTION, status="sent", reason="allowed",
                due_at=moment, created_at=moment,
            ))


async def decide_and_record(session_factory: object, account: Account, moment: datetime) -> tuple[Verdict, str, datetime]:
    async with session_factory() as session, session.begin():  # type: ignore[operator]
        gate = ContactGate(session, POLICY, ManualClock(start=moment))
        decision = await gate.decide(account.id, account.id)
        await gate.record(decision, account.id, account.id, COLLECTION)
    return decision.verdict, decision.reason, decision.at


async def test_ru_caps_hold_the_third_of_a_day_and_the_fifth_of_a_week(session_factory: object) -> None:
    _, account = await quiet_account(session_factory, "RU", MOSCOW)
    monday = local("2026-12-07 10:00", MOSCOW)
    results = [await decide_and_record(session_factory, account, monday) for _ in range(5)]
    assert results == [
        (Verdict.NOW, "allowed", monday),
        (Verdict.NOW, "allowed", monday),
        (Verdict.HOLD, "day", local("2026-12-08 08:00", MOSCOW)),
        (Verdict.HOLD, "day", local("2026-12-08 08:00", MOSCOW)),
        (Verdict.HOLD, "week", local("2026-12-14 08:00", MOSCOW)),
    ]


async def test_ru_caps_a_seventeenth_message_of_a_month_waits_for_the_next(session_factory: object) -> None:
    _, account = await quiet_account(session_factory, "RU", MOSCOW)
    days = [local(f"2026-12-{day:02d} 12:00", MOSCOW) for day in range(1, 17)]
    await sent_at(session_factory, account, *days)
    assert await decide_and_record(session_factory, account, local("2026-12-21 12:00", MOSCOW)) == (
        Verdict.HOLD, "month", local("2027-01-01 09:00", MOSCOW)  # a public holiday: the day-off hours
    )


async def test_ru_caps_count_the_cardholders_local_day(session_factory: object) -> None:
    _, account = await quiet_account(session_factory, "RU", MOSCOW)
    # 00:30 on Monday in Moscow is Sunday in UTC, and counts for Monday; 23:30 on Sunday does not.
    await sent_at(session_factory, account, local("2026-12-07 00:30", MOSCOW), local("2026-12-06 23:30", MOSCOW))
    assert (await decide_and_record(session_factory, account, local("2026-12-07 21:00", MOSCOW)))[0] is Verdict.NOW
    assert await decide_and_record(session_factory, account, local("2026-12-07 21:30", MOSCOW)) == (
        Verdict.HOLD, "day", local("2026-12-08 08:00", MOSCOW)
    )


async def test_cn_and_us_have_no_caps(session_factory: object) -> None:
    for pack, zone in (("CN", SHANGHAI), ("US", LOS_ANGELES)):
        _, account = await quiet_account(session_factory, pack, zone)
        noon = local("2026-12-07 12:00", zone)
        assert {(await decide_and_record(session_factory, account, noon))[0] for _ in range(20)} == {Verdict.NOW}


async def test_a_third_agent_message_of_a_moscow_day_is_held_and_the_agent_told_why(bank_at: Bank) -> None:
    bank = await bank_at(local("2026-12-07 09:00", MOSCOW))
    cardholder, desk_agent, case = await claimed(bank, "RU", "ru")
    bank.clock.advance(minutes=QUIET)
    for number in (1, 2):
        assert await desk_agent.send(f"Сообщение {number}", expect_reply=False) == []
    told = await desk_agent.send("Сообщение 3", expect_reply=False)
    assert plain(told[-1].text) == (
        "Held: the cardholder has had 2 messages from the bank today, the most allowed; it will be delivered at "
        "Tue, Dec 8, 8:00 AM their time (Tue, Dec 8, 1:00 PM yours)."
    )
    assert texts(cardholder)[-2:] == ["Сообщение 1", "Сообщение 2"]
    move_to(bank, local("2026-12-08 08:00", MOSCOW))
    assert await run_courier(bank) == 1
    assert texts(cardholder)[-1] == "Сообщение 3"


# -- opt-out -----------------------------------------------------------------------------------------


async def test_after_stop_nothing_the_bank_starts_arrives_until_the_cardholder_writes_again(bank_at: Bank) -> None:
    bank = await bank_at(local("2026-12-07 12:00", SHANGHAI))
    cardholder, desk_agent, case = await claimed(bank, "CN", "zh-hans")
    stopped = await cardholder.send("/stop")
    assert stopped, "/stop is answered even while an agent has the case"
    before = len(cardholder.messages)

    told = await desk_agent.send("您好，还在吗？", expect_reply=False)
    assert "Not sent: the cardholder asked for no messages (/stop)" in told[-1].text, "not even just after /stop"
    bank.clock.advance(minutes=QUIET)
    told = await desk_agent.send("您好，还在吗？", expect_reply=False)
    assert "Not sent: the cardholder asked for no messages (/stop)" in told[-1].text
    assert len(cardholder.messages) == before

    await cardholder.send("我在", expect_reply=False)  # writing again ends the opt-out
    async with bank.session_factory() as session:
        profile = await session.get(ChatProfile, cardholder.chat_id)
    assert profile is not None and profile.opted_out_at is None
    bank.clock.advance(minutes=QUIET)
    assert await desk_agent.send("好的，我们来谈谈还款计划。", expect_reply=False) == []
    assert texts(cardholder)[-1] == "好的，我们来谈谈还款计划。"


async def test_a_held_message_is_withheld_if_the_cardholder_opts_out_meanwhile(bank_at: Bank) -> None:
    bank = await bank_at(local("2026-12-07 21:50", SHANGHAI))
    cardholder, desk_agent, case = await claimed(bank, "CN", "zh-hans")
    bank.clock.advance(minutes=QUIET)  # 22:21
    told = await desk_agent.send("明天再联系您。", expect_reply=False)
    assert told[-1].text.startswith("Held:")
    await cardholder.send("/stop")
    move_to(bank, local("2026-12-08 08:00", SHANGHAI))
    before = len(cardholder.messages)
    assert await run_courier(bank) == 1
    assert len(cardholder.messages) == before
    topic = [m.text for m in bank.fake.chat_history(DESK) if m.message_thread_id == case.topic_id and m.text]
    assert any(text.startswith("Not sent: the cardholder asked for no messages") for text in topic)
    async with bank.session_factory() as session:
        assert (await session.scalar(select(Relay.status).where(Relay.direction == "to_cardholder"))) == "withheld"
        assert (await session.scalar(select(Contact.status))) == "withheld"


@pytest.mark.parametrize("language", ["en", "zh-hans", "ru"])
async def test_us_bank_started_messages_end_with_how_to_opt_out(bank_at: Bank, language: str) -> None:
    bank = await bank_at(local("2026-12-07 11:00", LOS_ANGELES))
    cardholder, desk_agent, case = await claimed(bank, "US", language)
    await desk_agent.send("Thanks for writing.", expect_reply=False)
    assert texts(cardholder)[-1] == "Thanks for writing.", "a reply is not bank-started: no notice"

    bank.clock.advance(minutes=QUIET)
    await desk_agent.send("Reminder: your first payment (< $300 & fees) is due Friday.", expect_reply=False)
    assert texts(cardholder)[-1] == f"Reminder: your first payment (< $300 & fees) is due Friday.\n\n{NOTICE[language]}"
    await desk_agent.send_photo(caption="Your statement", expect_reply=False)
    assert texts(cardholder)[-1] == f"Your statement\n\n{NOTICE[language]}"
    await desk_agent.send("/resolve done", expect_reply=False)
    assert texts(cardholder)[-1].endswith(NOTICE[language]), "the rating prompt is bank-started too"


async def test_ru_and_cn_messages_carry_no_opt_out_notice(bank_at: Bank) -> None:
    bank = await bank_at(local("2026-12-07 12:00", SHANGHAI))
    cardholder, desk_agent, case = await claimed(bank, "CN", "zh-hans")
    bank.clock.advance(minutes=QUIET)
    await desk_agent.send("您好", expect_reply=False)
    assert texts(cardholder)[-1] == "您好"


# -- special situations --------------------------------------------------------------------------------


async def test_a_flagged_account_gets_nothing_the_bank_starts_and_its_messages_go_to_a_person(bank_at: Bank) -> None:
    bank = await bank_at(local("2026-12-07 12:00", SHANGHAI))
    cardholder, desk_agent, case = await claimed(bank, "CN", "zh-hans")
    desk = ChatClient(bank.fake, AGENT, chat_id=DESK, handled=bank.handled)
    asked = await desk.send(f"/flag {case.id}", expect_reply=False)
    assert asked[-1].labels == ["deceased", "bankruptcy", "represented by a lawyer", "asked the bank to cease communication"]
    told = await desk.press_on(asked[-1], "represented by a lawyer", expect_reply=False)
    assert any("flagged: represented by a lawyer" in message.text for message in told)
    topic = [m.text for m in bank.fake.chat_history(DESK) if m.message_thread_id == case.topic_id and m.text]
    assert any("Account CN-1 flagged: represented by a lawyer" in text for text in topic), "the case's topic hears of it"

    bank.clock.advance(minutes=QUIET)
    before = len(cardholder.messages)
    told = await desk_agent.send("我们想和您谈谈。", expect_reply=False)
    assert told[-1].text == "Not sent: the account is flagged (represented by a lawyer), so the bank starts no messages to it."
    await desk_agent.send("/resolve handed to legal", expect_reply=False)
    assert len(cardholder.messages) == before, "no rating prompt either"

    await cardholder.send("/balance")  # signed out meanwhile: proving who they are again is the bot's own
    await cardholder.share_contact(PHONES["CN"])
    await cardholder.send(BIRTH["zh-hans"])
    answer = await cardholder.send("/balance")
    assert "排" in answer[-1].text and "逾期" not in answer[-1].text, "handed to a person, not the balance"
    new_case = await case_of(bank, cardholder)
    assert new_case.id != case.id and new_case.reason == "flagged"
    card = next(m.text for m in bank.fake.chat_history(DESK) if m.message_thread_id == new_case.topic_id and m.text)
    assert "FLAGGED: represented by a lawyer" in card
    assert "/balance" in [m.text for m in bank.fake.chat_history(DESK) if m.message_thread_id == new_case.topic_id]

    async with bank.session_factory() as session:
        account = await session.scalar(select(Account).where(Account.account_id == "CN-1"))
        audited = await session.scalar(select(AuditEvent).where(AuditEvent.kind == "account_flag"))
    assert account is not None and account.contact_flag == "lawyer"
    assert audited is not None and audited.account_pk == account.id and "lawyer" in audited.payload

    await desk.send(f"/unflag {new_case.id}", expect_reply=False)
    async with bank.session_factory() as session:
        account = await session.scalar(select(Account).where(Account.account_id == "CN-1"))
        kinds = (await session.scalars(select(AuditEvent.kind).where(AuditEvent.kind.like("account_%")))).all()
    assert account is not None and account.contact_flag is None and kinds == ["account_flag", "account_unflag"]


async def test_flags_by_command_and_their_mistakes(bank_at: Bank) -> None:
    bank = await bank_at(local("2026-12-07 12:00", SHANGHAI))
    cardholder, desk_agent, case = await claimed(bank, "CN", "zh-hans")
    told = await desk_agent.send("/flag deceased", expect_reply=False)
    assert "Account CN-1 flagged: deceased" in told[-1].text, "in the case's topic the case is implied"
    told = await desk_agent.send("/flag sleeping", expect_reply=False)
    assert told[-1].text.startswith("Usage: /flag CASE")
    told = await desk_agent.send("/unflag", expect_reply=False)
    assert "the flag (deceased) is removed" in told[-1].text
    told = await desk_agent.send("/unflag", expect_reply=False)
    assert told[-1].text == "Account CN-1 has no flag."


async def test_without_a_desk_a_flagged_cardholder_gets_the_banks_contact(bank_at: Bank) -> None:
    bank = await bank_at(local("2026-12-07 12:00", SHANGHAI), desk=False)
    cardholder = await signed_in(bank, "CN", "en")
    async with bank.session_factory() as session, session.begin():
        account = await session.scalar(select(Account).where(Account.account_id == "CN-1"))
        assert account is not None
        account.contact_flag = "cease"
    answer = await cardholder.send("/balance")
    assert "You can talk to a person at" in answer[-1].text


# -- disputes and hardship -------------------------------------------------------------------------------


async def test_an_open_dispute_pauses_collection_messages_and_the_screens_say_under_review(bank_at: Bank) -> None:
    bank = await bank_at(local("2026-12-07 12:00", SHANGHAI))
    cardholder = await signed_in(bank, "CN", "en")
    await cardholder.send("this is not my purchase")
    balance = await cardholder.send("/balance")
    assert balance[-1].text.startswith("⚖️ Your dispute is open, so the amount is under review.")
    plans = await cardholder.send("/plans")
    assert plans[-1].text.startswith("⚖️ Your dispute is open")

    case = await case_of(bank, cardholder)
    assert case.reason == "dispute"
    desk_agent = ChatClient(bank.fake, AGENT, chat_id=DESK, message_thread_id=case.topic_id, handled=bank.handled)
    await desk_agent.press_on(case.card_message_id, "Claim", expect_reply=False)
    bank.clock.advance(minutes=QUIET)
    before = len(cardholder.messages)
    told = await desk_agent.send("/offer 36", expect_reply=False)
    assert told[-1].text.startswith("Not sent: a dispute is open on this account")
    assert len(cardholder.messages) == before
    await desk_agent.send("/resolve checked: the purchase was genuine", expect_reply=False)
    assert "How would you rate" in texts(cardholder)[-1], "the rating prompt is not a collection message"
    balance = await cardholder.send("/balance")
    assert not balance[-1].text.startswith("⚖️"), "the case is resolved: the dispute is over"


async def test_dispute_words_in_an_open_case_make_it_a_dispute_case(bank_at: Bank) -> None:
    bank = await bank_at(local("2026-12-07 12:00", SHANGHAI))
    cardholder, desk_agent, case = await claimed(bank, "CN", "en")
    await cardholder.send("I did not make this purchase", expect_reply=False)
    assert (await case_of(bank, cardholder)).reason == "dispute"
    bank.clock.advance(minutes=QUIET)
    told = await desk_agent.send("Can you pay today?", expect_reply=False)
    assert told[-1].text.startswith("Not sent: a dispute is open")


async def test_a_kept_hardship_agreement_stops_collection_messages(bank_at: Bank) -> None:
    bank = await bank_at(local("2026-12-07 12:00", SHANGHAI))
    cardholder, desk_agent, case = await claimed(bank, "CN", "en")
    await desk_agent.send("/offer 36", expect_reply=False)
    await cardholder.press_on(cardholder.messages[-1], "Accept")
    bank.clock.advance(minutes=QUIET)
    told = await desk_agent.send("Just checking in about your payments.", expect_reply=False)
    assert told[-1].text == "Not sent: the cardholder keeps a hardship agreement, under which the bank starts no collection messages."
    before = len(cardholder.messages)
    await desk_agent.send("/resolve plan agreed", expect_reply=False)
    assert len(cardholder.messages) == before + 1 and "How would you rate" in texts(cardholder)[-1]


# -- many at once ---------------------------------------------------------------------------------------------


async def test_a_hundred_and_twenty_held_messages_go_out_once_each_in_the_morning(bank_at: Bank) -> None:
    bank = await bank_at(local("2026-12-07 23:30", MOSCOW), desk=False)
    count, first_user = 120, 900_000
    async with bank.session_factory() as session, session.begin():
        for index in range(count):
            account = make_account(account_id=f"MANY-{index}", currency="RUB", locale="ru", timezone="Europe/Moscow", phone=f"+7912{index:07d}")
            session.add(account)
            await session.flush()
            session.add(ChatProfile(chat_id=first_user + index, user_id=first_user + index, account_pk=account.id, last_seen_at=bank.clock.now() - timedelta(hours=2)))
            bank.fake.add_user(first_user + index)

    async def hold(index: int) -> Verdict:
        async with unit_of_work(bank.session_factory) as unit:
            gate, outbox = ContactGate(unit.session, POLICY, bank.clock), Outbox(unit.session, bank.clock)
            chat_id = first_user + index
            account_pk = await unit.session.scalar(select(ChatProfile.account_pk).where(ChatProfile.chat_id == chat_id))
            decision = await gate.decide(chat_id, account_pk)
            contact = await gate.record(decision, chat_id, account_pk, COLLECTION)
            assert contact is not None
            await outbox.message(f"contact:{contact.id}", chat_id, f"Доброе утро, {index}", contact_id=contact.id, not_before=decision.at)
            return decision.verdict

    assert set(await asyncio.gather(*(hold(index) for index in range(count)))) == {Verdict.HOLD}
    assert await run_courier(bank) == 0, "the night: nothing goes"
    move_to(bank, local("2026-12-08 08:00", MOSCOW))
    assert await run_courier(bank) == 100, "one round takes a hundred"
    assert await run_courier(bank) == 20
    assert await run_courier(bank) == 0
    for index in range(count):
        assert [m.text for m in bank.fake.bot_messages(first_user + index)] == [f"Доброе утро, {index}"]
    async with bank.session_factory() as session:
        assert (await session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None)))) == 0
        assert set((await session.scalars(select(Contact.status))).all()) == {"sent"}


async def test_twenty_messages_decided_at_once_for_one_account_keep_the_caps(session_factory: object) -> None:
    _, account = await quiet_account(session_factory, "RU", MOSCOW)
    monday = local("2026-12-07 10:00", MOSCOW)
    decided = await asyncio.gather(*(decide_and_record(session_factory, account, monday) for _ in range(20)))
    days = [at.astimezone(MOSCOW).strftime("%m-%d %H:%M") for at in sorted(at for _verdict, _reason, at in decided)]
    assert days == [
        "12-07 10:00", "12-07 10:00", "12-08 08:00", "12-08 08:00", "12-14 08:00", "12-14 08:00", "12-15 08:00",
        "12-15 08:00", "12-21 08:00", "12-21 08:00", "12-22 08:00", "12-22 08:00", "12-28 08:00", "12-28 08:00",
        "12-29 08:00", "12-29 08:00", "01-04 09:00", "01-04 09:00", "01-05 09:00", "01-05 09:00",
    ], "two a day, four a week, sixteen a month; January's first days are public holidays"


@pytest.mark.parametrize(
    ("language", "question", "example"),
    [
        ("en", "I don't recognise this transaction", "I dispute the payment of 20 May, it is not my purchase"),
        ("ru", "Я не узнаю эту операцию", "Хочу оспорить операцию от 20 мая — это не моя покупка"),
        ("zh-hans", "这笔交易我不认识", "我对5月20日那笔交易有异议，不是我刷的"),
    ],
)
async def test_the_dispute_answer_says_what_opens_a_dispute_and_it_does(bank_at: Bank, language: str, question: str, example: str) -> None:
    bank = await bank_at(local("2026-12-07 12:00", SHANGHAI))
    cardholder = await signed_in(bank, "CN", language)
    answer = await cardholder.send(question)
    assert example in answer[-1].text
    await cardholder.send(example)
    assert (await case_of(bank, cardholder)).reason == "dispute"
    balance = await cardholder.send("/balance")
    assert balance[-1].text.startswith("⚖️")
