"""Journeys over HTTP: the real bot polls the fake Bot API; a cardholder verifies (or fails to)."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from sqlalchemy import select

from bot.db.models import AuditEvent
from bot.logs import masked_handler
from bot.telegram_fake import UserMessage
from bot.clock import ManualClock
from bot.settings import load_settings
from bot.telegram_fake import FakeTelegram
from bot.telegram_fake.server import Faults
from tests.conftest import BOT_TOKEN, REDIS_URL, BotHarness, make_account

pytestmark = pytest.mark.database

BIRTH_DATE = {"en": "03/07/1985", "ru": "07.03.1985", "zh-hans": "1985年3月7日"}
GREETING = {"en": "Hello!", "ru": "Здравствуйте", "zh-hans": "您好"}
VERIFIED = {"en": "you are verified", "ru": "личность подтверждена", "zh-hans": "身份已确认"}


@pytest.fixture
async def bank(harness: BotHarness) -> BotHarness:
    await harness.add_accounts(
        make_account(),
        make_account(account_id="ACC-RU", phone="+79123456789", currency="RUB", card_last4="7788", locale="ru"),
    )
    return harness


@pytest.mark.parametrize("language", ["en", "ru", "zh-hans"])
async def test_verification_succeeds_in_each_language(bank: BotHarness, language: str) -> None:
    cardholder = bank.cardholder(language_code=language)

    greeting = await cardholder.send("/start")
    assert GREETING[language] in greeting[-1].text
    assert cardholder.reply_keyboard is not None

    asked = await cardholder.share_contact("+86 138 0013 8000")
    typed = await cardholder.send(BIRTH_DATE[language])

    assert asked, "the bot asks for the birth date"
    assert VERIFIED[language] in typed[-1].text
    assert "4321" in typed[-1].text
    assert cardholder.deleted_user_messages, "the message holding the birth date is deleted"
    assert not bank.fake.unanswered_callbacks()


async def test_someone_elses_contact_is_refused(bank: BotHarness) -> None:
    cardholder = bank.cardholder()
    await cardholder.send("/start")

    other = await cardholder.share_contact("+8613800138000", own=False)
    anonymous = await cardholder.share_contact("+8613800138000", contact_user_id=None)

    assert "your own Telegram account" in other[-1].text
    assert "your own Telegram account" in anonymous[-1].text
    still_asking = await cardholder.send("1985-03-07")
    assert "Share my phone number" in still_asking[-1].text


async def test_wrong_birth_date_until_lockout(bank: BotHarness) -> None:
    cardholder = bank.cardholder()
    await cardholder.send("/start")
    await cardholder.share_contact("+8613800138000")

    first = await cardholder.send("1990-01-01")
    second = await cardholder.send("1990-01-02")
    third = await cardholder.send("1990-01-03")

    assert "Attempts left: 2" in first[-1].text
    assert "Attempts left: 1" in second[-1].text
    assert "paused until" in third[-1].text and "in 30 minutes" in third[-1].text
    assert any("Talk to a person" in label for label in third[-1].labels)

    person = await cardholder.press("Talk to a person")
    assert "+86 400 820 8888" in person[-1].text

    await cardholder.send("/start")
    again = await cardholder.share_contact("+8613800138000")
    assert "paused until" in again[-1].text, "even the right person waits until the lock ends"

    bank.clock.advance(minutes=31)
    await cardholder.send("/start")
    await cardholder.share_contact("+8613800138000")
    counted_afresh = await cardholder.send("1990-01-04")
    assert "Attempts left: 2" in counted_afresh[-1].text, "a lock that ended leaves no failures behind"
    verified = await cardholder.send("1985-03-07")
    assert "you are verified" in verified[-1].text


async def test_verifying_clears_earlier_failures(bank: BotHarness) -> None:
    cardholder = bank.cardholder()
    await cardholder.send("/start")
    await cardholder.share_contact("+8613800138000")
    await cardholder.send("1990-01-01")
    await cardholder.send("1990-01-02")
    assert "you are verified" in (await cardholder.send("1985-03-07"))[-1].text

    later = bank.cardholder()
    await later.send("/start")
    await later.share_contact("+8613800138000")
    assert "Attempts left: 2" in (await later.send("1990-01-03"))[-1].text


async def test_lockout_counts_failures_across_chats(bank: BotHarness) -> None:
    first_chat = bank.cardholder()
    second_chat = bank.cardholder()
    for chat in (first_chat, second_chat):
        await chat.send("/start")
        await chat.share_contact("+8613800138000")

    await first_chat.send("1990-01-01")
    await first_chat.send("1990-01-02")
    locked = await second_chat.send("1990-01-03")

    assert "paused until" in locked[-1].text
    right_date = await first_chat.send("1985-03-07")
    assert "paused until" in right_date[-1].text


async def test_unknown_phone_is_answered_like_a_wrong_birth_date(bank: BotHarness) -> None:
    known = bank.cardholder()
    unknown = bank.cardholder()
    await known.send("/start")
    await unknown.send("/start")
    known_asked = await known.share_contact("+8613800138000")
    unknown_asked = await unknown.share_contact("+8613900000000")

    known_failed = await known.send("1990-01-01")
    unknown_failed = await unknown.send("1990-01-01")

    assert [m.text for m in known_asked] == [m.text for m in unknown_asked]
    assert [m.text for m in known_failed] == [m.text for m in unknown_failed]


async def test_idle_session_asks_to_verify_again(bank: BotHarness) -> None:
    cardholder = bank.cardholder()
    await cardholder.send("/start")
    await cardholder.share_contact("+8613800138000")
    await cardholder.send("1985-03-07")

    bank.clock.advance(minutes=29)
    still_in = await cardholder.send("/help")
    assert "card ending 4321" in still_in[-1].text

    bank.clock.advance(minutes=31)
    expired = await cardholder.send("hello")
    assert "signed out after 30 minutes" in expired[-1].text
    assert "Share my phone number" in expired[-1].text


async def test_restart_mid_verification_resumes_at_the_same_step(bank: BotHarness) -> None:
    cardholder = bank.cardholder()
    await cardholder.send("/start")
    await cardholder.share_contact("+8613800138000")

    await bank.restart()

    verified = await cardholder.send("7 March 1985")
    assert "you are verified" in verified[-1].text


async def test_junk_at_each_step_gets_a_helpful_answer(bank: BotHarness) -> None:
    cardholder = bank.cardholder()
    await cardholder.send("/start")

    for act in (cardholder.send_sticker, cardholder.send_photo, cardholder.send_voice):
        answer = await act()
        assert "Share my phone number" in answer[-1].text
        assert "can't use pictures, stickers or files" in answer[-1].text and "typed" not in answer[-1].text
    typed_phone = await cardholder.send("+86 138 0013 8000")
    assert "can't accept a typed phone number" in typed_phone[-1].text

    await cardholder.share_contact("+8613800138000")
    for junk in ("yesterday", "31.02.1985", "2090-01-01", "x" * 4000, "/frobnicate"):
        answer = await cardholder.send(junk)
        assert answer, f"no answer to {junk[:20]!r}"
        assert "date of birth" in answer[-1].text
    sticker = await cardholder.send_sticker()
    assert "date of birth" in sticker[-1].text

    verified = await cardholder.send("1985-03-07")
    assert "you are verified" in verified[-1].text
    for act in (cardholder.send_sticker, cardholder.send_voice):
        answer = await act()
        assert "card ending 4321" in answer[-1].text
    long_text = await cardholder.send("a" * 4000)
    assert "too long" in long_text[-1].text
    unknown = await cardholder.send("/frobnicate")
    assert "I don't know the command /frobnicate" in unknown[-1].text
    typed = [m for m in bank.fake.chat_history(cardholder.chat_id) if isinstance(m, UserMessage) and m.text]
    edited = await cardholder.edit(typed[-1].message_id, "changed")
    assert "only act on new messages" in edited[-1].text
    assert not bank.fake.unanswered_callbacks()


async def test_commands_work_in_every_state(bank: BotHarness) -> None:
    cardholder = bank.cardholder()
    await cardholder.send("/start")
    await cardholder.share_contact("+8613800138000")

    helped = await cardholder.send("/help")
    assert "/language" in helped[0].text and "date of birth" in helped[-1].text

    menu = await cardholder.send("/language")
    chosen = await cardholder.press("Русский")
    assert menu and any("Язык" in m.text for m in chosen)
    cancelled = await cardholder.send("/cancel")
    assert "Отменено" in cancelled[-1].text
    assert not bank.fake.unanswered_callbacks()


async def test_stale_and_forged_buttons_are_answered(bank: BotHarness) -> None:
    cardholder = bank.cardholder()
    await cardholder.send("/language")
    assert cardholder.last is not None
    for data in ("lang:xx", "nonsense:1"):
        query_id = bank.fake.user_presses(cardholder.user_id, cardholder.last.message_id, data, forged=True)
        await cardholder.wait_quiet()
        answer = bank.fake.callback_answer(query_id)
        assert answer is not None and "no longer active" in answer["text"]
    assert not bank.fake.unanswered_callbacks()


async def test_a_failing_handler_apologises_and_the_bot_keeps_running(bank: BotHarness) -> None:
    cardholder = bank.cardholder()
    bank.fake.fail_next("sendMessage", 400, "Bad Request: message is too long")

    apology = await cardholder.send("/start")
    assert "something went wrong" in apology[-1].text

    greeting = await cardholder.send("/start")
    assert "Hello!" in greeting[-1].text


async def test_a_call_that_fails_for_a_moment_is_made_again(bank: BotHarness) -> None:
    cardholder = bank.cardholder()
    bank.fake.fail_next("sendMessage", 500, "Internal Server Error")
    bank.fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)

    greeting = await cardholder.send("/start")
    assert [message.text.startswith("Hello!") for message in greeting] == [True]
    failed = [call for call in bank.fake.calls if call.method == "sendMessage" and not call.ok]
    assert len(failed) == 2


async def test_audit_and_logs_mask_personal_data(bank: BotHarness) -> None:
    log_output = io.StringIO()
    handler = masked_handler(log_output)
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.DEBUG)
    cardholder = bank.cardholder()
    await cardholder.send("/start")
    await cardholder.share_contact("+8613800138000")
    await cardholder.send("1985-03-07")
    await cardholder.send("/help")
    root.removeHandler(handler)
    root.setLevel(level)

    async with bank.session_factory() as session:
        events = (await session.scalars(select(AuditEvent).order_by(AuditEvent.id))).all()
    kinds = {(event.direction, event.kind) for event in events}
    assert ("in", "contact") in kinds and ("in", "text") in kinds and ("out", "sendMessage") in kinds
    assert any(event.account_pk is not None for event in events), "events after verification name the account"
    driver_line = (  # the SQLite driver logs its statements; asyncpg's logger does not
        "DEBUG aiosqlite: executing _run('INSERT INTO verification_locks"
        if bank.settings.database_url.startswith("sqlite")
        else "DEBUG redis.asyncio"
    )
    assert driver_line in log_output.getvalue(), (
        "the driver's DEBUG lines were captured, with their statements and without their parameters"
    )
    everything = " ".join(event.payload for event in events) + log_output.getvalue()
    assert "13800138000" not in everything
    assert "1985-03-07" not in everything
    assert "Li Wei" not in everything


async def test_command_menu_is_set_per_language(bank: BotHarness) -> None:
    english = bank.fake.commands()
    russian = bank.fake.commands(language_code="ru")
    chinese = bank.fake.commands(language_code="zh")
    assert {c["command"] for c in english} == {"start", "balance", "plans", "myplan", "faq", "agent", "help", "language", "cancel", "stop"}
    assert russian[0]["description"] != english[0]["description"] != chinese[0]["description"]


async def test_a_double_tap_acts_once(bank: BotHarness) -> None:
    cardholder = bank.cardholder()
    menu = await cardholder.send("/language")
    message_id = menu[-1].message_id
    first = bank.fake.user_presses(cardholder.user_id, message_id, "lang:ru")
    second = bank.fake.user_presses(cardholder.user_id, message_id, "lang:ru")
    await cardholder.wait_quiet()

    texts = [m.text for m in bank.fake.bot_messages(cardholder.chat_id)]
    assert sum("Чтобы защитить ваш счёт" in text for text in texts) == 1
    assert not any("something went wrong" in text for text in texts)
    assert bank.fake.callback_answer(first) is not None and bank.fake.callback_answer(second) is not None


async def test_verification_and_restart_on_postgresql(fake: FakeTelegram, postgres_url: str) -> None:
    settings = load_settings(_env_file=None, bot_token=BOT_TOKEN, telegram_api_url=fake.base_url, database_url=postgres_url)
    bank = BotHarness(fake, settings, ManualClock())
    await bank.start()
    try:
        await bank.add_accounts(make_account())
        cardholder = bank.cardholder(language_code="zh-hans")
        await cardholder.send("/start")
        await cardholder.share_contact("+8613800138000")
        await bank.restart()
        verified = await cardholder.send("1985年3月7日")
        assert "身份已确认" in verified[-1].text
    finally:
        await bank.stop()


async def test_double_tap_with_redis_event_isolation(fake: FakeTelegram, database_url: str) -> None:
    settings = load_settings(
        _env_file=None,
        bot_token=BOT_TOKEN,
        telegram_api_url=fake.base_url,
        database_url=database_url,
        redis_url=REDIS_URL,
    )
    bank = BotHarness(fake, settings, ManualClock())
    await bank.start()
    try:
        assert type(bank.app.isolation).__name__ == "RedisEventIsolation"
        await test_a_double_tap_acts_once(bank)
    finally:
        await bank.stop()


async def test_markup_in_what_people_type_is_shown_as_text(bank: BotHarness) -> None:
    cardholder = bank.cardholder()
    await cardholder.send("/start")
    await cardholder.share_contact("+8613800138000")
    await cardholder.send("1985-03-07")
    answer = await cardholder.send("/x<b>&")
    assert "/x<b>&" in answer[-1].text


async def test_an_update_delivered_twice_is_handled_once(bank: BotHarness) -> None:
    bank.fake.faults = Faults(duplicates=1.0)
    cardholder = bank.cardholder()
    greeting = await cardholder.send("/start")
    await cardholder.wait_quiet()
    assert bank.fake.faults.duplicated >= 1
    assert [message.text.startswith("Hello!") for message in bank.fake.bot_messages(cardholder.user_id)] == [True]
    assert greeting


async def test_an_update_delivered_again_after_a_restart_is_not_handled_again(bank: BotHarness) -> None:
    cardholder = bank.cardholder()
    await cardholder.send("/start")
    update_id = bank.fake.last_update_id
    await bank.stop()
    generation = bank.fake.poll_generation
    await bank.start()  # a new process remembers nothing; the database does
    while bank.fake.poll_generation == generation:  # the new process polls (not the old one's last poll)
        await asyncio.sleep(0.01)
    bank.fake.redeliver(update_id)
    await cardholder.wait_quiet()
    assert bank.app is not None and update_id in bank.app.updates.finished
    assert [message.text.startswith("Hello!") for message in bank.fake.bot_messages(cardholder.user_id)] == [True]
    async with bank.session_factory() as session:
        recorded = (await session.scalars(select(AuditEvent.update_id).where(AuditEvent.update_id == update_id))).all()
    assert recorded == [update_id]


async def test_an_update_is_confirmed_to_telegram_only_once_handled(bank: BotHarness) -> None:
    """Updates being handled when the process dies are delivered again to the next one."""
    cardholder = bank.cardholder()
    bank.fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3)
    bank.fake.user_sends_text(cardholder.user_id, "/start")  # its answer waits out the flood control
    update_id = bank.fake.last_update_id
    while not bank.fake.was_fetched(update_id):
        await asyncio.sleep(0.01)
    await asyncio.sleep(2.5)  # the answer waits; polls meanwhile (each up to 1 s) do not confirm the update
    later_polls = [call for call in bank.fake.calls if call.method == "getUpdates" and (call.params.get("offset") or 0) >= update_id]
    assert later_polls and all(call.params["offset"] == update_id for call in later_polls)
    await cardholder.wait_quiet()
    assert [message.text.startswith("Hello!") for message in bank.fake.bot_messages(cardholder.user_id)] == [True]


@pytest.mark.parametrize(
    ("language", "media", "command", "off_topic", "typed"),
    [
        ("en", "can't use pictures", "I can show your account once", "I can help with your card account once", "typed phone number"),
        ("ru", "Фото, стикеры и файлы", "Я покажу ваш счёт", "Я помогу с вашим карточным счётом", "набранный вручную номер"),
        ("zh-hans", "图片、贴纸或文件", "为您显示账户信息", "帮您处理信用卡账户", "手动输入的手机号码"),
    ],
)
async def test_before_verification_each_input_is_told_what_is_needed(
    bank: BotHarness, language: str, media: str, command: str, off_topic: str, typed: str
) -> None:
    cardholder = bank.cardholder(language_code=language)
    await cardholder.send("/start")
    answers = {
        "media": await cardholder.send_sticker(),
        "command": await cardholder.send("/balance"),
        "off_topic": await cardholder.send("what's the weather in Paris tomorrow?"),
        "typed": await cardholder.send("+86 138 0013 8000"),
    }
    expected = {"media": media, "command": command, "off_topic": off_topic, "typed": typed}
    for kind, answer in answers.items():
        text = answer[-1].text
        assert expected[kind] in text, (kind, text)
        assert text.count("confirm it's you") <= 1 and text.count("убедиться") + text.count("удостоверюсь") <= 1
        assert "{" not in text and cardholder.reply_keyboard is not None and cardholder.reply_keyboard.contact_label, (kind, text)


def cardholder_commands() -> set[str]:
    """Every command a cardholder's routers answer (the desk's are the agents')."""
    import re as _re
    from pathlib import Path as _Path

    found: set[str] = set()
    for module in (_Path(__file__).parent.parent / "handlers").glob("*.py"):
        if module.name != "desk.py":
            found |= set(_re.findall(r'Command\("(\w+)"\)', module.read_text(encoding="utf-8")))
    return found | {"start"}


@pytest.mark.parametrize("language", ["en", "ru", "zh-hans"])
async def test_help_and_the_command_menu_list_every_command(bank: BotHarness, language: str) -> None:
    cardholder = bank.cardholder(language_code=language)
    helped = await cardholder.send("/help")
    text = "\n".join(message.text for message in helped)
    commands = cardholder_commands()
    assert {"balance", "plans", "myplan", "faq", "agent", "language", "cancel", "stop", "help"} <= commands
    assert not [command for command in commands if f"/{command}" not in text], text
    locale_code = {"en": "", "ru": "ru", "zh-hans": "zh"}[language]
    menu = {item["command"] for item in bank.fake.commands(None, locale_code)}
    assert menu == commands, menu ^ commands
