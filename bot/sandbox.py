"""`python -m bot sandbox`: the real bot, offline, against a local fake Bot API, in this terminal.

You are the cardholder; `/desk` makes you an agent in the agents' group (a forum, one topic per
case) and `/me` the cardholder again. Without AGENT_CHAT_ID the sandbox makes a desk of its own,
so a bank can try a handoff end to end.

The prompt comes before the bot is up: most of the start-up is importing aiogram (pydantic builds
its Telegram types, seconds of CPU), which someone reading the introduction need not wait for.
A line typed meanwhile is sent once the bot is up, a start-up that fails still stops the sandbox
with its one line, and who leaves before the bot is up does not wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import re
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO, TypeVar

from sqlalchemy import func, select

from bot.db.models import Account, Case
from bot.db.schema import migrate
from bot.services.cases import OPEN, CaseService
from bot.services.demo import DEMO_ACCOUNTS, load_demo_data
from bot.settings import Settings

if TYPE_CHECKING:  # imported behind the prompt (`import_the_bot`)
    from bot.app import App
    from bot.telegram_fake import BotMessage, ChatClient, FakeTelegram

T = TypeVar("T")

SANDBOX_TOKEN = "100000:SANDBOX-offline"
SANDBOX_USER_ID = 42
SANDBOX_AGENT_ID = 4242
SANDBOX_DESK_ID = -1000000004242
AGENT_NAME = "Sandbox Agent"
LATER_SETTLE = 0.1
"""Seconds the bot must be quiet before what it sent on its own is printed."""

HELP = """Type text to send it, a button's number to press it (a link button prints its address), and:
  /contact N   share the phone of demo cardholder N (the share-phone button shares the last one chosen,
               demo cardholder 1 at first)
  /desk [N]    be an agent in the agents' desk, in the topic of case N (by default the latest case):
               press 🙋 Claim, then what you type goes to the cardholder; the desk's commands are
               /offer MONTHS [ANNUAL RATE], /note TEXT, /resolve [OUTCOME] and /queue
  /me          be the cardholder again
  /quit        leave the sandbox
A message that arrives in the chat you are not in is shown with that chat's name."""


@dataclasses.dataclass
class Running:
    fake: FakeTelegram
    app: App
    polling: asyncio.Task[None]
    closed_cases: list[int]
    """The sandbox cardholder's cases an earlier session left open, closed at this start."""


def with_desk(settings: Settings) -> tuple[Settings, int, int]:
    """The settings with an agents' desk (the sandbox's own without AGENT_CHAT_ID); the desk and the agent the terminal plays."""
    agents = settings.agent_ids or frozenset({SANDBOX_AGENT_ID})
    desk = settings.agent_chat_id if settings.agent_chat_id is not None else SANDBOX_DESK_ID
    return settings.model_copy(update={"agent_chat_id": desk, "agent_ids": agents}), desk, min(agents)


async def run_sandbox(
    settings: Settings, language_code: str = "en", stdin: TextIO | None = None, stdout: TextIO | None = None
) -> int:
    return await Terminal(settings, language_code, stdin or sys.stdin, stdout or sys.stdout).run()


def import_the_bot() -> None:
    """The modules behind the prompt: aiogram (seconds of CPU: pydantic builds its Telegram types) and aiohttp."""
    importlib.import_module("bot.telegram_fake")
    importlib.import_module("bot.app")


async def start_bot(settings: Settings, language_code: str, desk_id: int, agent_id: int) -> Running:
    """The fake Bot API with the sandbox's people and desk, and the bot polling it, with the demo
    accounts in an empty database; up once the bot asks for updates."""
    await migrate(settings.database_url)  # a demo: its database is made ready for it
    await in_daemon_thread(import_the_bot)
    from bot.app import create_app
    from bot.telegram_fake import FakeTelegram

    fake = FakeTelegram()
    base_url = await fake.start()
    fake.add_user(SANDBOX_USER_ID, first_name="Sandbox", language_code=language_code)
    first, last = AGENT_NAME.split()
    fake.add_user(agent_id, first_name=first, last_name=last, language_code=None)
    fake.add_forum_group(desk_id, title="Agents' desk")
    try:
        app = await create_app(settings.model_copy(update={"telegram_api_url": base_url}), token=SANDBOX_TOKEN)
    except BaseException:
        await fake.stop()
        raise
    polling: asyncio.Task[None] | None = None
    try:
        await load_demo_data_if_empty(app)
        closed = await close_earlier_cases(app, agent_id)
        polling = asyncio.create_task(app.start_polling(handle_signals=False))
        while not fake.polling:
            if polling.done():
                polling.result()
                raise RuntimeError("the bot stopped before it polled")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fake.change_event().wait(), 0.5)
    except BaseException:
        if polling is not None:
            polling.cancel()
            await asyncio.gather(polling, return_exceptions=True)
        await app.close()
        await fake.stop()
        raise
    return Running(fake, app, polling, closed)


