"""Per-update wiring: a bound on updates in flight, a flood throttle, one chat at a time, one unit of work."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramAPIError
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.fsm.storage.base import BaseEventIsolation
from aiogram.types import Chat, TelegramObject, Update, User
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.context import UpdateContext
from bot.db.fsm_storage import SQLAlchemyStorage
from bot.db.unit_of_work import UnitOfWork, UpdateHandledBefore, unit_of_work
from bot.domain.policy import Policy
from bot.logs import CURRENT_UPDATE
from bot.services.arrangements import ArrangementService
from bot.services.audit import AuditTrail
from bot.services.cases import CaseService
from bot.services.filing import current_account
from bot.services.contact import ContactGate
from bot.services.outbox import Outbox
from bot.services.verification import VerificationRules, VerificationService
from handlers.states import PRIVATE_STEPS

log = logging.getLogger(__name__)

log = logging.getLogger(__name__)


class UpdateLogContext(BaseMiddleware):
    """Outermost: every log line written while an update is handled carries its id and its chat's id."""

    async def __call__(
        self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]], event: TelegramObject, data: dict[str, Any]
    ) -> Any:
        assert isinstance(event, Update)
        chat = UserContextMiddleware.resolve_event_context(event).chat
        token = CURRENT_UPDATE.set((event.update_id, chat.id if chat else None))
        try:
            return await handler(event, data)
        finally:
            CURRENT_UPDATE.reset(token)


class UnitOfWorkMiddleware(BaseMiddleware):
    """Holds the chat's lock, opens the update's unit of work and gives handlers `ctx`.

    The lock is taken here rather than by aiogram's FSM middleware so that the unit is committed
    before the next update of the same chat reads the state it wrote.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        isolation: BaseEventIsolation,
        fsm: FSMContextMiddleware,
        rules: VerificationRules,
        policy: Policy,
        clock: Clock,
    ) -> None:
        self.session_factory = session_factory
        self.isolation = isolation
        self.fsm = fsm
        self.rules = rules
        self.policy = policy
        self.clock = clock

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        bot: Bot = data["bot"]
        fsm_context = self.fsm.resolve_event_context(bot, data)
        chat_lock = self.isolation.lock(fsm_context.key) if fsm_context else contextlib.nullcontext()
        try:
            return await self._handle(handler, event, data, chat_lock, fsm_context)
        except UpdateHandledBefore:
            log.info("update %s was handled before; this delivery is ignored", event.update_id)
            return UNHANDLED

    async def _handle(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: Update,
        data: dict[str, Any],
        chat_lock: Any,
        fsm_context: Any,
    ) -> Any:
        async with chat_lock, unit_of_work(self.session_factory) as unit:
            fsm_key = None
            if fsm_context is not None and isinstance(fsm_context.storage, SQLAlchemyStorage):
                fsm_key = fsm_context.storage.key_string(fsm_context.key)
            ctx = await self.context(unit, data.get("event_chat"), data.get("event_from_user"), fsm_key)
            data["ctx"] = ctx
            data["policy"] = ctx.policy  # the rules of the account's jurisdiction, once it is known
            token = current_account.set(ctx.account.id if ctx.account is not None else None)
            try:
                step = await self._step(unit, fsm_key, fsm_context)
                ctx.audit.inbound(event, _chat_id(data), PRIVATE_STEPS.get(step) if step else None)
                if event.message is not None and ctx.profile is not None:
                    await ctx.verification.opt_in(ctx.profile)  # writing again ends an opt-out; /stop sets it anew
                return await handler(event, data)
            finally:
                current_account.reset(token)

    @staticmethod
    async def _step(unit: UnitOfWork, fsm_key: str | None, fsm_context: Any) -> str | None:
        """The chat's conversation step, for the audit trail: from the unit (SQL storage) or the storage (Redis)."""
        if fsm_key is not None:
            return await unit.fsm_state(fsm_key)
        if fsm_context is not None:
            return await fsm_context.get_state()
        return None

    async def context(
        self, unit: UnitOfWork, chat: Chat | None, user: User | None, fsm_key: str | None = None
    ) -> UpdateContext:
        session = unit.session
        verification = VerificationService(session, self.rules, self.clock)
        cases = CaseService(session, self.clock)
        chat_session = None
        if chat is not None and chat.type == "private" and user is not None:
            chat_session = await verification.open_chat(chat.id, user.id, fsm_key)
        account = chat_session.account if chat_session is not None else None
        policy = self.policy.for_account(account) if account is not None else self.policy
        return UpdateContext(
            unit=unit,
            policy=policy,
            verification=verification,
            arrangements=ArrangementService(session, policy, self.clock),
            cases=cases,
            audit=AuditTrail(unit, self.clock),
            outbox=Outbox(session, self.clock),
            contacts=ContactGate(session, self.policy, self.clock),
            chat=chat_session,
        )


def _chat_id(data: dict[str, Any]) -> int | None:
    chat: Chat | None = data.get("event_chat")
    return chat.id if chat else None


