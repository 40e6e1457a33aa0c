"""Outbound limits: the bot paces its messages so Telegram's flood control never has to.

Telegram allows about 30 messages a second per bot, about 1 a second per chat (short bursts are
tolerated) and 20 a minute per group. Each limit is a GCRA bucket (a token bucket kept as one
time per key): a message may leave once every bucket it falls into (its chat's, its group's for
a negative chat id, then the bot's) has room; it reserves its slot in each in turn, so waiting
messages leave in the order they reserved and no waiter polls.

Two middlewares on the bot session share one limiter:

- `in_order` (after `OutboundMiddleware`, so the update's unit of work is already committed and
  no write turn or connection is held while waiting) gives each chat one message at a time, in
  the order they were asked for, for the whole call including its retries;
- `pace` (innermost, beneath `RetryTransient`) takes the slot for every attempt, so retries are
  paced too, and turns a 429 into a pause of the chat, or of the whole bot when the answer
  concerns it (see `Buckets.pause`); `RetryTransient` then waits `retry_after` and tries again.

With REDIS_URL set the buckets live in Redis (one Lua script per step, Redis's own clock), keyed
by the bot id, so every process of the bot shares them; otherwise they live in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType

MESSAGES = frozenset({
    "sendMessage", "sendPhoto", "sendDocument", "sendVoice", "sendSticker", "sendAudio", "sendVideo",
    "sendAnimation", "sendVideoNote", "sendMediaGroup", "sendLocation", "sendVenue", "sendContact",
    "sendPoll", "sendDice", "sendInvoice", "copyMessage", "copyMessages", "forwardMessage", "forwardMessages",
    "editMessageText", "editMessageCaption", "editMessageMedia", "editMessageReplyMarkup", "createForumTopic",
})
"""Calls that count as messages. Edits count (Telegram floods edits of one chat like sends), and so
does a new forum topic (it posts a message in the group). Answers to button presses, chat actions,
deletions and reads do not count and are never held back."""

LONGEST_PAUSE = 30.0
"""A pause Telegram asked for longer than this is not waited out inside a call (as RetryTransient's
`longest_wait`): the caller gets Telegram's 429 and the courier or the next update tries later."""

LATE = 0.1
"""A slot woken for this many seconds late is given up once for a new one, so a stalled event loop
does not release everything due meanwhile at once."""

BOT_WIDE_WINDOW = 1.0
"""Two different chats refused within this many seconds: Telegram is limiting the whole bot."""


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int = 1

    @property
    def interval(self) -> float:
        return 1.0 / self.per_second

    @property
    def tolerance(self) -> float:
        return (self.burst - 1) * self.interval


@dataclass(frozen=True)
class Limits:
    bot: Rate
    chat: Rate
    group: Rate


@dataclass(frozen=True)
class Bucket:
    key: str
    rate: Rate


class Buckets(Protocol):
    async def reserve(self, buckets: Sequence[Bucket]) -> float:
        """Take the next slot free in all `buckets`; the seconds to wait until it."""

    async def paused_for(self, buckets: Sequence[Bucket]) -> float:
        """Seconds left of a pause on any of `buckets` (0 when none)."""

    async def pause(self, bot: Bucket, chat: Sequence[Bucket], chat_key: str | None, seconds: float) -> bool:
        """Telegram said wait `seconds`: pause the chat's buckets, or the bot's when the refusal
        concerns the whole bot (the call had no chat, or another chat was refused moments ago).
        True when the whole bot was paused."""


class LocalBuckets:
    """The buckets of this process."""

    PRUNE_AT = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._tat: dict[str, float] = {}
        self._paused: dict[str, float] = {}
        self._last_refusal: tuple[str, float] | None = None

    async def reserve(self, buckets: Sequence[Bucket]) -> float:
        now = self.clock()
        at = max([now, *(self._tat.get(b.key, now) - b.rate.tolerance for b in buckets)])
        for b in buckets:
            self._tat[b.key] = max(self._tat.get(b.key, now), at) + b.rate.interval
        if len(self._tat) > self.PRUNE_AT:
            self._tat = {key: tat for key, tat in self._tat.items() if tat > now}
            self._paused = {key: until for key, until in self._paused.items() if until > now}
        return at - now

    async def paused_for(self, buckets: Sequence[Bucket]) -> float:
        now = self.clock()
        return max([0.0, *(self._paused.get(b.key, now) - now for b in buckets)])

    async def pause(self, bot: Bucket, chat: Sequence[Bucket], chat_key: str | None, seconds: float) -> bool:
        now = self.clock()
        last = self._last_refusal
        bot_wide = chat_key is None or (last is not None and last[0] != chat_key and now - last[1] < BOT_WIDE_WINDOW)
        self._last_refusal = (chat_key or "", now)
        until = now + seconds
        for b in [bot] if bot_wide else chat:
            self._paused[b.key] = max(self._paused.get(b.key, now), until)
            self._tat[b.key] = max(self._tat.get(b.key, now), until + b.rate.tolerance)
        return bot_wide


