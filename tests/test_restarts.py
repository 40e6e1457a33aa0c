"""The bot process is killed (SIGKILL) at random moments of many journeys and started again.

`python -m bot run` runs as its own process on one SQLite file against the fake Bot API; a killer
kills it `RESTART_KILLS` times (default 4) while `RESTART_JOURNEYS` cardholders (default 10) settle
their debt. Each cardholder acts as a person does: from the bot's last message they take the next
step, and when the bot stays silent they do the step again. Every journey must end with the
confirmation, one arrangement each, and no apology.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from bot.db.engine import create_engine
from bot.db.models import Account, Arrangement
from bot.telegram_fake import FakeTelegram
from bot.telegram_fake.crowd import Cardholder, account_rows, birth_date_text, button_of, cardholders
from tests.conftest import BOT_TOKEN, prepare_database

pytestmark = [pytest.mark.database, pytest.mark.slow]  # a campaign: `make test-slow`, run by .ci/run

JOURNEYS = int(os.environ.get("RESTART_JOURNEYS", "10"))
KILLS = int(os.environ.get("RESTART_KILLS", "4"))
SILENCE = 4.0
"""Seconds a person waits for an answer before doing the step again."""
DONE = "Done: your arrangement is recorded"
APOLOGY = "Sorry, something went wrong"


class BotProcess:
    def __init__(self, fake: FakeTelegram, database_url: str, folder: Path) -> None:
        self.fake = fake
        self.env = {
            **os.environ,
            "BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_API_URL": fake.base_url or "",
            "DATABASE_URL": database_url,
            "PRIVACY_KEY": "restarts-test-key-0123456789abcdef0123",
            "OUTBOX_GRACE_SECONDS": "2",
            "OUTBOX_EVERY_SECONDS": "0.5",
            "LOG_LEVEL": "WARNING",
            "FLOOD_BURST": "1000",  # the scripted people act at machine speed; tests/test_flooding.py throttles
        }
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    async def start(self) -> None:
        generation = self.fake.poll_generation
        self.starts += 1
        with (self.folder / f"bot-{self.starts}.log").open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "run"], env=self.env, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT
            )
        while self.fake.poll_generation == generation:
            assert self.process.poll() is None, (self.folder / f"bot-{self.starts}.log").read_text()
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in sorted(self.folder.glob("bot-*.log")))


def next_step(fake: FakeTelegram, person: Cardholder) -> None:
    """What a person does next, reading the bot's last message."""
    uid = person.user_id
    messages = [stored.payload for stored in fake.chat(uid).messages.values() if stored.from_bot and not stored.deleted]
    last = messages[-1] if messages else {}
    text = last.get("text") or ""
    accept = button_of([last], "offer:accept:")
    plan = button_of([last], "offer:view:", last=True)
    if accept is not None:
        fake.user_presses(uid, *accept)
    elif plan is not None:
        fake.user_presses(uid, *plan)
    elif "date of birth" in text:
        fake.user_sends_text(uid, birth_date_text(person.birth_date))
    elif "confirm it" in text or "Share my phone" in text:
        fake.user_shares_contact(uid, person.phone)
    elif any("verified" in (message.get("text") or "") for message in messages):
        fake.user_sends_text(uid, "/plans")
    else:
        fake.user_sends_text(uid, "/start")


def confirmed(fake: FakeTelegram, uid: int) -> int:
    return sum(1 for stored in fake.chat(uid).messages.values() if stored.from_bot and DONE in (stored.payload.get("text") or ""))


async def settle_like_a_person(fake: FakeTelegram, person: Cardholder, deadline: float) -> int:
    """Steps taken until the confirmation arrived."""
    loop = asyncio.get_running_loop()
    steps = 0
    while not confirmed(fake, person.user_id):
        assert loop.time() < deadline, f"{person.user_id} got no confirmation"
        seen = len(fake.chat(person.user_id).messages)
        next_step(fake, person)
        steps += 1
        waited = 0.0
        while len(fake.chat(person.user_id).messages) <= seen + 1 and waited < SILENCE:
            await asyncio.sleep(0.05)
            waited += 0.05
        await asyncio.sleep(0.2)  # the rest of the answer
    return steps


async def test_journeys_survive_the_bot_being_killed_at_random_moments(fake: FakeTelegram, tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'restarts.sqlite3'}"
    people = cardholders(JOURNEYS)
    await prepare_database(database_url)
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(insert(Account), account_rows(people))
    for person in people:
        fake.add_user(person.user_id, first_name="Restart", language_code="en")
    bot = BotProcess(fake, database_url, tmp_path)
    rng = random.Random(7)
    loop = asyncio.get_running_loop()
    await bot.start()
    try:
        deadline = loop.time() + 90 + KILLS * 20  # a start-up takes 2 s on a quiet machine, 10 s on a busy one
        journeys = asyncio.gather(*(settle_like_a_person(fake, person, deadline) for person in people))
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.3, 2.0))
            bot.kill()
            await bot.start()
        steps = await journeys
    finally:
        bot.stop()
    async with engine.connect() as connection:
        arrangements = Counter((await connection.execute(select(Arrangement.account_pk))).scalars())
    await engine.dispose()

    confirmations = [confirmed(fake, person.user_id) for person in people]
    print(f"\n{JOURNEYS} journeys, {KILLS} kills, {sum(steps)} steps taken, "
          f"confirmations {Counter(confirmations)}, arrangements {len(arrangements)}")
    assert len(arrangements) == JOURNEYS and set(arrangements.values()) == {1}, "nothing accepted lost or doubled"
    assert min(confirmations) >= 1
    apologies = [p.user_id for p in people for s in fake.chat(p.user_id).messages.values() if s.from_bot and APOLOGY in (s.payload.get("text") or "")]
    assert apologies == []
    assert "Traceback" not in bot.logs()