class UpdatesInFlight(BaseMiddleware):
    """Bounds how many updates are handled at once, and knows which ones are finished.

    The bound is what sizes the database pool (each update holds at most one connection), so no
    update can wait for a connection another update holds. A shutdown or a test waits on `handled`.
    """

    REMEMBERED = 10_000

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self.running = 0
        self.finished: set[int] = set()
        self._handling: dict[int, asyncio.Event] = {}

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        earlier = self._handling.get(event.update_id)
        if earlier is not None:
            await earlier.wait()  # delivered again while handled: done when the first delivery is
            return UNHANDLED
        if event.update_id in self.finished:
            return UNHANDLED  # delivered again, and remembered here; the database knows older ones
        self.running += 1
        self._handling[event.update_id] = done = asyncio.Event()
        try:
            async with self._slots:
                return await handler(event, data)
        finally:
            self.running -= 1
            del self._handling[event.update_id]
            done.set()
            if len(self.finished) >= self.REMEMBERED:
                self.finished.clear()
            self.finished.add(event.update_id)

    def handled(self, update_id: int) -> bool:
        """True when this update was handled and no other update is being handled."""
        return update_id in self.finished and self.running == 0


@dataclass
class Bucket:
    """One sender's tokens: spent one per update, refilled at the sustained rate up to the burst."""

    tokens: float
    at: float
    warned: bool = False
    """Told of this flood already; cleared once the bucket is full again (the episode is over)."""
    locale: str = ""
    """The chat's language as its last handled update left it, so the notice needs no query."""


class FloodThrottle(BaseMiddleware):
    """Drops what one sender sends beyond a token bucket, before any database work.

    Each (chat, user) has a bucket of `burst` updates refilled at `rate` a second; an update finding
    it empty is dropped without a session or a query. A private chat is told once per flood that it
    is sending too fast, in the chat's language as its last handled update left it (`locale_of`
    reads it from the update's data, as the locale middleware does); a dropped button press is
    answered so its spinner stops. Groups are dropped silently: the bot does not talk there except
    to agents. Agents (`exempt`) are the bank's staff and are not throttled: one agent may work
    through many cases at once.

    At most `remembered` buckets are kept, the least recently used given up first: a chat that
    has not written for a while has a full bucket anyway. Buckets live in this process; with
    several bot processes behind Redis each process throttles the updates it receives.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        i18n: I18n,
        locale_of: Callable[[dict[str, Any]], str],
        remembered: int = 50_000,
        now: Callable[[], float] = time.monotonic,
        exempt: frozenset[int] = frozenset(),
    ) -> None:
        self.exempt = exempt
        self.rate = rate
        self.burst = burst
        self.i18n = i18n
        self.locale_of = locale_of
        self.remembered = remembered
        self.now = now
        self.buckets: OrderedDict[tuple[int, int], Bucket] = OrderedDict()
        self.dropped = 0

    def admit(self, key: tuple[int, int]) -> tuple[bool, Bucket]:
        """Take a token for `key`: (True, bucket) when the update may go on."""
        now = self.now()
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = Bucket(tokens=float(self.burst), at=now)
            self.buckets[key] = bucket
            if len(self.buckets) > self.remembered:
                self.buckets.popitem(last=False)
        else:
            self.buckets.move_to_end(key)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            if bucket.warned and bucket.tokens >= self.burst:
                bucket.warned = False
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True, bucket
        return False, bucket

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        chat: Chat | None = data.get("event_chat")
        user: User | None = data.get("event_from_user")
        if (chat is None and user is None) or (user is not None and user.id in self.exempt):
            return await handler(event, data)
        key = (chat.id if chat else user.id, user.id if user else 0)  # type: ignore[union-attr]
        admitted, bucket = self.admit(key)
        if admitted:
            result = await handler(event, data)
            if result is not UNHANDLED:  # an update handled before left no chat state to read
                bucket.locale = self.locale_of(data)
            return result
        self.dropped += 1
        await self.turn_away(event, data["bot"], chat, user, bucket)
        return None

    async def turn_away(self, event: Update, bot: Bot, chat: Chat | None, user: User | None, bucket: Bucket) -> None:
        """Answer a dropped button press; tell a private chat once per flood to slow down."""
        if event.callback_query is not None:
            with contextlib.suppress(TelegramAPIError):  # too old already: nothing spins any more
                await bot.answer_callback_query(event.callback_query.id)
        if bucket.warned or chat is None or chat.type != "private":
            return
        bucket.warned = True
        with self.i18n.context(), self.i18n.use_locale(bucket.locale or self.locale_of({"event_from_user": user})):
            text = _(
                "You are sending messages faster than I can read them. "
                "Please wait a moment, then send your last message again."
            )
        try:
            await bot.send_message(chat.id, text)
        except TelegramAPIError as error:
            log.info("could not ask chat %s to slow down: %s", chat.id, error.message)