_RESERVE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + t[2] / 1000
local at = now
local tats = {}
for i, key in ipairs(KEYS) do
  tats[i] = tonumber(redis.call('GET', key)) or now
  local ready = tats[i] - tonumber(ARGV[2 * i])
  if ready > at then at = ready end
end
for i, key in ipairs(KEYS) do
  local tat = tats[i]
  if at > tat then tat = at end
  tat = tat + tonumber(ARGV[2 * i - 1])
  redis.call('SET', key, string.format('%.3f', tat), 'PX', math.ceil(tat - now + tonumber(ARGV[2 * i])) + 1000)
end
return string.format('%.3f', at - now)
"""

_PAUSED_FOR = """
local t = redis.call('TIME')
local now = t[1] * 1000 + t[2] / 1000
local left = 0
for _, key in ipairs(KEYS) do
  local until_ = tonumber(redis.call('GET', key)) or now
  if until_ - now > left then left = until_ - now end
end
return string.format('%.3f', left)
"""

_PAUSE = """
-- KEYS[1]: last refusal; then pairs (bucket, its pause): the bot's first, then the chat's.
-- ARGV[1]: the chat ('' for none), ARGV[2]: pause ms, ARGV[3]: bot-wide window ms, then tolerances.
local t = redis.call('TIME')
local now = t[1] * 1000 + t[2] / 1000
local chat = ARGV[1]
local bot_wide = chat == ''
local last = redis.call('GET', KEYS[1])
if last then
  local sep = string.find(last, '|', 1, true)
  local last_chat, last_at = string.sub(last, 1, sep - 1), tonumber(string.sub(last, sep + 1))
  if last_chat ~= chat and now - last_at < tonumber(ARGV[3]) then bot_wide = true end
