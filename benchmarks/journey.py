"""Many cardholders at once: the whole journey over real HTTP, then a bare echo bot on the same fake.

    python benchmarks/journey.py [--cardholders 1000] [--database-url URL] [--concurrency N]

N cardholders start at the same moment; each does /start, shares their contact, types their birth
date, asks for /balance and /plans, opens a plan and accepts it, against the project's fake Bot
API with the real dispatcher on a real database (a fresh SQLite file by default; a PostgreSQL URL
gets a fresh database of its own, dropped afterwards). Then the same updates, in the same order,
go through a bare aiogram bot that answers each one, on the same fake, in the same process; and
then through the floor: that echo bot plus the least a bot that records its conversations does
for each update (one session, a SELECT of the chat, an INSERT of the audit row, a commit, through
SQLAlchemy on the same kind of database). The floor shows what no such bot can go below.

With `--long-messages N`, one more chat sends N messages of 4,096 characters (letters, words,
emoji, Chinese, digits) back to back meanwhile: compare the crowd's latencies with a run without.

Printed: updates/s, p50 and p99 per step, errors, unanswered steps, peak memory, and the cost of
an update (wall time and CPU time per update) of the project relative to the echo bot.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import statistics
import sys
import tempfile
import uuid
from datetime import datetime, timezone
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiogram import Bot, Dispatcher, Router  # noqa: E402
from aiogram.client.session.aiohttp import AiohttpSession  # noqa: E402
from aiogram.client.telegram import TelegramAPIServer  # noqa: E402
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

from bot.app import create_app  # noqa: E402
from bot.db.engine import create_engine, create_session_factory  # noqa: E402
from bot.db.schema import migrate  # noqa: E402
from bot.db.models import Account, AuditEvent, ChatProfile  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from bot.telegram_fake import FakeTelegram  # noqa: E402
from bot.telegram_fake.crowd import (  # noqa: E402
    STEPS,
    CrowdReport,
    UpdateWaiter,
    account_rows,
    cardholders,
    echo_journey,
    run_crowd,
    settle_debt,
)

TOKEN = "123456:BENCH-token_for-fake"
APOLOGY = "Sorry, something went wrong"


class ErrorCount(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.first: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if self.first is None:
            self.first = record.getMessage()


@asynccontextmanager
async def fresh_database(url: str | None) -> AsyncIterator[str]:
    """A fresh SQLite file, or a fresh database on the PostgreSQL server the URL names, migrated."""
    if url is None or url.startswith("sqlite"):
        with tempfile.TemporaryDirectory() as folder:
            url = url or f"sqlite+aiosqlite:///{Path(folder) / 'journey.sqlite3'}"
            await migrate(url)
            yield url
        return
    import asyncpg

    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = url.replace("postgresql+asyncpg", "postgresql")
    connection = await asyncpg.connect(admin)
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    try:
        fresh = url.rsplit("/", 1)[0] + f"/{name}"
        await migrate(fresh)
        yield fresh
    finally:
        connection = await asyncpg.connect(admin)
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()


async def project_run(
    fake: FakeTelegram, count: int, database_url: str, concurrency: int | None, long_messages: int
) -> tuple[CrowdReport, int]:
    overrides: dict[str, object] = {"max_concurrent_updates": concurrency} if concurrency else {}
    # The echo bot beside it sends without pacing, and so does the project here: the cost of an
    # update is measured, not Telegram's limits (benchmarks/outbound.py measures those).
    overrides.update(outbound_bot_per_second=1_000_000, outbound_chat_per_second=1_000_000, outbound_group_per_minute=60_000_000)
    settings = load_settings(
        _env_file=None, bot_token=TOKEN, telegram_api_url=fake.base_url, database_url=database_url, **overrides
    )
    app = await create_app(settings)
    people = cardholders(count)
    rows = account_rows(people)
    async with app.session_factory() as session, session.begin():
        for start in range(0, len(rows), 1000):
            await session.execute(insert(Account), rows[start : start + 1000])
    waiter = UpdateWaiter(app.dispatcher)
    polling = asyncio.create_task(app.start_polling(handle_signals=False))
    try:
        report = await run_crowd(fake, waiter, people, settle_debt, long_messages)
    finally:
        await app.dispatcher.stop_polling()
        await polling
        await app.close()
    apologies = sum(
        1
        for person in people
        for stored in fake.chat(person.user_id).messages.values()
        if stored.from_bot and APOLOGY in (stored.payload.get("text") or "")
    )
    return report, apologies


def echo_dispatcher() -> Dispatcher:
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="echo", callback_data="echo")]])
    router = Router()

    @router.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "ok", reply_markup=markup)

    @router.callback_query()
    async def pressed(query: CallbackQuery) -> None:
        await query.answer()
        assert isinstance(query.message, Message)
        await query.message.answer("ok", reply_markup=markup)

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    return dispatcher


async def echo_run(fake: FakeTelegram, count: int) -> CrowdReport:
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url or "")))
    dispatcher = echo_dispatcher()
    waiter = UpdateWaiter(dispatcher)
    polling = asyncio.create_task(dispatcher.start_polling(bot, handle_signals=False))
    try:
        return await run_crowd(fake, waiter, cardholders(count, first_user_id=2_000_000), echo_journey)
    finally:
        await dispatcher.stop_polling()
        await polling
        await bot.session.close()


async def floor_run(fake: FakeTelegram, count: int, database_url: str) -> CrowdReport:
    """The echo bot, with one session per update that reads the chat and records the update."""
    engine = create_engine(database_url)
    session_factory = create_session_factory(engine)
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url or "")))
    dispatcher = echo_dispatcher()

    @dispatcher.update.outer_middleware()
    async def recorded(handler, update, data):  # type: ignore[no-untyped-def]
        chat = data.get("event_chat")
        chat_id = chat.id if chat else None
        async with session_factory() as session:
            await session.execute(select(ChatProfile).where(ChatProfile.chat_id == chat_id))
            await session.execute(
                insert(AuditEvent).values(at=datetime.now(timezone.utc), direction="in", kind="update", chat_id=chat_id)
            )
            await session.commit()  # recorded before the bot answers, as the project does
            return await handler(update, data)

    waiter = UpdateWaiter(dispatcher)
    polling = asyncio.create_task(dispatcher.start_polling(bot, handle_signals=False))
    try:
        return await run_crowd(fake, waiter, cardholders(count, first_user_id=3_000_000), echo_journey)
    finally:
        await dispatcher.stop_polling()
        await polling
        await bot.session.close()
        await engine.dispose()


def milliseconds(values: list[float], quantile: float) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0] * 1000:.0f}"
    return f"{statistics.quantiles(values, n=100, method='inclusive')[int(quantile * 100) - 1] * 1000:.0f}"


def cost_ratio(report: CrowdReport, echo: CrowdReport) -> tuple[float, float]:
    """The cost of an update relative to the echo bot's: (wall time, CPU time)."""
    wall = (report.seconds / report.updates) / (echo.seconds / echo.updates)
    cpu = (report.cpu_seconds / report.updates) / (echo.cpu_seconds / echo.updates)
    return wall, cpu


