"""The offline sandbox, driven as a person at the terminal would: lines typed in, the screen read.

The sandbox runs in this process with its own fake Telegram and a database file of its own; the
test types a line and waits for the prompt that follows the bot's answer.
"""

from __future__ import annotations

import asyncio
import io
import queue
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from benchmarks.sandbox_startup import launch
from bot.db import create_engine, create_session_factory
from bot.db.models import Case
from bot.sandbox import SANDBOX_AGENT_ID, SANDBOX_USER_ID, Terminal
from bot.settings import load_settings

WAIT = 60.0
"""Seconds a line's answer may take, start-up included (a busy machine takes several)."""


class Keyboard(io.TextIOBase):
    """The terminal's input: `readline` waits for the next line the test types."""

    def __init__(self) -> None:
        self.lines: queue.Queue[str] = queue.Queue()

    def readline(self, size: int | None = -1) -> str:
        return self.lines.get()


class Session:
    """A sandbox at a terminal: what is typed, and everything printed."""

    def __init__(self, tmp_path: Path) -> None:
        self.database_url = f"sqlite+aiosqlite:///{tmp_path / 'sandbox.sqlite3'}"
        settings = load_settings(_env_file=None, database_url=self.database_url, privacy_key_file=tmp_path / "privacy.key")
        self.keyboard = Keyboard()
        self.screen = io.StringIO()
        self.terminal = Terminal(settings, "en", self.keyboard, self.screen)
        self.task: asyncio.Task[int] | None = None

    async def start(self) -> str:
        self.task = asyncio.create_task(self.terminal.run())
        return await self.until_prompt(0)

    async def type(self, line: str) -> str:
        """Type a line; what was printed up to the prompt after the answer."""
        start = len(self.screen.getvalue())
        self.keyboard.lines.put(line + "\n")
        return await self.until_prompt(start)

    async def until_prompt(self, start: int) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            printed = self.screen.getvalue()[start:]
            if printed.endswith("> ") and printed.strip() not in ("", ">"):
                return printed
            assert self.task is not None
            if self.task.done():
                self.task.result()
                raise AssertionError(f"the sandbox ended:\n{printed}")
            assert loop.time() < deadline, f"no prompt within {WAIT}s; printed:\n{printed}"
            await asyncio.sleep(0.01)

    async def quit(self) -> int:
        self.keyboard.lines.put("/quit\n")
        assert self.task is not None
        return await asyncio.wait_for(self.task, WAIT)

    async def cases(self) -> list[Case]:
        engine = create_engine(self.database_url)
        try:
            async with create_session_factory(engine)() as session:
                return list(await session.scalars(select(Case).order_by(Case.id)))
        finally:
            await engine.dispose()


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Session]:
    session = Session(tmp_path)
    await session.start()
    yield session
    if session.task is not None and not session.task.done():
        assert await session.quit() == 0


async def signed_in(sandbox: Session) -> None:
    """Demo cardholder 1 verified: /start, the share-phone button, the birth date."""
    await sandbox.type("/start")
    await sandbox.type("1")
    assert "you are verified" in await sandbox.type("1985-03-07")


def numbered(screen: str, label: str) -> str:
    """The number the screen gives the button whose label starts with `label`."""
    for line in reversed(screen.splitlines()):
        for cell in line.split("  "):
            cell = cell.strip()
            if cell.startswith("[") and "] " in cell and cell.split("] ", 1)[1].startswith(label):
                return cell[1:cell.index("]")]
    raise AssertionError(f"no button {label!r} on the screen:\n{screen}")


async def test_a_link_button_shows_its_address_and_pressing_it_prints_it_then_the_prompt(sandbox: Session) -> None:
    await signed_in(sandbox)
    plans = await sandbox.type("/plans")
    pay = next(line for line in plans.splitlines() if "Pay CN¥25,671.00 now" in line)
    assert "→ https://pay.example-bank.com/" in pay, pay

    pressed = await sandbox.type(numbered(plans, "💳 Pay"))
    assert "opens https://pay.example-bank.com/card?account=DEMO-CN-0001&amount=25671.00" in pressed
    assert pressed.endswith("\n> ")
    assert "Installment plan" in await sandbox.type(numbered(plans, "3 months")), "the numbers still press the list's buttons"


