"""Questions over HTTP, before and after verification, in each language."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from bot.db.models import AuditEvent
from bot.domain.faq import faq_topics
from bot.services.faq_review import questions_to_review
from bot.telegram_fake import ChatClient
from tests.conftest import BotHarness, make_account, run_bot_command

PHONE = "+8613800138000"
BIRTH = {"en": "1985-03-07", "ru": "07.03.1985", "zh-hans": "1985年3月7日"}
IS_IT_THE_BANK = {"en": "how do I know this chat is really my bank?", "ru": "Это правда банк пишет?", "zh-hans": "你们真的是银行吗？"}
BALANCE_GREW = {"en": "why does my debt keep growing?", "ru": "Почему долг всё время растёт?", "zh-hans": "我欠的钱怎么越来越多？"}


@pytest.fixture
async def bank(harness: BotHarness) -> BotHarness:
    await harness.add_accounts(make_account())
    return harness


async def verify(cardholder: ChatClient, language: str) -> None:
    await cardholder.send("/start")
    await cardholder.share_contact(PHONE)
    await cardholder.send(BIRTH[language])


@pytest.mark.parametrize("language", ["en", "ru", "zh-hans"])
async def test_a_question_before_verification_needs_no_account(bank: BotHarness, language: str) -> None:
    cardholder = bank.cardholder(language_code=language, phone=PHONE)
    await cardholder.send("/start")
    answer = await cardholder.send(IS_IT_THE_BANK[language])
    assert "+86 400 820 8888" in answer[-1].text or "example-bank.com" in answer[-1].text
    assert any("🙋" in label for label in answer[-1].labels) and any("👍" in label for label in answer[-1].labels)
    thanked = await cardholder.press("👍")
    assert thanked[-1].text and "/faq" in thanked[-1].text, "a helpful answer is acknowledged in the chat"


@pytest.mark.parametrize("language", ["en", "ru", "zh-hans"])
async def test_account_figures_only_after_verification(bank: BotHarness, language: str) -> None:
    cardholder = bank.cardholder(language_code=language, phone=PHONE)
    await cardholder.send("/start")
    before = await cardholder.send(BALANCE_GREW[language])
    assert "12,345.60" not in before[-1].text and "12 345,60" not in before[-1].text
    await verify(cardholder, language)
    after = await cardholder.send(BALANCE_GREW[language])
    text = after[-1].text.replace("\u00a0", " ").replace("\u202f", " ")
    assert any(amount in text for amount in ("CN¥7.50", "7,50 CN¥", "¥7.50")), text


async def test_not_sure_offers_the_closest_topics_and_a_person(bank: BotHarness) -> None:
    cardholder = bank.cardholder(phone=PHONE)
    await verify(cardholder, "en")
    answer = await cardholder.send("what about the thing with the stuff")
    assert "not sure I understood" in answer[-1].text
    assert len(answer[-1].labels) == 4 and "Talk to a person" in answer[-1].labels[-1]
    topic = await cardholder.press_on(answer[-1], answer[-1].labels[0])
    assert topic[-1].text


GREETING = {"en": "hi there!", "ru": "привет, как дела", "zh-hans": "在吗"}
HERE_TO_HELP = {"en": "I'm here to help", "ru": "Я здесь, чтобы помочь", "zh-hans": "我随时为您服务"}
ARE_YOU_A_BOT = {"en": "wait, am I chatting with a bot?", "ru": "ты что, бот?", "zh-hans": "你是机器人吗"}
WHAT_THE_CHAT_DOES = {"en": "automated assistant", "ru": "автоматический помощник", "zh-hans": "自动助手"}


@pytest.mark.parametrize("language", ["en", "ru", "zh-hans"])
async def test_small_talk_is_greeted_and_shown_the_way_on(bank: BotHarness, language: str) -> None:
    cardholder = bank.cardholder(language_code=language, phone=PHONE)
    await cardholder.send("/start")
    before = await cardholder.send(GREETING[language])
    assert HERE_TO_HELP[language] in before[-1].text
    assert cardholder.reply_keyboard is not None and cardholder.reply_keyboard.contact_label, "the phone step again"
    await cardholder.share_contact(PHONE)
    await cardholder.send(BIRTH[language])
    after = await cardholder.send(GREETING[language])
    assert HERE_TO_HELP[language] in after[-1].text and "4321" in after[-1].text
    bot = await cardholder.send(ARE_YOU_A_BOT[language])
    assert WHAT_THE_CHAT_DOES[language] in bot[-1].text and "Example Bank" in bot[-1].text


async def test_a_hardship_question_goes_to_a_person(bank: BotHarness) -> None:
    cardholder = bank.cardholder(phone=PHONE)
    await verify(cardholder, "en")
    answer = await cardholder.send("I lost my job, can you waive the late fee?")
    assert "talk to a person at Example Bank" in answer[-1].text


async def test_faq_lists_topics_in_every_state(bank: BotHarness) -> None:
    cardholder = bank.cardholder(phone=PHONE)
    await cardholder.send("/start")
    await cardholder.share_contact(PHONE)
    topics = await cardholder.send("/faq")
    assert len(topics[-1].labels) >= 14
    answer = await cardholder.press_on(topics[-1], topics[-1].labels[0])
    assert answer[-1].text
    assert not bank.fake.unanswered_callbacks()


async def test_questions_not_understood_are_kept_for_review_with_the_topic_picked(
    bank: BotHarness, database_url: str
) -> None:
    cardholder = bank.cardholder(phone=PHONE)
    await verify(cardholder, "en")
    await cardholder.send(IS_IT_THE_BANK["en"])
    call = "my nephew says +8613800138000 keeps ringing, what about the thing with the stuff"
    answer = await cardholder.send(call)
    assert "not sure I understood" in answer[-1].text
    picked = answer[-1].labels[1]
    await cardholder.press_on(answer[-1], picked)
    await cardholder.send("and what about the other thing")

    async with bank.session_factory() as session:
        review = await questions_to_review(session)
        kinds = (await session.scalars(select(AuditEvent.kind).where(AuditEvent.direction == "decision"))).all()
    assert kinds == ["faq_answered", "faq_not_sure", "faq_topic", "faq_not_sure"]
    first, second = review
    assert first.text.startswith("my nephew says +***********00 keeps ringing"), "the phone is masked"
    assert first.locale == "en" and len(first.offered) == 3
    titles = {entry.id: entry.title for entry in faq_topics("en")}
    assert titles[first.chosen] == picked
    assert second.text == "and what about the other thing" and second.chosen is None

    out = await run_bot_command(database_url, "faq-review", "--since", bank.clock.now().date().isoformat())
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["at", "locale", "question", "offered", "chosen"]
    assert [row[2] for row in rows[1:]] == [first.text, second.text]
    assert rows[1][4] == first.chosen and rows[2][4] == ""


NEXT_INSTALLMENT = {"en": "When is my next installment due?", "ru": "Когда следующий платёж по рассрочке?", "zh-hans": "下一期什么时候还？"}
NO_PLAN = {"en": "You have no installment due", "ru": "Платежей по плану сейчас нет", "zh-hans": "您目前没有待还的分期"}


@pytest.mark.parametrize("language", ["en", "ru", "zh-hans"])
async def test_the_next_installment_is_given_or_said_to_be_none(bank: BotHarness, language: str) -> None:
    cardholder = bank.cardholder(language_code=language, phone=PHONE)
    await verify(cardholder, language)
    none_yet = await cardholder.send(NEXT_INSTALLMENT[language])
    assert NO_PLAN[language] in none_yet[-1].text and "{" not in none_yet[-1].text, none_yet[-1].text

    await cardholder.send("/plans")
    plan = await cardholder.press_number(4)  # the first installment plan of the menu
    accepted = await cardholder.press("✅")
    assert accepted[-1].text
    answer = await cardholder.send(NEXT_INSTALLMENT[language])
    text = answer[-1].text
    assert "¥" in text and "2027" in text and "{" not in text and "«" not in text.split("¥")[0], (plan[-1].text, text)
    assert "г.." not in text


HARDSHIP = {
    "en": ("I lost my job and can't pay right now", "I'm sorry you are going through this"),
    "ru": ("Я потерял работу и сейчас не могу платить", "Мне жаль, что вам приходится через это проходить"),
    "zh-hans": ("我失业了，现在还不起", "听到您遇到这样的困难"),
}


@pytest.mark.parametrize("language", ["en", "ru", "zh-hans"])
async def test_without_a_desk_a_hardship_is_acknowledged_before_the_banks_number(bank: BotHarness, language: str) -> None:
    cardholder = bank.cardholder(language_code=language, phone=PHONE)
    await verify(cardholder, language)
    said, acknowledged = HARDSHIP[language]
    answer = await cardholder.send(said)
    assert acknowledged in answer[-1].text and "+86 400 820 8888" in answer[-1].text, answer[-1].text
    assert "Asia/Shanghai" not in answer[-1].text


async def test_asking_for_a_person_in_words_is_the_same_as_the_button(bank: BotHarness) -> None:
    cardholder = bank.cardholder(phone=PHONE)
    await verify(cardholder, "en")
    topics = await cardholder.send("/faq")
    assert [label for label in topics[-1].labels if "person" in label.casefold()] == ["🙋 Talk to a person"]
    button = await cardholder.press("🙋 Talk to a person")
    words = await cardholder.send("Could I have a word with one of your staff?")
    assert words[-1].text == button[-1].text and "+86 400 820 8888" in words[-1].text, words[-1].text


async def test_the_banks_hours_are_given_in_the_cardholders_time_zone(harness: BotHarness) -> None:
    await harness.add_accounts(make_account(phone="+14155550132", currency="USD", timezone="America/Los_Angeles", locale="en"))
    cardholder = harness.cardholder(phone="+14155550132")
    await cardholder.send("/start")
    await cardholder.share_contact("+14155550132")
    await cardholder.send(BIRTH["en"])
    contact = await cardholder.press("☎️")
    text = contact[-1].text.replace("\u202f", " ")
    # the desk's 09:00-21:00 in Shanghai is 5:00 PM to 5:00 AM in Los Angeles in winter
    assert "between 5:00 PM and 5:00 AM (Pacific Time)" in text, text
