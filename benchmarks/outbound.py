"""Outbound limits against the fake Bot API enforcing Telegram's: the rate achieved and the 429s.

    python benchmarks/outbound.py [--rate 30] [--messages 3000] [--chats 1000] [--groups 20] [--senders 2]
    python benchmarks/outbound.py --cardholders 300 [--rate 30]

The first form asks for `--messages` messages to `--chats` chats (`--groups` of them groups) all
at once, through the limiter (bot.outbound_limits) at `--rate` a second for the whole bot, 1 a
second per chat and 20 a minute per group, against the fake enforcing the same limits. With
`--senders 2` two bots (two sessions, each with its own limiter) share the limits through Redis
(REDIS_URL, default redis://127.0.0.1:6379/0) and split the messages between them. Printed: the
rate achieved (target: at least 95 % of `--rate`), the 429s (target: none), and whether every
chat got all its messages in the order asked. At 30 a second it takes about 100 seconds.

The second form runs the real bot (polling, a fresh SQLite file) with the limiter at `--rate`
and `--cardholders` people going through the whole journey at once (bot.telegram_fake.crowd),
against the fake enforcing the limits. Printed: time, messages a second, 429s, the most database
connections in use at once, and the calls that waited for the limiter inside an open transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiogram import Bot  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from bot.app import create_app, create_bot, pace_outbound  # noqa: E402
from bot.db.models import Account  # noqa: E402
from bot.db.unit_of_work import current_unit  # noqa: E402
from bot.outbound_limits import MESSAGES, Limits, LocalBuckets, OutboundLimiter, Rate, RedisBuckets  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from bot.telegram_fake import FakeTelegram  # noqa: E402
from bot.telegram_fake.crowd import UpdateWaiter, account_rows, cardholders, run_crowd, settle_debt  # noqa: E402
from bot.telegram_fake.server import Limits as FakeLimits  # noqa: E402

TOKEN = "123456:BENCH-outbound"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def fake_limits(rate: float) -> FakeLimits:
    """Telegram's limits with the fake's tolerance of a third of a second for the whole bot at any rate."""
    return FakeLimits(bot_rate=rate, bot_burst=max(10, round(rate / 3)), chat_rate=1.0, group_per_minute=20.0)


def sent_messages(fake: FakeTelegram) -> int:
    return sum(1 for event in fake.events if event.ok and event.method in MESSAGES)


async def messages_run(args: argparse.Namespace) -> None:
    fake = FakeTelegram()
    await fake.start()
    fake.limits = fake_limits(args.rate)
    chats = [-(1_000_000 + n) for n in range(args.groups)] + list(range(1, args.chats - args.groups + 1))
    for chat_id in chats:
        if chat_id < 0:
            fake.add_forum_group(chat_id)
        else:
            fake.add_user(chat_id)
    limits = Limits(Rate(args.rate, 1), Rate(1.0, 3), Rate(20 / 60, 3))
    prefix = f"bench-outbound-{uuid.uuid4().hex[:8]}:"
    limiters = [
        OutboundLimiter(limits, RedisBuckets(REDIS_URL, prefix) if args.senders > 1 else LocalBuckets())
        for _ in range(args.senders)
    ]
    bots: list[Bot] = []
    for limiter in limiters:
        bot = create_bot(load_settings(_env_file=None, bot_token=TOKEN, telegram_api_url=fake.base_url))
        pace_outbound(bot, limiter, attempts=5)
        bots.append(bot)
    plan = [(chats[i % len(chats)], i) for i in range(args.messages)]
    began = time.perf_counter()
    try:
        results = await asyncio.gather(
            *(bots[n % len(bots)].send_message(chat_id, f"m{i}") for n, (chat_id, i) in enumerate(plan)),
            return_exceptions=True,
        )
        seconds = time.perf_counter() - began
    finally:
        for bot, limiter in zip(bots, limiters):
            await bot.session.close()
            await limiter.close()
        await fake.stop()
        if args.senders > 1:
            await forget(prefix)
    failed = [result for result in results if isinstance(result, BaseException)]
    in_order = all(
        [message.text for message in fake.bot_messages(chat_id)] == [f"m{i}" for c, i in plan if c == chat_id]
        for chat_id in chats
    )
    assert fake.limits is not None
    print(f"{args.messages} messages to {len(chats)} chats ({args.groups} groups), {args.senders} sender(s)"
          f"{' sharing Redis' if args.senders > 1 else ''}, limit {args.rate:g}/s")
    print(f"  {seconds:.1f} s, {args.messages / seconds:.2f} messages/s = {100 * args.messages / seconds / args.rate:.1f} % of the limit")
    print(f"  429s: {fake.limits.refused} {fake.limits.refused_by or ''}; failed calls: {len(failed)}; every chat complete and in order: {in_order}")


async def forget(prefix: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL)
    keys = [key async for key in redis.scan_iter(f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


class OpenTransactionProbe:
    """Innermost: a call that reaches Telegram while its update's unit holds a transaction waited
    for the limiter with it (nothing runs in that update between the limiter and here)."""

    def __init__(self) -> None:
        self.calls = 0
        self.open = 0

    async def __call__(self, make_request: Any, bot: Bot, method: Any) -> Any:
        if method.__api_method__ in MESSAGES:
            self.calls += 1
            unit = current_unit.get()
            self.open += unit is not None and unit.session.in_transaction()
        return await make_request(bot, method)


async def cardholders_run(args: argparse.Namespace) -> None:
    fake = FakeTelegram()
    await fake.start()
    fake.limits = fake_limits(args.rate)
    with tempfile.TemporaryDirectory() as directory:
        settings = load_settings(
            _env_file=None, bot_token=TOKEN, telegram_api_url=fake.base_url,
            database_url=f"sqlite+aiosqlite:///{directory}/bot.sqlite3",
            outbound_bot_per_second=args.rate, outbound_chat_per_second=1.0, outbound_group_per_minute=20.0,
            flood_burst=1000,
        )
        app = await create_app(settings)
        probe = OpenTransactionProbe()
        app.bot.session.middleware(probe)
        people = cardholders(args.cardholders)
        async with app.session_factory() as session, session.begin():
            await session.execute(insert(Account), account_rows(people))
        waiter = UpdateWaiter(app.dispatcher)
        polling = asyncio.create_task(app.start_polling(handle_signals=False, polling_timeout=1))
        most_connections = 0

        async def watch_pool() -> None:
            nonlocal most_connections
            while True:
                most_connections = max(most_connections, app.engine.pool.checkedout())  # type: ignore[attr-defined]
                await asyncio.sleep(0.02)

        watcher = asyncio.create_task(watch_pool())
        before = sent_messages(fake)
        try:
            report = await run_crowd(fake, waiter, people, settle_debt)
        finally:
            watcher.cancel()
            await app.dispatcher.stop_polling()
            await polling
            await app.close()
            await fake.stop()
    messages = sent_messages(fake) - before
    assert fake.limits is not None
    print(f"{args.cardholders} cardholders through the whole journey, limiter at {args.rate:g}/s, pool of {app.engine.pool.size()}")  # type: ignore[attr-defined]
    print(f"  {report.seconds:.1f} s, {report.completed} completed, {report.unanswered_total} steps unanswered")
    print(f"  {messages} messages, {messages / report.seconds:.2f}/s = {100 * messages / report.seconds / args.rate:.1f} % of the limit")
    print(f"  429s: {fake.limits.refused} {fake.limits.refused_by or ''}; most connections in use: {most_connections}; "
          f"messages sent from inside an open transaction: {probe.open} of {probe.calls}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=30.0, help="messages a second for the whole bot")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--senders", type=int, default=1, help="2 or more: share the limit through Redis")
    parser.add_argument("--cardholders", type=int, default=0, help="run the real bot with this many people instead")
    args = parser.parse_args()
    asyncio.run(cardholders_run(args) if args.cardholders else messages_run(args))


if __name__ == "__main__":
    main()