async def test_a_handoff_tried_from_both_sides(sandbox: Session) -> None:
    await signed_in(sandbox)
    asked = await sandbox.type("/agent")
    assert "You are number 1 in the queue" in asked
    assert "in the agents' desk, topic “#1 · M2 · person” (/desk 1)" in asked, "the card is shown with its chat"

    desk = await sandbox.type("/desk")
    assert f"You are agent {SANDBOX_AGENT_ID}" in desk and "topic “#1 · M2 · person”" in desk
    claimed = await sandbox.type(numbered(desk, "🙋 Claim"))
    assert "Claimed by Sandbox Agent" in claimed
    assert "[1] ✅ Resolve" in claimed
    assert "in the cardholder's chat (/me)]\nA person from the bank has joined this chat." in claimed

    replied = await sandbox.type("Hello, this is Anna from the bank. How can I help?")
    assert "in the cardholder's chat (/me)]\nHello, this is Anna from the bank. How can I help?" in replied
    offered = await sandbox.type("/offer 12")
    assert "Offer sent: 12 months, 12 monthly payments of CN¥2,304.80" in offered
    assert "in the cardholder's chat (/me)]\nA person from the bank offers you this plan:" in offered

    back = await sandbox.type("/me")
    assert "You are the cardholder again." in back
    assert "[1] ✅ Accept" in back, "the offer's buttons are numbered for the cardholder"
    written = await sandbox.type("Thank you, I will think about it")
    assert "in the agents' desk, topic “#1 · M2 · person” (/desk 1)]\nThank you, I will think about it" in written

    case, = await sandbox.cases()
    assert case.status == "claimed" and case.agent_id == SANDBOX_AGENT_ID and case.chat_id == SANDBOX_USER_ID


async def test_a_message_that_comes_on_its_own_is_printed_with_the_prompt_again(sandbox: Session) -> None:
    await sandbox.type("/start")
    running = sandbox.terminal.running
    assert running is not None
    start = len(sandbox.screen.getvalue())
    await running.app.bot.send_message(SANDBOX_USER_ID, "A reminder from the bank")
    later = await sandbox.until_prompt(start)
    assert "A reminder from the bank" in later and later.endswith("> ")

    desk_start = len(sandbox.screen.getvalue())
    await running.app.bot.send_message(sandbox.terminal.desk_id, "Good morning, agents")
    assert "[bot #1, in the agents' desk]\nGood morning, agents" in await sandbox.until_prompt(desk_start)


async def test_desk_commands_say_what_is_wrong(sandbox: Session) -> None:
    await sandbox.type("/start")
    assert "no case has a topic yet" in await sandbox.type("/desk")
    assert "/contact is the cardholder's: /me first" in await sandbox.type("/contact 1")
    assert "no topic for case 7 in the desk" in await sandbox.type("/desk 7")
    assert "You are the cardholder again." in await sandbox.type("/me")


async def test_a_case_an_earlier_session_left_open_is_resolved_at_the_next(tmp_path: Path) -> None:
    first = Session(tmp_path)
    await first.start()
    await signed_in(first)
    await first.type("/agent")
    assert await first.quit() == 0

    again = Session(tmp_path)
    await again.start()
    greeted = await again.type("/start")
    assert "Resolved case #1, left open by an earlier session" in greeted
    asked = await again.type("/agent")
    assert "topic “#2 · M2 · person”" in asked, "a new case, in this session's desk"
    assert await again.quit() == 0
    assert [case.status for case in await again.cases()] == ["resolved", "waiting"]


@pytest.mark.slow  # a whole process or a crowd: `make test-slow`
async def test_the_prompt_comes_before_the_bot_is_up(tmp_path: Path) -> None:
    """`python -m bot sandbox` prints its first prompt having used well under 3 s of CPU, long before
    the bot is up; benchmarks/sandbox_startup.py, whose launch this is, prints the figures."""
    run = await launch(tmp_path, cache=None)
    assert run.prompt < run.answer / 2, run
    if run.prompt_cpu is not None:
        assert run.prompt_cpu < 3.0, run
