"""Handoff over HTTP: cases in forum topics, claims, two-way relays, offers, resolution."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.clock import ManualClock
from bot.db.models import Account, Arrangement, AuditEvent, Case, CaseEvent, Offer, OutboxMessage
from bot.settings import load_settings
from bot.telegram_fake import ChatClient, FakeTelegram
from tests.conftest import BOT_TOKEN, BotHarness, make_account, run_bot_command

pytestmark = pytest.mark.database

DESK = -1001234567890
AGENTS = (501, 502)
OUTSIDER = 777


@pytest.fixture
async def bank(fake: FakeTelegram, database_url: str) -> BotHarness:
    settings = load_settings(
        _env_file=None,
        bot_token=BOT_TOKEN,
        telegram_api_url=fake.base_url,
        database_url=database_url,
        agent_chat_id=DESK,
        agent_ids=",".join(str(agent) for agent in AGENTS),
    )
    fake.add_forum_group(DESK)
    for user_id in (*AGENTS, OUTSIDER):
        fake.add_user(user_id, first_name=f"Agent{user_id}")
    harness = BotHarness(fake, settings, ManualClock())
    await harness.start()
    await harness.add_accounts(
        make_account(),
        make_account(account_id="RU-1", phone="+79123456789", currency="RUB", locale="ru", card_last4="7788"),
        make_account(account_id="US-1", phone="+14155550132", currency="USD", locale="en", card_last4="1111",
                     statement_balance=Decimal("5200.00"), overdue_amount=Decimal("1234.00"), minimum_due=Decimal("260.00")),
    )
    yield harness
    await harness.stop()


PHONES = {"en": "+14155550132", "ru": "+79123456789", "zh-hans": "+8613800138000"}
BIRTH = {"en": "1985-03-07", "ru": "07.03.1985", "zh-hans": "1985年3月7日"}


async def signed_in(bank: BotHarness, language: str = "en") -> ChatClient:
    cardholder = bank.cardholder(language_code=language, phone=PHONES[language])
    await cardholder.send("/start")
    await cardholder.share_contact(PHONES[language])
    await cardholder.send(BIRTH[language])
    return cardholder


def agent(bank: BotHarness, case: Case, user_id: int = AGENTS[0]) -> ChatClient:
    return ChatClient(bank.fake, user_id, chat_id=DESK, message_thread_id=case.topic_id, handled=bank.handled)


def topic_texts(bank: BotHarness, case: Case) -> list[str]:
    return [m.text for m in bank.fake.chat_history(DESK) if m.message_thread_id == case.topic_id and m.text]


async def only_case(bank: BotHarness) -> Case:
    async with bank.session_factory() as session:
        cases = (await session.scalars(select(Case))).all()
    assert len(cases) == 1
    return cases[0]


@pytest.mark.parametrize(
    ("language", "words", "reason"),
    [
        ("en", "I lost my job and can't pay this month", "hardship"),
        ("en", "this is not my purchase", "dispute"),
        ("ru", "Позовите оператора, пожалуйста", "person"),
        ("ru", "Я хочу подать жалобу", "complaint"),
        ("zh-hans", "这笔是盗刷的", "dispute"),
        ("zh-hans", "我要转人工", "person"),
        ("zh-hans", "我失业了，现在还不起", "hardship"),
        ("en", "stop harassing me", "anger"),
        ("ru", "Отстаньте от меня", "anger"),
    ],
)
async def test_trigger_words_open_a_case_with_a_card(bank: BotHarness, language: str, words: str, reason: str) -> None:
    cardholder = await signed_in(bank, language)
    told = await cardholder.send(words)
    case = await only_case(bank)

    assert case.reason == reason and case.verified
    topic = bank.fake.topics(DESK)[0]
    assert topic.name.startswith(f"#{case.id} · M2 · {reason}")
    card = topic_texts(bank, case)[0]
    assert "Verified cardholder of account" in card and "Stage M2, 45 days past due" in card
    assert PHONES[language] not in card and PHONES[language][-2:] in card
    assert words in "\n".join(topic_texts(bank, case)), "the words that triggered it are in the topic"
    assert "1" in told[-1].text and len(told) == 1


async def test_asking_twice_joins_the_open_case(bank: BotHarness) -> None:
    cardholder = await signed_in(bank)
    await cardholder.send("/agent")
    await cardholder.send("/plans")
    await cardholder.press("Talk to a person")
    case = await only_case(bank)
    assert "New request in this case: person." in topic_texts(bank, case)


async def test_a_locked_out_person_is_handed_over_unverified(bank: BotHarness) -> None:
    cardholder = bank.cardholder(phone=PHONES["en"])
    await cardholder.send("/start")
    await cardholder.share_contact(PHONES["en"])
    for wrong in ("1990-01-01", "1990-01-02", "1990-01-03"):
        await cardholder.send(wrong)
    case = await only_case(bank)
    card = topic_texts(bank, case)[0]
    assert not case.verified and case.reason == "lockout"
    assert "NOT VERIFIED" in card
    assert "US-1" not in card and "0132" not in card and "1990" not in card
    assert "not verified" in bank.fake.topics(DESK)[0].name


async def test_two_agents_claim_at_once_and_one_wins(bank: BotHarness) -> None:
    cardholder = await signed_in(bank)
    await cardholder.send("/agent")
    case = await only_case(bank)
    card_id = case.card_message_id
    data = f"case:claim:{case.id}"
    first = bank.fake.member_presses(DESK, AGENTS[0], card_id, data)
    second = bank.fake.member_presses(DESK, AGENTS[1], card_id, data)
    await cardholder.wait_quiet()

    case = await only_case(bank)
    assert case.status == "claimed" and case.agent_id in AGENTS
    loser = second if case.agent_id == AGENTS[0] else first
    assert f"Already taken by agent {case.agent_id}" in bank.fake.callback_answer(loser)["text"]
    assert "A person from the bank has joined this chat." in cardholder.messages[-1].text


async def claimed_case(bank: BotHarness, language: str = "en") -> tuple[ChatClient, ChatClient, Case]:
    cardholder = await signed_in(bank, language)
    await cardholder.send("/agent")
    case = await only_case(bank)
    desk_agent = agent(bank, case)
    await desk_agent.press_on(case.card_message_id, "Claim", expect_reply=False)
    return cardholder, desk_agent, await only_case(bank)


async def test_messages_go_both_ways_and_notes_stay_internal(bank: BotHarness) -> None:
    cardholder, desk_agent, case = await claimed_case(bank)

    silent = await cardholder.send("I paid yesterday, here is the receipt")
    await cardholder.send_photo(caption="receipt")
    await cardholder.send("/balance")
    assert silent == [], "while an agent owns the case the bot does not answer"
    topic = topic_texts(bank, case)
    assert "I paid yesterday, here is the receipt" in topic and "receipt" in topic and "/balance" in topic

    await desk_agent.send("Thank you, I can see the transfer.", expect_reply=False)
    await desk_agent.send_photo(caption="confirmation", expect_reply=False)
    await desk_agent.send("/note receipt looks genuine", expect_reply=False)
    received = [m.text for m in cardholder.messages]
    assert "Thank you, I can see the transfer." in received and "confirmation" in received
    assert not any("genuine" in text for text in received)

    async with bank.session_factory() as session:
        kinds = [event.kind for event in (await session.scalars(select(CaseEvent).order_by(CaseEvent.id))).all()]
        account = await session.scalar(select(Account).where(Account.account_id == "US-1"))
    assert kinds.count("relay") == 5 and "note" in kinds and "claim" in kinds
    assert account.payment_claimed_at is not None


async def test_offer_from_the_desk_is_accepted_with_written_terms(bank: BotHarness) -> None:
    cardholder, desk_agent, case = await claimed_case(bank)
    sent = await desk_agent.send("/offer 36", expect_reply=False)
    assert "Offer sent: 36 months" in sent[-1].text
    offer = cardholder.messages[-1]
    assert "A person from the bank offers you this plan" in offer.text and "36 months" in offer.text

    accepted = await cardholder.press_on(offer, "Accept")
    texts = [m.text for m in accepted]
    assert any("Hardship installment agreement" in text and "not to apply for new credit cards" in text for text in texts)
    async with bank.session_factory() as session:
        arrangement = await session.scalar(select(Arrangement))
    # A US account's 36 months amortize at the US pack's 7.90 %: $5,200.00 is 162.7093... a month
    # exactly, so 35 payments of 162.71 and a last of 162.65, 5,857.50 in all; a payment 60 days
    # late (the US pack's hardship terms) ends the agreement.
    assert arrangement is not None and arrangement.agreement
    assert "35 monthly payments of $162.71 and a last payment of $162.65" in arrangement.agreement
    assert "$5,857.50 in all" in arrangement.agreement and "more than 60 days late" in arrangement.agreement


async def test_what_the_desk_sends_a_cardholder_is_filed_under_their_account(bank: BotHarness) -> None:
    """An agent's update has no account of its own: the case's is used, so the records go with the
    account's when its retention ends (`python -m bot purge`)."""
    cardholder, desk_agent, case = await claimed_case(bank)
    await desk_agent.send("Thank you, I can see the transfer.", expect_reply=False)
    await desk_agent.send("/offer 36", expect_reply=False)
    await cardholder.press_on(cardholder.messages[-1], "Accept")
    await desk_agent.send("/resolve agreed a plan", expect_reply=False)

    async with bank.session_factory() as session:
        sent = (await session.execute(
            select(AuditEvent.kind, AuditEvent.account_pk)
            .where(AuditEvent.chat_id == cardholder.chat_id, AuditEvent.direction == "out", AuditEvent.at >= case.created_at)
            .order_by(AuditEvent.id)
        )).all()
        outbox = (await session.scalars(select(OutboxMessage.account_pk))).all()
    assert {"copyMessage", "sendMessage"} <= {kind for kind, _ in sent}, "the relay, the offer, the rating prompt"
    assert {account for _, account in sent} == {case.account_pk} and case.account_pk is not None
    assert outbox and set(outbox) == {case.account_pk}, "the plan's confirmations too"