async def stop_bot(running: Running) -> None:
    try:
        if not running.polling.done():
            await running.app.dispatcher.stop_polling()
        await running.polling
        await running.app.close()
    finally:
        await running.fake.stop()


async def load_demo_data_if_empty(app: App) -> None:
    async with app.session_factory() as session:
        accounts = await session.scalar(select(func.count()).select_from(Account))
    if not accounts:
        await load_demo_data(app.session_factory, now=app.clock.now())


async def close_earlier_cases(app: App, agent_id: int) -> list[int]:
    """Resolve the sandbox cardholder's cases that an earlier session left open.

    Their topics, and the messages their relays copy, were in that session's fake Telegram, which
    is gone: the bot could only fail to reach them. Only the sandbox's own chat is touched.
    """
    async with app.session_factory() as session, session.begin():
        cases = CaseService(session, app.clock)
        earlier = list(
            await session.scalars(select(Case).where(Case.chat_id == SANDBOX_USER_ID, Case.status.in_(OPEN)).order_by(Case.id))
        )
        for case in earlier:
            if case.status == "waiting":
                case = (await cases.claim(case.id, agent_id)).case
            assert case.agent_id is not None
            await cases.resolve(case, case.agent_id, "closed at a new sandbox session: its desk of then is gone")
    return [case.id for case in earlier]


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


def in_daemon_thread(work: Callable[[], T]) -> asyncio.Future[T]:
    """`work()` in a daemon thread: a sandbox left meanwhile neither waits for it nor is kept open by it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        result, error = None, None
        try:
            result = work()
        except Exception as problem:
            error = problem
        with contextlib.suppress(RuntimeError):  # the loop is closed: the sandbox has ended
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="sandbox", daemon=True).start()
    return future


class Lines:
    """The lines typed, each read when asked for: leaving never waits for one more."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def next(self) -> asyncio.Future[str]:
        return in_daemon_thread(self.stream.readline)


def brief(message: BotMessage) -> BotMessage:
    """The message with only the first line of its text, to show its buttons again."""
    first, _, rest = message.text.partition("\n")
    return dataclasses.replace(message, text=first + (" …" if rest.strip() else ""))


def case_number(topic_name: str) -> int | None:
    """The case a topic is for, from its title ("#12 · M2 · person")."""
    found = re.match(r"#(\d+)\b", topic_name)
    return int(found.group(1)) if found else None


