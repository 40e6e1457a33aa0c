"""Test harness: the real bot, polling over HTTP against the fake Bot API, on a real database."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import App, create_app
from bot.clock import ManualClock
from bot.db import create_engine, create_schema, create_session_factory
from bot.db.models import Account
from bot.settings import Settings, load_settings
from bot.telegram_fake import ChatClient, FakeTelegram

BOT_TOKEN = "123456:TEST-token_for-fake"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def make_account(**overrides: Any) -> Account:
    values: dict[str, Any] = {
        "account_id": "ACC-1",
        "full_name": "Li Wei",
        "phone": "+8613800138000",
        "birth_date": date(1985, 3, 7),
        "card_last4": "4321",
        "currency": "CNY",
        "statement_balance": Decimal("15000.00"),
        "overdue_amount": Decimal("12345.60"),
        "minimum_due": Decimal("1500.00"),
        "days_past_due": 45,
        "late_fee": Decimal("75.00"),
        "daily_interest_rate": Decimal("0.0005"),
        "locale": "zh_CN",
        "timezone": "Asia/Shanghai",
        "balance_version": 1,
        "updated_at": datetime.now(timezone.utc),
    }
    values.update(overrides)
    return Account(**values)


async def add_accounts(session_factory: async_sessionmaker[AsyncSession], *accounts: Account) -> None:
    async with session_factory() as session, session.begin():
        session.add_all(accounts)


class BotHarness:
    """Runs the bot like production (polling, HTTP) and hands out cardholders to talk to it."""

    def __init__(self, fake: FakeTelegram, settings: Settings, clock: ManualClock) -> None:
        self.fake = fake
        self.settings = settings
        self.clock = clock
        self.app: App | None = None
        self._polling: asyncio.Task[None] | None = None
        self._next_user = 1000

    @property
    def session_factory(self) -> async_sessionmaker[AsyncSession]:
        assert self.app is not None
        return self.app.session_factory

    async def start(self) -> None:
        self.app = await create_app(self.settings, clock=self.clock)
        asked = self._update_requests()
        self._polling = asyncio.create_task(self.app.start_polling(handle_signals=False, polling_timeout=1))
        await self._until_polling(asked)

    def _update_requests(self) -> int:
        return sum(call.method == "getUpdates" for call in self.fake.calls)

    async def _until_polling(self, asked: int, timeout: float = 10.0) -> None:
        """Return once the bot asks for updates: its start-up (the command menus) is done."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.fake.polling and self._update_requests() == asked:
            assert self._polling is not None
            if self._polling.done():
                self._polling.result()
            if loop.time() > deadline:
                raise TimeoutError("the bot did not start polling")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self.app is None:
            return
        await self.app.dispatcher.stop_polling()
        assert self._polling is not None
        await self._polling
        await self.app.close()
        self.app = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def cardholder(self, language_code: str | None = "en", phone: str = "+8613800138000") -> ChatClient:
        self._next_user += 1
        self.fake.add_user(self._next_user, first_name="Ann", language_code=language_code)
        return ChatClient(self.fake, self._next_user, phone=phone, handled=self.handled)

    def handled(self, update_id: int) -> bool:
        return self.app is not None and self.app.updates.handled(update_id)

    async def add_accounts(self, *accounts: Account) -> None:
        await add_accounts(self.session_factory, *accounts)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    yield server
    await server.stop()


# -- the backend switch: TEST_BACKEND=postgres runs the database tests on PostgreSQL and Redis ------

TEST_BACKEND = os.environ.get("TEST_BACKEND", "sqlite")
BACKEND_REDIS_URL = os.environ.get("TEST_BACKEND_REDIS_URL", "redis://127.0.0.1:6379/9")
"""The Redis database the harness uses under TEST_BACKEND=postgres: emptied before and after each test."""


class PostgresTemplate:
    """A PostgreSQL database with today's schema, made once per run; each test gets a copy of it."""

    def __init__(self) -> None:
        self.name = f"tmpl_{uuid.uuid4().hex[:12]}"
        self.admin_dsn = POSTGRES_URL.replace("postgresql+asyncpg", "postgresql")

    def url(self, name: str) -> str:
        return POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"

    async def _admin(self, statement: str) -> None:
        import asyncpg

        connection = await asyncpg.connect(self.admin_dsn)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    async def prepare(self) -> None:
        await self._admin(f'CREATE DATABASE "{self.name}"')
        engine = create_engine(self.url(self.name))
        await create_schema(engine)
        await engine.dispose()

    async def copy(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        await self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.name}"')
        return name

    async def drop(self, name: str) -> None:
        await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[PostgresTemplate | None]:
    if TEST_BACKEND != "postgres":
        yield None
        return
    template = PostgresTemplate()
    asyncio.run(template.prepare())
    yield template
    asyncio.run(template.drop(template.name))


@pytest.fixture
async def database_url(tmp_path: Path, postgres_template: PostgresTemplate | None) -> AsyncIterator[str]:
    """The test's own database: a SQLite file, or (TEST_BACKEND=postgres) a fresh PostgreSQL database."""
    if postgres_template is None:
        yield f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
        return
    name = await postgres_template.copy()
    yield postgres_template.url(name)
    await postgres_template.drop(name)


@pytest.fixture
async def harness_redis_url() -> AsyncIterator[str | None]:
    """The REDIS_URL of the harness: none, or (TEST_BACKEND=postgres) a Redis database emptied around the test."""
    if TEST_BACKEND != "postgres":
        yield None
        return
    from redis.asyncio import Redis

    client = Redis.from_url(BACKEND_REDIS_URL)
    await client.flushdb()
    yield BACKEND_REDIS_URL
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def harness(fake: FakeTelegram, database_url: str, harness_redis_url: str | None) -> AsyncIterator[BotHarness]:
    base_url = fake.base_url
    settings = load_settings(
        _env_file=None,
        bot_token=BOT_TOKEN,
        telegram_api_url=base_url,
        database_url=database_url,
        redis_url=harness_redis_url,
        flood_burst=1000,  # scripted people act at machine speed; tests/test_flooding.py throttles
    )
    bot_harness = BotHarness(fake, settings, ManualClock())
    await bot_harness.start()
    yield bot_harness
    await bot_harness.stop()


@pytest.fixture
async def session_factory(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    await create_schema(engine)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh database on the local PostgreSQL server for one test, dropped afterwards."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin_dsn = POSTGRES_URL.replace("postgresql+asyncpg", "postgresql")
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def run_bot_command(database_url: str, *arguments: str) -> str:
    """Run `python -m bot ARGUMENTS` against the test database; its standard output (it must succeed)."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bot", *arguments),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"DATABASE_URL": database_url, "PATH": os.environ["PATH"]},
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()