async def test_outsiders_get_nothing_from_desk_buttons_or_commands(bank: BotHarness) -> None:
    cardholder = await signed_in(bank)
    await cardholder.send("/agent")
    case = await only_case(bank)
    outsider = agent(bank, case, OUTSIDER)
    await outsider.press_on(case.card_message_id, "Claim", expect_reply=False)
    await outsider.send("/offer 12", expect_reply=False)
    await outsider.send("/queue", expect_reply=False)
    case = await only_case(bank)
    assert case.status == "waiting"
    assert all(m.message_id <= case.card_message_id for m in bank.fake.bot_messages(DESK))
    assert not bank.fake.unanswered_callbacks()


async def test_resolve_returns_the_cardholder_and_asks_for_a_rating(bank: BotHarness, tmp_path: Path) -> None:
    cardholder, desk_agent, case = await claimed_case(bank)
    await desk_agent.send("/resolve agreed to pay on Friday", expect_reply=False)
    assert bank.fake.topics(DESK)[0].closed
    asked = cardholder.messages[-1]
    assert "How would you rate" in asked.text and len(asked.labels) == 5
    await cardholder.press_on(asked, "⭐⭐⭐⭐")
    case = await only_case(bank)
    assert case.status == "resolved" and case.rating == 4 and case.outcome == "agreed to pay on Friday"
    menu = await cardholder.send("/balance")
    assert "Overdue amount" in menu[-1].text, "the bot answers again"