def print_report(
    project: CrowdReport,
    echo: CrowdReport | None,
    floor: CrowdReport | None,
    count: int,
    errors: int,
    apologies: int,
    peak_mb: float,
) -> None:
    print(f"cardholders: {count}, journeys completed: {project.completed}")
    print(f"errors logged: {errors}, apologies sent: {apologies}, unanswered steps: {project.unanswered_total}")
    print(f"peak memory (RSS) after the project's run: {peak_mb:.0f} MB")
    print()
    header = f"{'step':<12}{'p50 ms':>9}{'p99 ms':>9}"
    if echo:
        header += f"{'echo p50':>10}{'echo p99':>10}"
    print(header)
    for step in STEPS:
        line = f"{step:<12}{milliseconds(project.latencies[step], 0.5):>9}{milliseconds(project.latencies[step], 0.99):>9}"
        if echo:
            line += f"{milliseconds(echo.latencies[step], 0.5):>10}{milliseconds(echo.latencies[step], 0.99):>10}"
        print(line)
    noise = project.long_messages
    if noise is not None and noise.updates:
        latencies = noise.latencies["long_message"]
        print(f"{'long msgs':<12}{milliseconds(latencies, 0.5):>9}{milliseconds(latencies, 0.99):>9}"
              f"   ({noise.updates} messages of 4,096 characters from one chat, {noise.unanswered_total} unanswered)")
    print()
    print(f"project: {project.updates} updates in {project.seconds:.2f} s = {project.updates_per_second:.0f} updates/s, "
          f"{project.cpu_seconds / project.updates * 1000:.2f} ms CPU per update")
    if echo:
        print(f"echo:    {echo.updates} updates in {echo.seconds:.2f} s = {echo.updates_per_second:.0f} updates/s, "
              f"{echo.cpu_seconds / echo.updates * 1000:.2f} ms CPU per update (unanswered {echo.unanswered_total})")
        if floor:
            print(f"floor:   {floor.updates} updates in {floor.seconds:.2f} s = {floor.updates_per_second:.0f} updates/s, "
                  f"{floor.cpu_seconds / floor.updates * 1000:.2f} ms CPU per update (unanswered {floor.unanswered_total})")
        wall, cpu = cost_ratio(project, echo)
        print(f"cost per update, project / echo: {wall:.2f} (wall time), {cpu:.2f} (CPU time)")
        if floor:
            wall, cpu = cost_ratio(floor, echo)
            print(f"cost per update, floor / echo:   {wall:.2f} (wall time), {cpu:.2f} (CPU time)")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cardholders", type=int, default=1000)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--concurrency", type=int, help="MAX_CONCURRENT_UPDATES (default: the setting's default)")
    parser.add_argument("--no-echo", action="store_true", help="skip the echo bot's run and the floor's")
    parser.add_argument(
        "--long-messages", type=int, default=0, help="one more chat sends this many 4,096-character messages meanwhile"
    )
    arguments = parser.parse_args()

    logging.basicConfig(level=logging.WARNING)
    errors = ErrorCount()
    logging.getLogger().addHandler(errors)
    fake = FakeTelegram()
    await fake.start()
    try:
        async with fresh_database(arguments.database_url) as url:
            project, apologies = await project_run(
                fake, arguments.cardholders, url, arguments.concurrency, arguments.long_messages
            )
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        echo = floor = None
        if not arguments.no_echo:
            echo = await echo_run(fake, arguments.cardholders)
            async with fresh_database(arguments.database_url) as url:
                floor = await floor_run(fake, arguments.cardholders, url)
    finally:
        await fake.stop()
    print_report(project, echo, floor, arguments.cardholders, errors.count, apologies, peak_mb)
    if errors.first:
        print(f"first error: {errors.first}")
    failed = errors.count or apologies or project.unanswered_total or project.completed != arguments.cardholders
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
