"""`python -m bot sandbox`: the real bot, offline, against a local fake Bot API; you are the cardholder."""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy import func, select

from bot.app import App, create_app
from bot.db.models import Account
from bot.db.schema import migrate
from bot.services.demo import DEMO_ACCOUNTS, load_demo_data
from bot.settings import Settings
from bot.telegram_fake import BotMessage, ChatClient, FakeTelegram

SANDBOX_TOKEN = "100000:SANDBOX-offline"
SANDBOX_USER_ID = 42

HELP = """Type text to send it, a button's number to press it, and:
  /contact N   share the phone of demo cardholder N (the share-phone button shares the last one chosen,
               demo cardholder 1 at first)
  /quit        leave the sandbox"""


async def run_sandbox(settings: Settings, language_code: str = "en") -> int:
    fake = FakeTelegram()
    base_url = await fake.start()
    settings = settings.model_copy(update={"telegram_api_url": base_url})
    await migrate(settings.database_url)  # a demo: its database is made ready for it
    app = await create_app(settings, token=SANDBOX_TOKEN)
    polling = asyncio.create_task(
        app.start_polling(handle_signals=False)
    )
    try:
        await load_demo_data_if_empty(app)
        fake.add_user(SANDBOX_USER_ID, first_name="Sandbox", language_code=language_code)
        client = ChatClient(
            fake, SANDBOX_USER_ID, timeout=30, phone=DEMO_ACCOUNTS[0]["phone"], handled=app.updates.handled
        )
        print(introduction(), end="\n> ", flush=True)
        await converse(client)
    finally:
        await app.dispatcher.stop_polling()
        await polling
        await app.close()
        await fake.stop()
    return 0


async def load_demo_data_if_empty(app: App) -> None:
    async with app.session_factory() as session:
        accounts = await session.scalar(select(func.count()).select_from(Account))
    if not accounts:
        await load_demo_data(app.session_factory, now=app.clock.now())


def introduction() -> str:
    lines = ["Sandbox: you are a cardholder talking to the bot. Demo cardholders:"]
    for number, account in enumerate(DEMO_ACCOUNTS, start=1):
        lines.append(
            f"  {number}. phone {account['phone']}, born {account['birth_date']}, "
            f"{account['currency']}, {account['days_past_due']} days past due"
            + (f", jurisdiction {account['jurisdiction']}" if account["jurisdiction"] else "")
        )
    lines += [HELP, "Start with /start."]
    return "\n".join(lines)


async def converse(client: ChatClient) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        text = line.strip()
        if not text:
            continue
        if text == "/quit":
            return
        try:
            replies = await act(client, text)
        except AssertionError as problem:
            print(f"(sandbox) {problem}")
            continue
        show(client, replies)


async def act(client: ChatClient, text: str) -> list[BotMessage]:
    if text.startswith("/contact"):
        _, _, number = text.partition(" ")
        if not number.strip().isdigit() or not 1 <= int(number) <= len(DEMO_ACCOUNTS):
            raise AssertionError(f"say /contact 1 to /contact {len(DEMO_ACCOUNTS)}")
        client.phone = DEMO_ACCOUNTS[int(number) - 1]["phone"]
        return await client.share_contact(client.phone)
    if text.isdigit() and client.last is not None:
        try:
            client.button_by_number(int(text))
        except AssertionError:
            return await client.send(text)
        return await client.press_number(int(text))
    return await client.send(text)


def show(client: ChatClient, replies: list[BotMessage]) -> None:
    for reply in replies[:-1]:
        print(f"\n{reply.text}")
    if replies:
        print("\n" + client.render(replies[-1]))
    print("> ", end="", flush=True)
