"""Many cardholders at once, and one unit of work per update: on SQLite and on PostgreSQL.

These are correctness tests, not timings: `benchmarks/journey.py` measures the speed.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.methods import TelegramMethod
from sqlalchemy import event, func, insert, select
from sqlalchemy.engine import make_url

from bot.app import App, create_app
from bot.clock import ManualClock
from bot.db.engine import BACKGROUND_CONNECTIONS
from bot.db.models import Account, Arrangement, AuditEvent, ChatProfile
from bot.settings import load_settings
from bot.telegram_fake import FakeTelegram
from bot.telegram_fake.crowd import Cardholder, UpdateWaiter, account_rows, cardholders, run_crowd, settle_debt
from tests.conftest import BOT_TOKEN

CROWD = 200


@pytest.fixture(params=["database_url", "postgres_url"], ids=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(request.param)


async def start_bot(
    fake: FakeTelegram, database_url: str, crowd: int = 0, **overrides: Any
) -> tuple[App, UpdateWaiter, asyncio.Task[None], list[Cardholder]]:
    """The bot, polling, with accounts for a crowd of `crowd` cardholders loaded before it starts."""
    settings = load_settings(
        _env_file=None, bot_token=BOT_TOKEN, telegram_api_url=fake.base_url, database_url=database_url, **overrides
    )
    app = await create_app(settings, clock=ManualClock())
    people = cardholders(crowd)
    async with app.session_factory() as session, session.begin():
        if people:
            await session.execute(insert(Account), account_rows(people, app.clock.now()))
    waiter = UpdateWaiter(app.dispatcher)
    polling = asyncio.create_task(app.start_polling(handle_signals=False, polling_timeout=1))
    return app, waiter, polling, people


async def stop_bot(app: App, polling: asyncio.Task[None]) -> None:
    await app.dispatcher.stop_polling()
    await polling
    await app.close()


@pytest.mark.slow  # a whole process or a crowd: `make test-slow`
@pytest.mark.database
async def test_two_hundred_cardholders_at_once_each_settle_once(
    fake: FakeTelegram, database_url: str, harness_redis_url: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    """On SQLite here; on PostgreSQL and Redis under TEST_BACKEND=postgres (`make test-postgres`)."""
    await crowd_settles(fake, database_url, caplog, CROWD, redis_url=harness_redis_url)


async def test_a_crowd_through_four_updates_at_a_time_waits_and_settles(
    fake: FakeTelegram, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Far more chats than updates in flight (and than pooled connections): they wait, none fails."""
    await crowd_settles(fake, database_url, caplog, 40, max_concurrent_updates=4)


async def crowd_settles(fake: FakeTelegram, url: str, caplog: pytest.LogCaptureFixture, count: int, **overrides: Any) -> None:
    app, waiter, polling, people = await start_bot(fake, url, count, **overrides)
    caplog.set_level(logging.WARNING)
    try:
        report = await run_crowd(fake, waiter, people, settle_debt)
        async with app.session_factory() as session:
            verified = await session.scalar(select(func.count()).select_from(ChatProfile).where(ChatProfile.account_pk.is_not(None)))
            per_account = (
                await session.execute(select(Arrangement.account_pk, func.count()).group_by(Arrangement.account_pk))
            ).all()
            apologies = await session.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.payload.like("Sorry, something went wrong%"))
            )
    finally:
        await stop_bot(app, polling)
    assert report.completed == count, report.unanswered
    assert report.unanswered_total == 0
    assert verified == count
    assert len(per_account) == count and all(count == 1 for _, count in per_account)
    assert apologies == 0
    problems = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert problems == []


async def test_the_pool_is_sized_from_the_bound_on_updates_in_flight(fake: FakeTelegram, url: str) -> None:
    settings = load_settings(
        _env_file=None, bot_token=BOT_TOKEN, telegram_api_url=fake.base_url, database_url=url, max_concurrent_updates=3
    )
    app = await create_app(settings, clock=ManualClock())
    try:
        assert app.updates.limit == 3
        assert app.engine.pool.size() == 3 + BACKGROUND_CONNECTIONS  # type: ignore[attr-defined]
        assert app.engine.pool._max_overflow == 0  # type: ignore[attr-defined]
    finally:
        await app.close()


class WriteLockProbe(BaseRequestMiddleware):
    """Runs right before each HTTP call to Telegram: is the SQLite database write-locked now?"""

    def __init__(self, path: str) -> None:
        self.path = path
        self.locked_during: list[str] = []
        self.done_without_arrangement = 0
        self.calls = 0

    async def __call__(self, make_request: Callable[..., Awaitable[Any]], bot: Bot, method: TelegramMethod[Any]) -> Any:
        if method.__api_method__ in ("getUpdates", "getMe"):  # the poller's, made beside the updates, not by one
            return await make_request(bot, method)
        self.calls += 1
        probe = sqlite3.connect(self.path, timeout=0)
        try:
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
            except sqlite3.OperationalError:
                self.locked_during.append(method.__api_method__)
            text = getattr(method, "text", None) or ""
            if text.startswith("Done: your arrangement is recorded"):
                if probe.execute("SELECT count(*) FROM arrangements").fetchone()[0] == 0:
                    self.done_without_arrangement += 1
        finally:
            probe.close()
        return await make_request(bot, method)


async def test_nothing_is_said_inside_a_write_transaction_and_a_plan_is_durable_before_done(
    fake: FakeTelegram, database_url: str
) -> None:
    """One cardholder at a time, so a write lock seen during a call can only be the update's own."""
    app, waiter, polling, people = await start_bot(fake, database_url, 3, max_concurrent_updates=1)
    probe = WriteLockProbe(make_url(database_url).database or "")
    app.bot.session.middleware(probe)
    try:
        for person in people:
            report = await run_crowd(fake, waiter, [person], settle_debt)
            assert report.completed == 1, report.unanswered
    finally:
        await stop_bot(app, polling)
    assert probe.calls > 20
    assert probe.locked_during == []
    assert probe.done_without_arrangement == 0


async def test_the_state_is_read_once_and_written_only_when_it_changed(fake: FakeTelegram, database_url: str) -> None:
    app, waiter, polling, [person] = await start_bot(fake, database_url, 1)
    statements: list[str] = []
    event.listen(app.engine.sync_engine, "before_cursor_execute", lambda _c, _cur, sql, *_: statements.append(sql))
    try:
        fake.add_user(person.user_id, first_name="Crowd", language_code="en")

        async def update(act: Callable[[], Any]) -> list[str]:
            statements.clear()
            act()
            await waiter.wait(fake.last_update_id)
            return [sql for sql in statements if "fsm_records" in sql]

        starting = await update(lambda: fake.user_sends_text(person.user_id, "/start"))
        again = await update(lambda: fake.user_sends_text(person.user_id, "/help"))
    finally:
        await stop_bot(app, polling)
    # A new chat: the chat's query finds no chat, so the state is read on its own.
    assert sum(sql.lstrip().upper().startswith("SELECT") for sql in starting) == 2
    assert sum(sql.lstrip().upper().startswith("INSERT") for sql in starting) == 1  # /start asks for the phone
    # A known chat: the state comes with the chat, its account and its case, in one query.
    reads = [sql for sql in again if sql.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 1 and "FROM chats" in reads[0], reads
    assert not any(sql.lstrip().upper().startswith("INSERT") for sql in again)  # /help leaves the state as it was