async def test_relay_to_a_cardholder_who_blocked_the_bot(bank: BotHarness) -> None:
    cardholder, desk_agent, case = await claimed_case(bank)
    bank.fake.block(cardholder.user_id)
    answer = await desk_agent.send("Are you there?", expect_reply=False)
    assert "the cardholder has blocked the bot" in answer[-1].text


async def test_a_case_survives_a_restart(bank: BotHarness) -> None:
    cardholder, desk_agent, case = await claimed_case(bank)
    await bank.restart()
    await cardholder.send("still there?")
    assert "still there?" in topic_texts(bank, case)
    await desk_agent.send("Yes, I am here.", expect_reply=False)
    assert cardholder.messages[-1].text == "Yes, I am here."


async def test_request_outside_policy_goes_to_an_agent_for_approval(bank: BotHarness) -> None:
    cardholder = await signed_in(bank, "en")
    await cardholder.send("/plans")
    await cardholder.press("💬")
    answer = await cardholder.send("170")
    assert any("only a person at the bank can offer it" in m.text for m in answer)
    case = await only_case(bank)
    desk_agent = agent(bank, case)
    await desk_agent.press_on(case.card_message_id, "Claim", expect_reply=False)
    proposal = next(m for m in bank.fake.bot_messages(DESK) if "Proposal:" in m.text)
    await desk_agent.press_on(proposal, "Approve", expect_reply=False)
    offer = cardholder.messages[-1]
    assert "offers you this plan" in offer.text
    accepted = await cardholder.press_on(offer, "Accept")
    assert any("arrangement is recorded" in m.text for m in accepted)