end
redis.call('SET', KEYS[1], chat .. '|' .. string.format('%.3f', now), 'PX', math.ceil(tonumber(ARGV[3])) + 1000)
local untl = now + tonumber(ARGV[2])
local first, last_pair = 2, #KEYS - 1
if bot_wide then last_pair = 2 else first = 4 end
for i = first, last_pair, 2 do
  local tolerance = tonumber(ARGV[4 + (i - 2) / 2])
  local ttl = math.ceil(tonumber(ARGV[2]) + tolerance) + 1000
  local paused = tonumber(redis.call('GET', KEYS[i + 1])) or now
  if untl > paused then redis.call('SET', KEYS[i + 1], string.format('%.3f', untl), 'PX', ttl) end
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if untl + tolerance > tat then redis.call('SET', KEYS[i], string.format('%.3f', untl + tolerance), 'PX', ttl) end
end
if bot_wide then return 1 end
return 0
"""


class RedisBuckets:
    """The buckets in Redis, shared by every process of the bot; keys begin with `prefix`."""

    CONNECTIONS = 16
    """Calls beyond this many at once wait for a connection (each step is one short script)."""

    def __init__(self, url: str, prefix: str) -> None:
        from redis.asyncio import BlockingConnectionPool, Redis

        self.redis = Redis.from_pool(BlockingConnectionPool.from_url(url, max_connections=self.CONNECTIONS, timeout=None))
        self.prefix = prefix
        self._reserve = self.redis.register_script(_RESERVE)
        self._paused_for = self.redis.register_script(_PAUSED_FOR)
        self._pause = self.redis.register_script(_PAUSE)

    def _key(self, bucket: Bucket, kind: str = "tat") -> str:
        return f"{self.prefix}{kind}:{bucket.key}"

    async def reserve(self, buckets: Sequence[Bucket]) -> float:
        rates = [value for b in buckets for value in (b.rate.interval * 1000, b.rate.tolerance * 1000)]
        return float(await self._reserve(keys=[self._key(b) for b in buckets], args=rates)) / 1000

    async def paused_for(self, buckets: Sequence[Bucket]) -> float:
        return float(await self._paused_for(keys=[self._key(b, "pause") for b in buckets])) / 1000

    async def pause(self, bot: Bucket, chat: Sequence[Bucket], chat_key: str | None, seconds: float) -> bool:
        keys = [f"{self.prefix}last_refusal"]
        for b in (bot, *chat):
            keys += [self._key(b), self._key(b, "pause")]
        args = [chat_key or "", seconds * 1000, BOT_WIDE_WINDOW * 1000, *(b.rate.tolerance * 1000 for b in (bot, *chat))]
        return bool(await self._pause(keys=keys, args=args))

    async def close(self) -> None:
        await self.redis.aclose()


class TooLongAPause(Exception):
    def __init__(self, seconds: int) -> None:
        self.seconds = seconds


class ChatTurns:
    """One call per chat at a time, in the order asked (asyncio's lock wakes waiters first come, first served)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, chat_key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(chat_key, (asyncio.Lock(), 0))
        self._locks[chat_key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[chat_key]
            if users == 1:
                del self._locks[chat_key]
            else:
                self._locks[chat_key] = (lock, users - 1)


def chat_of(method: TelegramMethod[Any]) -> str | None:
    chat_id = getattr(method, "chat_id", None)
    return None if chat_id is None else str(chat_id)


class OutboundLimiter:
    def __init__(self, limits: Limits, buckets: Buckets) -> None:
        self.limits = limits
        self.buckets = buckets
        self.turns = ChatTurns()
        self.refused = 0
        self.paused_bot = 0
        self.in_order = _InOrder(self)
        self.pace = _Pace(self)

    def buckets_of(self, bot_id: int, chat_key: str | None) -> tuple[Bucket, list[Bucket]]:
        bot = Bucket(f"{bot_id}", self.limits.bot)
        if chat_key is None:
            return bot, []
        chat = [Bucket(f"{bot_id}:chat:{chat_key}", self.limits.chat)]
        if chat_key.startswith("-"):
            chat.append(Bucket(f"{bot_id}:group:{chat_key}", self.limits.group))
        return bot, chat

    async def wait_for_slot(self, bot: Bucket, chat: list[Bucket]) -> None:
        """The chat's own slot first, then the bot's: a chat that must wait (paused, or a group at its
        pace) takes the bot's slot only once it is ready, so it holds up no other chat."""
        everything = [bot, *chat]
        if chat:
            await self._wait(chat, everything)
        await self._wait([bot], everything)

    async def _wait(self, buckets: list[Bucket], everything: list[Bucket]) -> None:
        loop = asyncio.get_running_loop()
        missed = False
        while True:
            wait = await self.buckets.reserve(buckets)
            if wait <= 0:
                return
            if wait > LONGEST_PAUSE and (paused := await self.buckets.paused_for(everything)) > LONGEST_PAUSE:
                raise TooLongAPause(math.ceil(paused))
            due = loop.time() + wait
            await asyncio.sleep(wait)
            paused = await self.buckets.paused_for(everything)
            if paused > 0:
                await asyncio.sleep(paused)  # a 429 came while this slot waited: take a new one after it
            elif not missed and loop.time() - due > LATE:
                missed = True  # the event loop was held up: the messages due meanwhile would leave in a clump
            else:
                return

    async def close(self) -> None:
        close = getattr(self.buckets, "close", None)
        if close is not None:
            await close()


class _InOrder(BaseRequestMiddleware):
    def __init__(self, limiter: OutboundLimiter) -> None:
        self.limiter = limiter

    async def __call__(
        self,
        make_request: Callable[[Bot, TelegramMethod[TelegramType]], Awaitable[Any]],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        chat_key = chat_of(method)
        if method.__api_method__ not in MESSAGES or chat_key is None:
            return await make_request(bot, method)
        async with self.limiter.turns.turn(chat_key):
            return await make_request(bot, method)


class _Pace(BaseRequestMiddleware):
    def __init__(self, limiter: OutboundLimiter) -> None:
        self.limiter = limiter

    async def __call__(
        self,
        make_request: Callable[[Bot, TelegramMethod[TelegramType]], Awaitable[Any]],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        if method.__api_method__ not in MESSAGES:
            return await make_request(bot, method)
        chat_key = chat_of(method)
        limiter = self.limiter
        bot_bucket, chat_buckets = limiter.buckets_of(bot.id, chat_key)
        try:
            await limiter.wait_for_slot(bot_bucket, chat_buckets)
        except TooLongAPause as pause:
            raise TelegramRetryAfter(method, f"Too Many Requests: retry after {pause.seconds}", pause.seconds) from None
        try:
            return await make_request(bot, method)
        except TelegramRetryAfter as error:
            limiter.refused += 1
            limiter.paused_bot += await limiter.buckets.pause(bot_bucket, chat_buckets, chat_key, float(error.retry_after))
            raise


def create_limiter(
    redis_url: str | None, bot_rate: Rate, chat_rate: Rate, group_rate: Rate, prefix: str = "outbound:"
) -> OutboundLimiter:
    limits = Limits(bot_rate, chat_rate, group_rate)
    buckets: Buckets = RedisBuckets(redis_url, prefix) if redis_url else LocalBuckets()
    return OutboundLimiter(limits, buckets)
