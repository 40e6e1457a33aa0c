"""Outbound limits: the bot's messages keep to Telegram's rates, in order, through 429s.

Run against the fake Bot API enforcing its limits (bot.telegram_fake.server.Limits), at rates
high enough to keep each test within a second or two; `benchmarks/outbound.py` holds the rates.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot

from bot.app import create_bot, pace_outbound
from bot.outbound_limits import Limits, LocalBuckets, OutboundLimiter, Rate, RedisBuckets
from bot.settings import load_settings
from bot.telegram_fake import FakeTelegram
from bot.telegram_fake.server import Limits as FakeLimits
from tests.conftest import BOT_TOKEN, REDIS_URL

FAST = Rate(100_000, 1)


def sender(fake: FakeTelegram, limiter: OutboundLimiter) -> Bot:
    bot = create_bot(load_settings(_env_file=None, bot_token=BOT_TOKEN, telegram_api_url=fake.base_url))
    pace_outbound(bot, limiter, attempts=5)
    return bot


def texts(fake: FakeTelegram, chat_id: int) -> list[str]:
    return [message.text for message in fake.bot_messages(chat_id)]


def refusals(fake: FakeTelegram) -> list[int | None]:
    return [event.chat_id for event in fake.events if not event.ok and (event.description or "").startswith("Too Many Requests")]


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own in the test Redis; its keys are deleted afterwards."""
    from redis.asyncio import Redis

    prefix = f"test-outbound-{uuid.uuid4().hex[:8]}:"
    yield prefix
    redis = Redis.from_url(REDIS_URL)
    keys = [key async for key in redis.scan_iter(f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def test_a_chat_refused_waits_its_retry_after_keeps_its_order_and_other_chats_go_on(fake: FakeTelegram) -> None:
    """The limiter is set faster than the fake allows one chat: the 429s are honoured, in place."""
    fake.limits = FakeLimits(chat_rate=4, chat_burst=1)
    fake.add_user(1)
    fake.add_user(2)
    limiter = OutboundLimiter(Limits(FAST, Rate(100_000, 3), FAST), LocalBuckets())
    bot = sender(fake, limiter)
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        first = [asyncio.create_task(bot.send_message(1, f"one {n}")) for n in range(3)]
        while not refusals(fake):
            await asyncio.sleep(0.005)
        other = await bot.send_message(2, "two")
        await asyncio.gather(*first)
        elapsed = loop.time() - began
    finally:
        await bot.session.close()
    assert texts(fake, 1) == ["one 0", "one 1", "one 2"]
    assert texts(fake, 2) == ["two"]
    assert refusals(fake) == [1, 1]  # each message after the first came too soon once, and was sent again
    assert limiter.refused == 2 and limiter.paused_bot == 0
    assert elapsed >= 2.0  # retry_after is 1 second each time
    sent = [event.chat_id for event in fake.events if event.ok]
    assert sent.index(2) < sent.index(1, sent.index(1) + 1)  # chat 2 did not wait for chat 1's pause
    assert other.chat.id == 2


async def test_a_group_gets_its_own_pace_in_order_and_no_429(fake: FakeTelegram) -> None:
    fake.limits = FakeLimits(chat_rate=1000, chat_burst=100, group_per_minute=600, group_burst=3)
    fake.add_forum_group(-100500)
    fake.add_user(7)
    limiter = OutboundLimiter(Limits(FAST, FAST, Rate(10, 2)), LocalBuckets())
    bot = sender(fake, limiter)
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.gather(*(bot.send_message(-100500, f"desk {n}") for n in range(8)), bot.send_message(7, "private"))
        elapsed = loop.time() - began
    finally:
        await bot.session.close()
    assert refusals(fake) == []
    assert texts(fake, -100500) == [f"desk {n}" for n in range(8)]
    assert texts(fake, 7) == ["private"]
    assert elapsed >= (8 - 2) / 10  # two at once, then ten a second


async def test_two_senders_sharing_redis_keep_to_the_bot_limit_together(fake: FakeTelegram, redis_prefix: str) -> None:
    """Each sender alone is allowed the whole rate: only the shared bucket keeps both within it."""
    fake.limits = FakeLimits(bot_rate=100, bot_burst=10, chat_rate=1000, chat_burst=100)
    chats = range(1, 41)
    for chat_id in chats:
        fake.add_user(chat_id)
    limits = Limits(Rate(100, 1), Rate(1000, 3), FAST)
    limiters = [OutboundLimiter(limits, RedisBuckets(REDIS_URL, redis_prefix)) for _ in range(2)]
    bots = [sender(fake, limiter) for limiter in limiters]
    try:
        await asyncio.gather(*(
            bots[chat_id % 2].send_message(chat_id, f"{chat_id} {n}") for n in range(3) for chat_id in chats
        ))
    finally:
        for bot, limiter in zip(bots, limiters):
            await bot.session.close()
            await limiter.close()
    assert refusals(fake) == []
    for chat_id in chats:
        assert texts(fake, chat_id) == [f"{chat_id} {n}" for n in range(3)]


async def test_many_chats_at_once_lose_and_reorder_nothing(fake: FakeTelegram) -> None:
    """The benchmark's shape, small: 200 messages to 80 chats (some groups), all asked at once."""
    fake.limits = FakeLimits(bot_rate=400, bot_burst=200, chat_rate=40, chat_burst=20, group_per_minute=2400, group_burst=20)
    chats = [*range(1, 71), *range(-10, 0)]
    for chat_id in chats:
        if chat_id < 0:
            fake.add_forum_group(chat_id)
        else:
            fake.add_user(chat_id)
    limiter = OutboundLimiter(Limits(Rate(400, 1), Rate(40, 3), Rate(40, 3)), LocalBuckets())
    bot = sender(fake, limiter)
    plan = [(chats[i % len(chats)], i) for i in range(200)]
    try:
        await asyncio.gather(*(bot.send_message(chat_id, f"m{i}") for chat_id, i in plan))
    finally:
        await bot.session.close()
    assert refusals(fake) == []
    for chat_id in chats:
        assert texts(fake, chat_id) == [f"m{i}" for c, i in plan if c == chat_id]


async def test_a_pause_too_long_to_wait_inside_a_call_goes_back_to_the_caller_at_once(fake: FakeTelegram) -> None:
    from aiogram.exceptions import TelegramRetryAfter

    fake.add_user(1)
    fake.add_user(2)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 60", retry_after=60)
    limiter = OutboundLimiter(Limits(FAST, FAST, FAST), LocalBuckets())
    bot = sender(fake, limiter)
    try:
        with pytest.raises(TelegramRetryAfter):
            await bot.send_message(1, "refused")
        with pytest.raises(TelegramRetryAfter) as waiting:
            await asyncio.wait_for(bot.send_message(1, "paused"), 5)
        await bot.send_message(2, "other chat")
    finally:
        await bot.session.close()
    assert 50 <= waiting.value.retry_after <= 60
    assert texts(fake, 1) == []
    assert texts(fake, 2) == ["other chat"]