async def test_queue_and_reannouncement(bank: BotHarness) -> None:
    first = await signed_in(bank, "en")
    second = await signed_in(bank, "ru")
    await first.send("/agent")
    told = await second.send("/agent")
    assert "2" in told[-1].text
    async with bank.session_factory() as session:
        case = await session.scalar(select(Case).order_by(Case.id))
    desk_agent = agent(bank, case)
    listed = await desk_agent.send("/queue", expect_reply=False)
    assert "#1 person" in listed[-1].text and "#2 person" in listed[-1].text

    assert bank.app is not None and bank.app.desk is not None
    assert await bank.app.desk.announce_waiting(bank.session_factory, bank.app.policy, bank.clock) == 0
    bank.clock.advance(minutes=16)
    assert await bank.app.desk.announce_waiting(bank.session_factory, bank.app.policy, bank.clock) == 2
    assert any("is still waiting for an agent" in m.text for m in bank.fake.bot_messages(DESK))


async def test_export_case_prints_the_transcript(bank: BotHarness, database_url: str) -> None:
    cardholder, desk_agent, case = await claimed_case(bank)
    await cardholder.send("hello")
    await desk_agent.send("/note checked", expect_reply=False)
    text = await run_bot_command(database_url, "export-case", str(case.id))
    assert f"case #{case.id}: person, claimed" in text
    assert "cardholder relay: hello" in text and "note: checked" in text


async def test_a_promise_later_than_the_policy_allows_needs_an_agent(bank: BotHarness) -> None:
    cardholder = await signed_in(bank, "en")
    await cardholder.send("/plans")
    await cardholder.press("Promise to pay")
    later = (bank.clock.now().date() + timedelta(days=45)).isoformat()
    asked = await cardholder.send(later)
    assert any("a person at the bank will need to approve it" in m.text for m in asked)
    told = await cardholder.press_on(asked[-1], "Minimum due")
    assert any("queue" in m.text for m in told)
    case = await only_case(bank)
    async with bank.session_factory() as session:
        offer_id = await session.scalar(select(Offer.id).order_by(Offer.id.desc()))
    forged = bank.fake.user_presses(cardholder.user_id, cardholder.messages[-1].message_id, f"offer:accept:{offer_id}", forged=True)
    await cardholder.wait_quiet()
    assert "not available" in bank.fake.callback_answer(forged)["text"], "not acceptable before approval"

    desk_agent = agent(bank, case)
    await desk_agent.press_on(case.card_message_id, "Claim", expect_reply=False)
    proposal = next(m for m in bank.fake.bot_messages(DESK) if "Proposal:" in m.text)
    await desk_agent.press_on(proposal, "Approve", expect_reply=False)
    accepted = await cardholder.press_on(cardholder.messages[-1], "Accept")
    assert any("arrangement is recorded" in m.text for m in accepted)


async def test_a_fee_waiver_and_a_lower_payment_go_to_an_agent(bank: BotHarness) -> None:
    cardholder = await signed_in(bank, "en")
    menu = (await cardholder.send("/plans"))[-1]
    current = (await cardholder.press_on(menu, menu.labels[2]))[-1]
    told = await cardholder.press_on(current, "Ask to waive the late fee")
    assert any("queue" in m.text for m in told)
    await cardholder.send("/plans")
    await cardholder.press("💬")
    await cardholder.send("30")
    case = await only_case(bank)
    proposals = [m.text for m in bank.fake.bot_messages(DESK) if "Proposal:" in m.text]
    assert len(proposals) == 2
    assert "The late fee of $75.00 is waived" in proposals[0]
    assert "60 months" in proposals[1]
    assert case.reason == "outside_policy"


async def test_a_bad_offer_command_gets_its_usage(bank: BotHarness) -> None:
    cardholder, desk_agent, case = await claimed_case(bank)
    usage = await desk_agent.send("/offer lots", expect_reply=False)
    assert "Usage: /offer MONTHS" in usage[-1].text
    refused = await desk_agent.send("/offer 7", expect_reply=False)
    assert "No offer: 7 months is not a term the policy offers" in refused[-1].text


async def test_a_relay_waits_out_flood_control_and_arrives_once(bank: BotHarness) -> None:
    cardholder, desk_agent, case = await claimed_case(bank)
    bank.fake.fail_next("copyMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    await cardholder.send("sent during a flood", expect_reply=False)
    assert topic_texts(bank, case).count("sent during a flood") == 1
    copies = [call for call in bank.fake.calls if call.method == "copyMessage"]
    assert [call.ok for call in copies[-2:]] == [False, True]
