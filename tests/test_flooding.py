"""Flooding: one chat sending far too fast is throttled and told once; the others hardly notice."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from sqlalchemy import event, func, select

from bot.app import App
from bot.db.models import AuditEvent
from bot.i18n import ChatLocaleMiddleware, create_i18n
from bot.middlewares import FloodThrottle
from bot.telegram_fake import FakeTelegram
from bot.telegram_fake.crowd import CrowdReport, run_crowd, settle_debt
from tests.test_many_at_once import start_bot, stop_bot

CROWD = 20
FLOOD_PER_SECOND = 50
FLOOD_SECONDS = 2.0
TOO_FAST = {"en": "faster than I can read them", "ru": "быстрее, чем я успеваю"}


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def throttle(rate: float = 1.0, burst: int = 3, remembered: int = 100) -> tuple[FloodThrottle, Ticks]:
    ticks = Ticks()
    i18n = create_i18n("en")
    return FloodThrottle(rate, burst, i18n, ChatLocaleMiddleware(i18n).choose_locale, remembered=remembered, now=ticks), ticks


def test_a_burst_then_the_sustained_rate_then_a_new_episode_once_the_bucket_is_full() -> None:
    limiter, ticks = throttle(rate=2.0, burst=3)
    key = (1, 1)
    assert [limiter.admit(key)[0] for _ in range(4)] == [True, True, True, False]
    ticks.now += 0.5  # one token at two a second
    assert [limiter.admit(key)[0] for _ in range(2)] == [True, False]
    bucket = limiter.admit(key)[1]
    bucket.warned = True
    ticks.now += 1.0  # two tokens: not full, the flood is not over
    assert limiter.admit(key)[0] and bucket.warned
    ticks.now += 10.0
    assert limiter.admit(key)[0] and not bucket.warned
    assert limiter.admit((2, 2))[0], "another chat has a bucket of its own"


def test_the_buckets_are_bounded_and_the_least_recently_seen_goes_first() -> None:
    limiter, _ticks = throttle(burst=1, remembered=100)
    limiter.admit((0, 0))
    for chat in range(1, 10_000):
        limiter.admit((chat, chat))
        limiter.admit((0, 0))  # the flooding chat stays in memory, empty
    assert len(limiter.buckets) == 100
    assert limiter.admit((0, 0))[0] is False


def p99(report: CrowdReport) -> float:
    latencies = sorted(value for values in report.latencies.values() for value in values)
    assert latencies
    return latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]


async def flood(fake: FakeTelegram, user_id: int, text: str = "/help") -> list[int]:
    """FLOOD_PER_SECOND messages a second for FLOOD_SECONDS, on schedule; their update ids."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    ids = []
    for index in range(int(FLOOD_PER_SECOND * FLOOD_SECONDS)):
        await asyncio.sleep(max(0.0, began + index / FLOOD_PER_SECOND - loop.time()))
        fake.user_sends_text(user_id, text)
        ids.append(fake.last_update_id)
    return ids


async def inbound(app: App, chat_id: int) -> int:
    async with app.session_factory() as session:
        count = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.chat_id == chat_id, AuditEvent.direction == "in")
        )
    return int(count or 0)


def texts(fake: FakeTelegram, chat_id: int) -> list[str]:
    return [message.text for message in fake.bot_messages(chat_id)]


@pytest.mark.slow  # a whole process or a crowd: `make test-slow`
async def test_a_flooding_chat_is_told_once_and_the_others_are_barely_slowed(
    fake: FakeTelegram, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app, waiter, polling, people = await start_bot(fake, database_url, 2 * CROWD + 1)
    caplog.set_level(logging.WARNING)
    flooder = 1
    fake.add_user(flooder, first_name="Flood", language_code="en")
    try:
        warm = await run_crowd(fake, waiter, people[:1], settle_debt)
        quiet = await run_crowd(fake, waiter, people[1 : CROWD + 1], settle_debt)
        flood_ids, loud = await asyncio.gather(
            flood(fake, flooder), run_crowd(fake, waiter, people[CROWD + 1 :], settle_debt)
        )
        for update_id in flood_ids:
            await waiter.wait(update_id)
        accepted = await inbound(app, flooder)
    finally:
        await stop_bot(app, polling)
    said = texts(fake, flooder)
    notices = [text for text in said if TOO_FAST["en"] in text]
    quiet_p99, loud_p99 = p99(quiet), p99(loud)
    print(f"\ncrowd p99 without the flood {quiet_p99:.3f}s, with it {loud_p99:.3f}s; flood accepted {accepted} of {len(flood_ids)}")
    assert warm.completed == 1 and quiet.completed == CROWD and loud.completed == CROWD, (quiet.unanswered, loud.unanswered)
    assert loud.unanswered_total == 0
    assert len(notices) == 1
    burst, rate = app.settings.flood_burst, app.settings.flood_rate
    assert burst <= accepted <= burst + rate * (FLOOD_SECONDS + 1) + 1
    assert len(said) == accepted + 1, "every accepted message is answered, and the notice is the only other message"
    assert loud_p99 <= 2 * quiet_p99 + 0.5
    assert [record.getMessage() for record in caplog.records] == []


async def test_dropped_updates_cost_no_query_and_a_dropped_button_press_is_answered(
    fake: FakeTelegram, database_url: str
) -> None:
    """The notice is in the language the chat chose (here Russian, on an English Telegram)."""
    app, waiter, polling, _people = await start_bot(fake, database_url, flood_burst=3, flood_rate=0.01)
    statements: list[str] = []
    event.listen(app.engine.sync_engine, "before_cursor_execute", lambda _c, _cur, sql, *_: statements.append(sql))
    person = 2
    fake.add_user(person, first_name="Ivan", language_code="en")

    async def send(act: Any) -> None:
        act()
        await waiter.wait(fake.last_update_id)

    try:
        await send(lambda: fake.user_sends_text(person, "/start"))
        await send(lambda: fake.user_sends_text(person, "/language"))
        choice = fake.bot_messages(person)[-1].message_id
        await send(lambda: fake.user_presses(person, choice, "lang:ru"))
        await send(lambda: fake.user_sends_text(person, "/help"))  # dropped: told to slow down
        statements.clear()
        for _ in range(5):
            await send(lambda: fake.user_sends_text(person, "/help"))
        query = fake.user_presses(person, choice, "lang:en", forged=True)
        await waiter.wait(fake.last_update_id)
        # The background jobs (the courier's rounds, their leases) query beside the updates.
        while_dropping = [sql for sql in statements if "job_leases" not in sql and "outbox" not in sql]
    finally:
        await stop_bot(app, polling)
    said = texts(fake, person)
    assert [TOO_FAST["ru"] in text for text in said].count(True) == 1 and TOO_FAST["ru"] in said[-1]
    assert while_dropping == [], "a dropped update opens no session"
    assert fake.callback_answer(query) is not None
