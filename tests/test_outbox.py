"""Effects on Telegram that must happen are recorded first and completed until they succeed."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.db.models import OutboxMessage, Relay
from bot.telegram_fake import ChatClient
from tests.conftest import BotHarness
from tests.test_handoff_journey import DESK, agent, bank, claimed_case, only_case, signed_in, topic_texts  # noqa: F401

pytestmark = pytest.mark.database

PAST_GRACE = 3  # minutes: the courier leaves younger effects to the update that recorded them


async def test_a_case_whose_topic_failed_gets_it_later_and_nothing_lands_outside_it(bank: BotHarness) -> None:
    cardholder = await signed_in(bank)
    bank.fake.fail_next("createForumTopic", 400, "Bad Request: not enough rights to create a topic")
    queued = await cardholder.send("I lost my job and can't pay this month")
    assert "number 1 in the queue" in queued[-1].text
    added = await cardholder.send("I can start paying in March")
    assert "Added to your case" in added[-1].text
    case = await only_case(bank)
    assert case.topic_id is None
    assert not [m for m in bank.fake.chat_history(DESK) if m.message_thread_id is None]

    assert bank.app is not None
    assert await bank.app.courier.run_once() == 0, "too young: still the update's"
    bank.clock.advance(minutes=PAST_GRACE)
    assert await bank.app.courier.run_once() == 1
    case = await only_case(bank)
    assert case.topic_id is not None and case.card_message_id is not None
    texts = topic_texts(bank, case)
    assert texts[0].startswith("Case #")
    assert texts[1:] == ["I lost my job and can't pay this month", "I can start paying in March"]
    card = bank.fake.stored_message(DESK, case.card_message_id)
    assert "Claim" in str(card.payload.get("reply_markup"))
    assert await bank.app.courier.run_once() == 0, "done once"
    assert len(bank.fake.topics(DESK)) == 1


async def test_a_relay_that_failed_is_delivered_once_later(bank: BotHarness) -> None:
    cardholder, desk_agent, case = await claimed_case(bank)
    for _ in range(bank.settings.telegram_attempts):
        bank.fake.fail_next("copyMessage", 500, "Internal Server Error")
    await cardholder.send("this one waits", expect_reply=False)
    assert "this one waits" not in topic_texts(bank, case)
    async with bank.session_factory() as session:
        assert (await session.scalars(select(Relay.status))).all() == ["failed"]

    assert bank.app is not None
    bank.clock.advance(minutes=PAST_GRACE)
    assert await bank.app.courier.run_once() == 1
    assert await bank.app.courier.run_once() == 0
    assert topic_texts(bank, case).count("this one waits") == 1


async def test_a_confirmation_that_could_not_be_sent_is_sent_later_once(bank: BotHarness) -> None:
    cardholder = await signed_in(bank)
    await cardholder.send("/plans")
    await cardholder.press("12 months")
    for _ in range(bank.settings.telegram_attempts):
        bank.fake.fail_next("sendMessage", 502, "Bad Gateway")
    await cardholder.press("Accept", expect_reply=False)
    assert not [m for m in bank.fake.bot_messages(cardholder.chat_id) if m.text.startswith("Done")]
    async with bank.session_factory() as session:
        [pending] = (await session.scalars(select(OutboxMessage))).all()
    assert pending.sent_at is None and pending.attempts == 1 and pending.key.startswith("accepted:")

    assert bank.app is not None
    bank.clock.advance(minutes=PAST_GRACE)
    assert await bank.app.courier.run_once() == 1
    assert await bank.app.courier.run_once() == 0
    done = [m for m in bank.fake.bot_messages(cardholder.chat_id) if m.text.startswith("Done")]
    assert len(done) == 1
    assert "Pay" in str(bank.fake.stored_message(cardholder.chat_id, done[0].message_id).payload.get("reply_markup"))
