"""Test harness: the real bot, polling over HTTP against the fake Bot API, on a real database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import App, create_app
from bot.clock import ManualClock
from bot.db import create_engine, create_session_factory
from bot.db.models import Account
from bot.db.schema import migrate
from bot.settings import Settings, load_settings
from bot.telegram_fake import ChatClient, FakeTelegram

BOT_TOKEN = "123456:TEST-token_for-fake"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
for _name, _value in {"OUTBOUND_BOT_PER_SECOND": "1000000", "OUTBOUND_CHAT_PER_SECOND": "1000000", "OUTBOUND_GROUP_PER_MINUTE": "60000000"}.items():
    os.environ.setdefault(_name, _value)  # tests run at machine speed; tests/test_outbound_limits.py sets its own
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


class MigratedTemplates:
    """Databases at the head revision, migrated once per test session and copied for each test:
    running the migrations for every test's database would cost more than the tests."""

    def __init__(self) -> None:
        self._folder: Path | None = None
        self.postgres_name: str | None = None

    async def sqlite_file(self) -> Path:
        if self._folder is None:
            folder = Path(tempfile.mkdtemp(prefix="repay-migrated-"))
            await migrate(f"sqlite+aiosqlite:///{folder / 'head.sqlite3'}")
            self._folder = folder
        return self._folder / "head.sqlite3"

    async def postgres_database(self, admin: Any) -> str:
        """The template database's name (it must have no connection while it is copied)."""
        if self.postgres_name is None:
            name = f"t_head_{uuid.uuid4().hex[:12]}"
            await admin.execute(f'CREATE DATABASE "{name}"')
            self.postgres_name = name
            await migrate(POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}")
        return self.postgres_name

    async def remove(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
        if self.postgres_name is not None:
            import asyncpg

            connection = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg", "postgresql"))
            try:
                await connection.execute(f'DROP DATABASE IF EXISTS "{self.postgres_name}" WITH (FORCE)')
            finally:
                await connection.close()


MIGRATED = MigratedTemplates()


def pytest_sessionfinish(session: pytest.Session) -> None:
    asyncio.run(MIGRATED.remove())


async def prepare_database(url: str) -> None:
    """Bring a new, empty test database to the head revision: the one way tests and benchmarks make a schema."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(await MIGRATED.sqlite_file(), parsed.database)
    else:
        await migrate(url)


# -- the backend switch: TEST_BACKEND=postgres runs the database tests on PostgreSQL and Redis ------

TEST_BACKEND = os.environ.get("TEST_BACKEND", "sqlite")
BACKEND_REDIS_URL = os.environ.get("TEST_BACKEND_REDIS_URL", "redis://127.0.0.1:6379/9")
"""The Redis database the harness uses under TEST_BACKEND=postgres: emptied before and after each test."""


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """The test's own database at the head revision: a SQLite file, or (TEST_BACKEND=postgres) a fresh PostgreSQL database."""
    if TEST_BACKEND != "postgres":
        url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
        await prepare_database(url)
        yield url
        return
    async with new_postgres_database(migrated=True) as url:
        yield url


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
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A database at the head revision on the local PostgreSQL server for one test, dropped afterwards."""
    async with new_postgres_database(migrated=True) as url:
        yield url


@pytest.fixture
async def empty_postgres_url() -> AsyncIterator[str]:
    """An empty database on the local PostgreSQL server for one test, dropped afterwards."""
    async with new_postgres_database(migrated=False) as url:
        yield url


@contextlib.asynccontextmanager
async def new_postgres_database(migrated: bool) -> AsyncIterator[str]:
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin_dsn = POSTGRES_URL.replace("postgresql+asyncpg", "postgresql")
    connection = await asyncpg.connect(admin_dsn)
    try:
        template = f' TEMPLATE "{await MIGRATED.postgres_database(connection)}"' if migrated else ""
        await connection.execute(f'CREATE DATABASE "{name}"{template}')
    finally:
        await connection.close()
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
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
