"""The fake Bot API server, driven by the real aiogram Bot over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramServerError,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.filters import CommandStart
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from bot.telegram_fake import ChatClient, FakeTelegram, render_message
from bot.telegram_fake.server import Faults

TOKEN = "123456:TEST-token_abc"
ANN = 42


def keyboard(*rows: list[tuple[str, str]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=t, callback_data=d) for t, d in row] for row in rows]
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    server.add_user(ANN, "Ann", language_code="en")
    yield server
    await server.stop()


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url or ""))
    client = Bot(TOKEN, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    yield client
    await client.session.close()


@pytest.mark.asyncio
async def test_get_me_and_tokens(fake: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (123456, True, "repay_bot")

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{fake.base_url}/bot{TOKEN}/noSuchMethod") as response:
            assert response.status == 404
            assert await response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        async with http.get(f"{fake.base_url}/bot{TOKEN}/GETME") as response:
            assert (await response.json())["ok"] is True

    fake.revoked_tokens.add(TOKEN)
    with pytest.raises(TelegramUnauthorizedError):
        await bot.get_me()


@pytest.mark.asyncio
async def test_send_message_records_decoded_call(fake: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(ANN, "Hello, <b>Ann</b> &amp; co", reply_markup=keyboard([("Pay", "pay:1")]))
    assert sent.text == "Hello, Ann & co"
    assert sent.entities is not None and sent.entities[0].type == "bold"
    assert (sent.entities[0].offset, sent.entities[0].length) == (7, 3)
    assert sent.reply_markup is not None
    second = await bot.send_message(ANN, "again")
    assert second.message_id == sent.message_id + 1

    method, params, ok, _ = fake.calls[0]
    assert (method, ok, params["chat_id"]) == ("sendMessage", True, ANN)
    assert params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "pay:1"
    [first, _second] = fake.bot_messages(ANN)
    assert (first.text, first.html, first.labels) == ("Hello, Ann & co", "Hello, <b>Ann</b> &amp; co", ["Pay"])

    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(999, "hi")


@pytest.mark.asyncio
async def test_text_limits(bot: Bot) -> None:
    await bot.send_message(ANN, "<b>" + "a" * 4096 + "</b>")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(ANN, "a" * 4097)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(ANN, "<b> </b>")
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(ANN, BufferedInputFile(b"jpeg", "a.jpg"), caption="c" * 1025)


@pytest.mark.asyncio
async def test_callback_data_counts_bytes(bot: Bot) -> None:
    await bot.send_message(ANN, "ok", reply_markup=keyboard([("Да", "д" * 32)]))
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(ANN, "no", reply_markup=keyboard([("Да", "д" * 32 + "x")]))
    with pytest.raises(TelegramBadRequest, match="reply markup is too long"):
        await bot.send_message(ANN, "wide", reply_markup=keyboard([(str(i), str(i)) for i in range(9)]))


@pytest.mark.asyncio
async def test_html_errors(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest) as error:
        await bot.send_message(ANN, "<p>hi</p>")
    assert error.value.message == 'Bad Request: can\'t parse entities: Unsupported start tag "p" at byte offset 0'
    with pytest.raises(TelegramBadRequest, match='Unsupported start tag "" at byte offset 4'):
        await bot.send_message(ANN, "1 + < 2")
    with pytest.raises(TelegramBadRequest, match='Can\'t find end tag corresponding to start tag "b"'):
        await bot.send_message(ANN, "<b>bold")
    with pytest.raises(TelegramBadRequest, match="Unclosed start tag at byte offset 2"):
        await bot.send_message(ANN, "Ж<b")
    sent = await bot.send_message(ANN, '<a href="https://x.org/?a=1&amp;b=2">link</a> &lt;3 &#128512;')
    assert sent.text == "link <3 😀"
    assert sent.entities is not None and sent.entities[0].url == "https://x.org/?a=1&b=2"


@pytest.mark.asyncio
async def test_edit_and_delete(fake: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(ANN, "Plan", reply_markup=keyboard([("A", "a")]))
    with pytest.raises(TelegramBadRequest, match="message is not modified: specified new message content"):
        await bot.edit_message_text("Plan", chat_id=ANN, message_id=sent.message_id,
                                    reply_markup=keyboard([("A", "a")]))
    edited = await bot.edit_message_text("Plan", chat_id=ANN, message_id=sent.message_id)
    assert isinstance(edited, Message) and edited.reply_markup is None
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=ANN, message_id=999)

    assert await bot.delete_message(ANN, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(ANN, sent.message_id)
    [stored] = fake.bot_messages(ANN)
    assert stored.deleted and stored.edits == 1

    old = await bot.send_message(ANN, "old")
    fake.advance(48 * 3600 + 1)
    with pytest.raises(TelegramBadRequest, match="message can't be deleted"):
        await bot.delete_message(ANN, old.message_id)


@pytest.mark.asyncio
async def test_answer_callback_query_rules(fake: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(ANN, "Choose", reply_markup=keyboard([("One", "one")]))
    first = fake.user_presses(ANN, sent.message_id, "one")
    second = fake.user_presses(ANN, sent.message_id, "one")
    assert fake.unanswered_callbacks() == [first, second]
    with pytest.raises(TelegramBadRequest):
        await bot.answer_callback_query(first, text="x" * 201)
    assert await bot.answer_callback_query(first, text="Done")
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(first)
    fake.advance(151)
    with pytest.raises(TelegramBadRequest, match="query is too old and response timeout expired"):
        await bot.answer_callback_query(second)
    assert fake.callback_answer(first) == {"text": "Done", "show_alert": False, "url": None}


@pytest.mark.asyncio
async def test_flood_control_and_injected_failures(fake: FakeTelegram, bot: Bot) -> None:
    fake.flood_limit_per_chat = 2
    await bot.send_message(ANN, "1")
    await bot.send_message(ANN, "2")
    with pytest.raises(TelegramRetryAfter) as flood:
        await bot.send_message(ANN, "3")
    assert flood.value.retry_after == 1
    fake.advance(1)
    await bot.send_message(ANN, "4")

    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    with pytest.raises(TelegramRetryAfter) as injected:
        await bot.send_message(ANN, "5")
    assert injected.value.retry_after == 7
    assert fake.calls[-1].ok is False
    assert fake.calls[-1].result["parameters"] == {"retry_after": 7}


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("429", TelegramRetryAfter),
        ("500", TelegramServerError),
        ("502", ClientDecodeError),
        ("timeout", TelegramNetworkError),
        ("drop", TelegramNetworkError),
    ],
)
async def test_faults_are_what_a_bot_sees_of_the_real_api_and_nothing_is_carried_out(
    fake: FakeTelegram, kind: str, error: type[Exception]
) -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url or ""), timeout=2.0)
    client = Bot(TOKEN, session=session)
    fake.faults = Faults(rate=1.0, kinds=(kind,), timeout_seconds=4.0)
    try:
        with pytest.raises(error):
            await client.send_message(ANN, "hello")
        assert fake.faults.injected == {kind: 1}
        assert fake.bot_messages(ANN) == []
        fake.faults = Faults()
        await client.send_message(ANN, "hello")
        assert [m.text for m in fake.bot_messages(ANN)] == ["hello"]
    finally:
        await session.close()


async def test_an_update_can_be_delivered_twice(fake: FakeTelegram, bot: Bot) -> None:
    fake.faults = Faults(duplicates=1.0)
    fake.user_sends_text(ANN, "once")
    first = await bot.get_updates(offset=0, timeout=0)
    again = await bot.get_updates(offset=first[-1].update_id + 1, timeout=0)
    assert [u.update_id for u in again] == [u.update_id for u in first]
    assert fake.faults.duplicated == 1
    assert await bot.get_updates(offset=first[-1].update_id + 1, timeout=0) == []


@pytest.mark.asyncio
async def test_blocked_user(fake: FakeTelegram, bot: Bot) -> None:
    fake.block(ANN)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(ANN, "hello?")


@pytest.mark.asyncio
async def test_files_commands_and_topics(fake: FakeTelegram, bot: Bot) -> None:
    photo = await bot.send_photo(ANN, BufferedInputFile(b"\xff\xd8jpeg", "card.jpg"), caption="<i>card</i>")
    assert photo.caption == "card" and photo.photo
    file = await bot.get_file(photo.photo[-1].file_id)
    assert file.file_path is not None
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None and downloaded.read() == b"\xff\xd8jpeg"
    resent = await bot.send_photo(ANN, photo.photo[-1].file_id)
    assert resent.photo is not None and resent.photo[-1].file_id == photo.photo[-1].file_id

    await bot.set_my_commands([BotCommand(command="start", description="Start")], language_code="ru")
    assert [c.command for c in await bot.get_my_commands(language_code="ru")] == ["start"]
    assert await bot.get_my_commands() == []

    group = -1001234567890
    fake.add_forum_group(group)
    topic = await bot.create_forum_topic(group, "Case 17 · Ann")
    sent = await bot.send_message(group, "New case", message_thread_id=topic.message_thread_id)
    assert sent.message_thread_id == topic.message_thread_id and sent.is_topic_message
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(group, "x", message_thread_id=topic.message_thread_id + 100)
    await bot.close_forum_topic(group, topic.message_thread_id)
    with pytest.raises(TelegramBadRequest, match="TOPIC_CLOSED"):
        await bot.send_message(group, "x", message_thread_id=topic.message_thread_id)
    with pytest.raises(TelegramBadRequest):
        await bot.create_forum_topic(group, "n" * 129)


@pytest.mark.asyncio
async def test_concurrent_get_updates_conflict(fake: FakeTelegram, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    while fake.polling == 0:
        await asyncio.wait_for(fake.change_event().wait(), 2)
    assert await bot.get_updates(timeout=0) == []
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await first

    message = fake.user_sends_text(ANN, "/start")
    [update] = await bot.get_updates(timeout=1)
    assert update.message is not None and update.message.message_id == message["message_id"]
    assert update.message.entities is not None and update.message.entities[0].type == "bot_command"
    assert await bot.get_updates(offset=update.update_id + 1, timeout=0) == []


@pytest.mark.asyncio
async def test_polling_journey(fake: FakeTelegram, bot: Bot) -> None:
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message) -> None:
        share = ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text="Share my phone", request_contact=True)]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )
        await message.answer("Welcome", reply_markup=share)
        await message.answer("Pick a plan", reply_markup=keyboard([("3 months", "plan:3"), ("6 months", "plan:6")]))

    @dp.callback_query(F.data.startswith("plan:"))
    async def plan(query: CallbackQuery) -> None:
        await query.answer("Saved")
        assert isinstance(query.message, Message) and query.data is not None
        await query.message.edit_text(f"Plan: <b>{query.data[5:]} months</b>")

    @dp.message(F.contact)
    async def contact(message: Message) -> None:
        assert message.contact is not None and message.from_user is not None
        own = message.contact.user_id == message.from_user.id
        await message.answer(f"Phone {message.contact.phone_number}, own={own}",
                             reply_markup=ReplyKeyboardRemove())

    @dp.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(f"You said: {message.html_text}")

    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=1)
    )
    try:
        ann = ChatClient(fake, ANN, phone="+8613800138000", settle=0.05)
        welcome, pick = await ann.send("/start")
        assert (welcome.text, pick.labels) == ("Welcome", ["3 months", "6 months"])
        assert ann.reply_keyboard is not None and ann.reply_keyboard.contact_label == "Share my phone"
        assert "[1] 3 months  [2] 6 months" in ann.render()
        assert ann.button_by_number(3) == "Share my phone"

        [edited] = await ann.press("6")
        assert edited.edited and edited.text == "Plan: 6 months" and edited.labels == []
        assert ann.last_callback_answer == {"text": "Saved", "show_alert": False, "url": None}
        assert fake.unanswered_callbacks() == []

        [echoed] = await ann.send("a < b")
        assert echoed.text == "You said: a < b"

        [phone] = await ann.press("Share my phone")
        assert phone.text == "Phone +8613800138000, own=True"
        assert ann.reply_keyboard is None
        [other] = await ann.share_contact("+15550001111", own=False)
        assert other.text.endswith("own=False")
        assert "Phone +15550001111" in render_message(other)
    finally:
        await dp.stop_polling()
        await polling


@pytest.mark.asyncio
async def test_desk_topic_relay(fake: FakeTelegram, bot: Bot) -> None:
    desk, agent = -1009876543210, 7
    fake.add_forum_group(desk)
    fake.add_user(agent, "Max")
    dp = Dispatcher()
    topics: dict[int, int] = {}

    @dp.message(F.chat.type == "private")
    async def to_desk(message: Message) -> None:
        if message.chat.id not in topics:
            topic = await bot.create_forum_topic(desk, f"Case · {message.chat.first_name}")
            topics[message.chat.id] = topic.message_thread_id
        await message.copy_to(desk, message_thread_id=topics[message.chat.id])
        await message.answer("An agent will reply soon")

    @dp.message(F.chat.id == desk, F.message_thread_id)
    async def to_user(message: Message) -> None:
        user_id = next(u for u, t in topics.items() if t == message.message_thread_id)
        await bot.send_message(user_id, f"Agent: {message.html_text}")

    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=1)
    )
    try:
        ann = ChatClient(fake, ANN, settle=0.05)
        [ack] = await ann.send("I lost my job")
        assert ack.text == "An agent will reply soon"
        [topic] = fake.topics(desk)
        assert topic.name == "Case · Ann"
        max_ = ChatClient(fake, agent, chat_id=desk, message_thread_id=topic.message_thread_id, settle=0.05)
        assert [m.text for m in max_.messages] == ["I lost my job"]
        await max_.send("We can split it <into> 6 payments", expect_reply=False)
        await ann.wait_quiet()
        assert ann.last is not None and ann.last.text == "Agent: We can split it <into> 6 payments"
    finally:
        await dp.stop_polling()
        await polling