class Terminal:
    """One person at the terminal, as the cardholder or as an agent in the desk; prints what the bot sends."""

    def __init__(self, settings: Settings, language_code: str, stdin: TextIO, stdout: TextIO) -> None:
        self.settings, self.desk_id, self.agent_id = with_desk(settings)
        self.language_code = language_code
        self.lines = Lines(stdin)
        self.out = stdout
        self.running: Running | None = None
        self.cardholder: ChatClient | None = None
        self.agent: ChatClient | None = None
        self.at_desk = False
        self.shown: dict[tuple[int, int], tuple[int, str]] = {}
        """(chat, message) → the edits and the text of it last printed."""
        self.busy = asyncio.Lock()
        self.watcher: asyncio.Task[None] | None = None

    @property
    def fake(self) -> FakeTelegram:
        assert self.running is not None, "the bot is not up yet"
        return self.running.fake

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    # ------------------------------------------------------------------ the loop

    async def run(self) -> int:
        self.settings.hash_key()  # a damaged privacy key file stops the sandbox before its prompt
        self.write(introduction() + "\n> ")
        starting = asyncio.create_task(
            start_bot(self.settings, self.language_code, self.desk_id, self.agent_id)
        )
        try:
            await self.converse(starting)
            if starting.done():
                starting.result()  # a start-up that failed is said even to one who has left
        except BaseException:
            self.write("\n")  # what stopped the sandbox is said below the prompt, not on it
            raise
        finally:
            await self.stop_watching()
            if not starting.done():
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
            elif not starting.cancelled() and starting.exception() is None:
                await stop_bot(starting.result())
        return 0

    async def converse(self, starting: asyncio.Task[Running]) -> None:
        while True:
            line = await self.next_line(starting)
            if not line:
                return
            text = line.strip()
            if not text:
                self.write("> ")
                continue
            if text == "/quit":
                return
            if self.running is None:
                if not starting.done():
                    self.write("(sandbox) the bot is still starting; this goes as soon as it is up\n")
                self.write(self.ready(await starting))
            async with self.busy:
                self.write(self.screen(await self.handle(text)))

    async def next_line(self, starting: asyncio.Task[Running]) -> str:
        """The next line typed; a start-up that fails meanwhile ends the sandbox at once."""
        line = self.lines.next()
        if not starting.done():
            await asyncio.wait({line, starting}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done() and self.running is None:
            note = self.ready(starting.result())
            if note:
                self.write(note + "> ")
        return await line

    def ready(self, running: Running) -> str:
        """Begin talking to the bot that is up; a note to print, if any."""
        from bot.telegram_fake import ChatClient

        self.running = running
        handled = running.app.updates.handled
        self.cardholder = ChatClient(
            self.fake, SANDBOX_USER_ID, timeout=30, phone=DEMO_ACCOUNTS[0]["phone"], handled=handled
        )
        self.agent = ChatClient(self.fake, self.agent_id, chat_id=self.desk_id, timeout=30, handled=handled)
        self.watcher = asyncio.create_task(self.watch())
        if running.closed_cases:
            numbers = ", ".join(f"#{number}" for number in running.closed_cases)
            one = len(running.closed_cases) == 1
            return (f"\n(sandbox) Resolved case{'' if one else 's'} {numbers}, left open by an earlier session: "
                    f"{'its topic was' if one else 'their topics were'} in that session's desk.\n")
        return ""

    async def stop_watching(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            await asyncio.gather(self.watcher, return_exceptions=True)

    @property
    def current(self) -> ChatClient:
        client = self.agent if self.at_desk else self.cardholder
        assert client is not None, "the bot is not up yet"
        return client

    # ------------------------------------------------------------------ acting

    async def handle(self, text: str) -> list[str]:
        """Do what the line says; what to print (before the prompt)."""
        command, _, argument = text.partition(" ")
        try:
            if command == "/me":
                return self.switch_to_cardholder()
            if command == "/desk":
                return self.switch_to_desk(argument.strip())
            client = self.current
            notes: list[str] = []
            if command == "/contact":
                await self.share_contact(client, argument.strip())
            elif text.isdigit() and self.has_button(client, int(text)):
                notes = await self.press(client, int(text))
            else:
                await client.send(text)
        except (AssertionError, ValueError) as problem:
            return [f"(sandbox) {problem}", *self.news(after_action=False)]
        return [*self.news(after_action=True), *notes]

    async def share_contact(self, client: ChatClient, number: str) -> None:
        if not client.is_private:
            raise AssertionError("/contact is the cardholder's: /me first")
        if not number.isdigit() or not 1 <= int(number) <= len(DEMO_ACCOUNTS):
            raise AssertionError(f"say /contact 1 to /contact {len(DEMO_ACCOUNTS)}")
        client.phone = DEMO_ACCOUNTS[int(number) - 1]["phone"]
        await client.share_contact(client.phone)

    @staticmethod
    def has_button(client: ChatClient, number: int) -> bool:
        try:
            client.button_by_number(number)
        except AssertionError:
            return False
        return True

    async def press(self, client: ChatClient, number: int) -> list[str]:
        """Press button `number`; a link button is not sent: its address is printed. Notes on what the press got."""
        url = client.url_by_number(number)
        if url is not None:
            return [f"(sandbox) «{client.button_by_number(number)}» opens {url} in the browser; the bot is not told"]
        presses = len(client.callback_ids)
        await client.press_number(number)
        answer = client.last_callback_answer if len(client.callback_ids) > presses else None
        notes = []
        if answer and answer.get("text"):
            notes.append(f"[{'alert' if answer.get('show_alert') else 'notice'}] {answer['text']}")
        if answer and answer.get("url"):
            notes.append(f"(sandbox) the press opens {answer['url']}")
        return notes

    def switch_to_cardholder(self) -> list[str]:
        self.at_desk = False
        return ["(sandbox) You are the cardholder again.", *self.recent(), *self.news(after_action=False)]

    def switch_to_desk(self, argument: str) -> list[str]:
        agent = self.agent
        assert agent is not None
        thread = self.pick_topic(argument)
        agent.message_thread_id = thread
        self.at_desk = True
        where = f"agent {self.agent_id}, {AGENT_NAME}, in the agents' desk"
        if thread is None:
            header = (f"(sandbox) You are {where}; no case has a topic yet: as the cardholder (/me), "
                      "ask for a person. /me: back to the cardholder.")
        else:
            header = (f"(sandbox) You are {where}, topic “{self.topic_name(thread)}”. Once you have claimed the "
                      "case (🙋 Claim), what you type here goes to the cardholder. /me: back to the cardholder.")
        return [header, *self.recent(), *self.news(after_action=False)]

    def pick_topic(self, argument: str) -> int | None:
        """The topic of case `argument`, or (no argument) of the latest open case's: the one last written in."""
        topics = [topic for topic in self.fake.topics(self.desk_id) if not topic.deleted]
        if argument:
            if not argument.isdigit():
                raise AssertionError("say /desk, or /desk N for case N")
            for topic in topics:
                if case_number(topic.name) == int(argument):
                    return topic.message_thread_id
            names = ", ".join(f"“{topic.name}”" for topic in topics) or "none yet"
            raise AssertionError(f"no topic for case {argument} in the desk; its topics: {names}")
        open_topics = {topic.message_thread_id for topic in topics if not topic.closed}
        threads = [m.message_thread_id for m in self.fake.bot_messages(self.desk_id) if m.message_thread_id is not None]
        return ([thread for thread in threads if thread in open_topics] or threads or [None])[-1]

    # ------------------------------------------------------------------ printing

    def screen(self, parts: list[str]) -> str:
        return "".join(f"\n{part}\n" for part in parts) + "> "

    def in_view(self, message: BotMessage) -> bool:
        client = self.current
        if message.chat_id != client.chat_id:
            return False
        return client.is_private or message.message_thread_id == client.message_thread_id

    def topic_name(self, thread: int | None) -> str | None:
        for topic in self.fake.topics(self.desk_id):
            if topic.message_thread_id == thread:
                return topic.name
        return None

    def where(self, message: BotMessage) -> str:
        """Which chat a message is in, for one printed outside it."""
        if message.chat_id == SANDBOX_USER_ID:
            return "in the cardholder's chat (/me)"
        name = self.topic_name(message.message_thread_id)
        if name is None:
            return "in the agents' desk"
        number = case_number(name)
        return f"in the agents' desk, topic “{name}”" + (f" (/desk {number})" if number is not None else "")

    def unseen(self) -> list[BotMessage]:
        """The bot's messages, in both chats, not printed yet or edited since; they count as printed now.

        An edit that changed only the buttons comes in brief: the text was printed already.
        """
        from bot.telegram_fake import BotMessage

        new = []
        for chat_id in (SANDBOX_USER_ID, self.desk_id):
            for stored in sorted(self.fake.chat(chat_id).messages.values(), key=lambda m: m.message_id):
                if not stored.from_bot or stored.deleted or stored.kind == "service":
                    continue
                key = (chat_id, stored.message_id)
                printed = self.shown.get(key)
                if printed is not None and printed[0] == stored.edits:
                    continue
                message = BotMessage.from_stored(stored)
                self.shown[key] = (message.edits, message.text)
                new.append(brief(message) if printed is not None and printed[1] == message.text else message)
        return new

    def news(self, after_action: bool) -> list[str]:
        """What is new: other chats' messages named by their chat, then this chat's, its buttons numbered.

        After an action the numbering starts again from what it answered; a message that came on
        its own renumbers only when it brings buttons.
        """
        from bot.telegram_fake import render_message

        new = self.unseen()
        here = [message for message in new if self.in_view(message)]
        parts = [render_message(message, start=None, where=self.where(message)) for message in new if not self.in_view(message)]
        if here and (after_action or any(message.labels for message in here)):
            parts.append(self.current.render_many(here))
        else:
            parts += [render_message(message, start=None) for message in here]
        return parts

    def recent(self) -> list[str]:
        """On switching chats: the latest message with buttons (or the latest), in brief, numbered as
        the next press expects; every message of the chat counts as printed."""
        messages = [message for message in self.current.messages if self.in_view(message) and not message.deleted]
        for message in messages:
            self.shown[(message.chat_id, message.message_id)] = (message.edits, message.text)
        if not messages:
            return ["(no messages here yet)"]
        target = next((message for message in reversed(messages) if message.labels), messages[-1])
        return [self.current.render_many([brief(target)])]

    async def watch(self) -> None:
        """Print what the bot sends on its own (a relayed reply, a reminder) once it is quiet, then the prompt."""
        fake = self.fake
        while True:
            await fake.change_event().wait()
            while not self.quiet():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(fake.change_event().wait(), LATER_SETTLE)
            if self.busy.locked():
                continue
            async with self.busy:
                parts = self.news(after_action=False)
                if parts:
                    self.write(self.screen(parts))

    def quiet(self) -> bool:
        fake, running = self.fake, self.running
        assert running is not None
        handled = fake.last_update_id == 0 or running.app.updates.handled(fake.last_update_id)
        idle_for = asyncio.get_running_loop().time() - fake.last_activity
        return fake.in_flight == 0 and fake.all_fetched() and handled and idle_for >= LATER_SETTLE
