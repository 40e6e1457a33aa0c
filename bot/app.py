"""The composition root: settings in, a wired bot and dispatcher out. Used by the CLI and the tests."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, DefaultKeyBuilder
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response
from aiogram.fsm.storage.memory import DisabledEventIsolation, SimpleEventIsolation
from aiogram.types import BotCommand, BotCommandScopeDefault
from aiogram.utils.callback_answer import CallbackAnswerMiddleware
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.courier import Courier
from bot.polling import ConfirmingDispatcher
from bot.telegram_retry import RetryTransient
from bot.outbound_limits import OutboundLimiter, Rate, create_limiter
from bot.db import create_engine, create_session_factory
from bot.db.fsm_storage import SQLAlchemyStorage
from bot.db.schema import require_current_schema
from bot.desk import WATCH_SECONDS, Desk
from bot.domain.faq import check_jurisdictions, matcher_for
from bot.domain.policy import Policy, load_policy
from bot.i18n import ChatLocaleMiddleware, create_i18n
from bot.leases import Lease, process_holder
from bot.metrics import ErrorMetrics, Metrics, OutboundMetrics, UpdateMetrics
from bot.middlewares import FloodThrottle, UnitOfWorkMiddleware, UpdateLogContext, UpdatesInFlight
from bot.services.audit import OutboundMiddleware
from bot.services.verification import VerificationRules
from bot.languages import SUPPORTED_LOCALES, language
from bot.settings import Settings
from handlers import get_routers
from handlers.handoff import open_case_topic

log = logging.getLogger(__name__)


@dataclass
class App:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    bot: Bot
    dispatcher: Dispatcher
    policy: Policy
    i18n: I18n
    clock: Clock
    updates: UpdatesInFlight
    desk: Desk | None
    isolation: BaseEventIsolation
    """One update per chat at a time."""
    courier: Courier
    """Completes the effects on Telegram that updates recorded and could not finish."""
    metrics: Metrics = field(default_factory=Metrics)

    async def start_polling(self, **options: Any) -> None:
        """Long polling, fetching no more updates than may be handled at once."""
        await self.dispatcher.start_polling(
            self.bot, close_bot_session=False, tasks_concurrency_limit=self.updates.limit, **options
        )

    async def close(self, settle: float = 5.0) -> None:
        """Close everything; connections still out (work finishing) are awaited `settle` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settle
        while self.engine.pool.checkedout() and loop.time() < deadline:  # type: ignore[attr-defined]
            await asyncio.sleep(0.02)
        if self.engine.pool.checkedout():  # type: ignore[attr-defined]
            log.warning("closing with %s database connections still in use", self.engine.pool.checkedout())  # type: ignore[attr-defined]
        await self.dispatcher.storage.close()
        await self.isolation.close()
        redis = getattr(self.isolation, "redis", None)
        if redis is not None:  # aiogram's RedisEventIsolation.close leaves its connections open
            await redis.aclose(close_connection_pool=True)
        await self.bot.session.close()
        await self.engine.dispose()


class KeepResponseTypes(BaseRequestMiddleware):
    """Keeps each `Response[T]` aiogram validates answers with, so pydantic builds it only once.

    pydantic caches parametrized generic models weakly; nothing else holds aiogram's, so each call
    to Telegram used to build its response model anew.
    """

    def __init__(self) -> None:
        self.kept: dict[Any, type[Response[Any]]] = {}

    async def __call__(self, make_request: Any, bot: Bot, method: TelegramMethod[Any]) -> Any:
        returning = method.__returning__
        if returning not in self.kept:
            self.kept[returning] = Response[returning]  # type: ignore[valid-type]
        return await make_request(bot, method)


def create_bot(settings: Settings, token: str | None = None) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url), timeout=settings.telegram_timeout)
    session.middleware(KeepResponseTypes())
    return Bot(
        token=token or settings.token or "",
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )


def create_dispatcher(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    policy: Policy,
    i18n: I18n,
    clock: Clock,
    updates: UpdatesInFlight,
    desk: Desk | None,
    isolation: BaseEventIsolation,
) -> ConfirmingDispatcher:
    dispatcher = ConfirmingDispatcher(
        storage=create_fsm_storage(settings, session_factory),
        events_isolation=DisabledEventIsolation(),  # the unit-of-work middleware holds the chat's lock
        settings=settings,
        policy=policy,
        clock=clock,
        i18n=i18n,
        desk=desk,
        session_idle_minutes=settings.session_idle_minutes,
    )
    rules = VerificationRules(
        max_attempts=settings.verify_max_attempts,
        lock_minutes=settings.verify_lock_minutes,
        idle_minutes=settings.session_idle_minutes,
        phone_key=settings.hash_key(),
    )
    unit_of_work = UnitOfWorkMiddleware(session_factory, isolation, dispatcher.fsm, rules, policy, clock)
    locales = ChatLocaleMiddleware(i18n)
    throttle = FloodThrottle(settings.flood_rate, settings.flood_burst, i18n, locales.choose_locale, exempt=settings.agent_ids)
    arrange_update_middlewares(dispatcher, updates, unit_of_work, throttle)
    dispatcher.update.outer_middleware(locales)
    dispatcher.callback_query.outer_middleware(CallbackAnswerMiddleware())
    dispatcher.include_routers(*get_routers(settings.agent_chat_id))
    dispatcher.startup.register(set_commands)
    if desk is not None:
        watch = DeskWatch(desk, session_factory, policy, clock, settings.desk_watch_seconds)
        dispatcher.startup.register(watch.start)
        dispatcher.shutdown.register(watch.stop)
    return dispatcher


class DeskWatch:
    """Re-announces waiting cases in the agents' group while the bot polls (in one process of several)."""

    def __init__(
        self, desk: Desk, session_factory: async_sessionmaker[AsyncSession], policy: Policy, clock: Clock, every: float = WATCH_SECONDS
    ) -> None:
        self.desk = desk
        self.every = every
        self.session_factory = session_factory
        self.policy = policy
        self.clock = clock
        self.lease = Lease(session_factory, "desk-watch", process_holder(), timedelta(seconds=3 * every), clock)
        self.stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.stopping.clear()
        self.task = asyncio.create_task(
            self.desk.watch(self.session_factory, self.policy, self.clock, self.lease, self.stopping, self.every)
        )

    async def stop(self) -> None:
        """Lets a round under way finish, then hands the lease back."""
        self.stopping.set()
        if self.task is not None:
            await self.task
            self.task = None


def arrange_update_middlewares(
    dispatcher: Dispatcher, updates: UpdatesInFlight, unit_of_work: UnitOfWorkMiddleware, throttle: FloodThrottle
) -> None:
    """The order around every update, outermost first.

    The log context comes first, so every line about an update names it. The bound on updates in flight wraps aiogram's error middleware, so an apology counts as
    handling (and so does a dropped update); the flood throttle and then the unit of work come
    after aiogram has found the chat and the user, the throttle first so a dropped update costs no
    session; both come before aiogram's FSM middleware reads the state through the unit.
    """
    manager = dispatcher.update.outer_middleware
    builtin = list(manager)
    for middleware in builtin:
        manager.unregister(middleware)
    manager.register(UpdateLogContext())
    manager.register(updates)
    for middleware in builtin:
        if middleware is dispatcher.fsm:
            manager.register(throttle)
            manager.register(unit_of_work)
        manager.register(middleware)


FSM_TTL = timedelta(days=7)
"""How long Redis keeps a chat's conversation step and data after it last changed: a chat idle
that long starts again from the menu (its verification expired long before)."""


def create_fsm_storage(settings: Settings, session_factory: async_sessionmaker[AsyncSession]) -> BaseStorage:
    """Where conversation state lives: in Redis when there is one (several processes), else in the database.

    Either way it survives a restart. In the database it is read with the chat's own query; in
    Redis it is one more round trip. Its data holds what verification keeps, the phone's keyed hash,
    never the phone.
    """
    if settings.redis_url:
        from aiogram.fsm.storage.redis import RedisStorage

        return RedisStorage.from_url(
            settings.redis_url,
            key_builder=DefaultKeyBuilder(with_bot_id=True, with_destiny=True),
            state_ttl=FSM_TTL,
            data_ttl=FSM_TTL,
        )
    return SQLAlchemyStorage(session_factory)


def outermost(dispatcher: Dispatcher, middleware: Any) -> None:
    """Put `middleware` around all the others of every update."""
    manager = dispatcher.update.outer_middleware
    others = list(manager)
    for other in others:
        manager.unregister(other)
    for each in (middleware, *others):
        manager.register(each)


def create_events_isolation(settings: Settings) -> BaseEventIsolation:
    """One update per chat at a time: in this process, or across processes through Redis."""
    if settings.redis_url:
        from aiogram.fsm.storage.redis import RedisEventIsolation

        return RedisEventIsolation.from_url(settings.redis_url)
    return SimpleEventIsolation()


async def create_app(settings: Settings, *, clock: Clock | None = None, token: str | None = None) -> App:
    """Build everything the bot needs; the caller runs polling and closes the app."""
    clock = clock or Clock()
    policy = load_policy(settings.policy_file)
    engine = create_engine(settings.database_url, settings.max_concurrent_updates)
    try:
        await require_current_schema(engine)  # first: a database to migrate is said at once
        for locale in SUPPORTED_LOCALES:  # validates the bank's files; the first question does not wait
            matcher_for(locale)
        check_jurisdictions(policy.jurisdictions)
    except BaseException:
        await engine.dispose()
        raise
    session_factory = create_session_factory(engine)
    i18n = create_i18n(settings.default_locale)
    bot = create_bot(settings, token)
    limiter = create_outbound_limiter(settings)
    bot.session.middleware(OutboundMiddleware(session_factory, clock))
    pace_outbound(bot, limiter, settings.telegram_attempts)
    metrics = Metrics()
    bot.session.middleware(OutboundMetrics(metrics))  # innermost: every attempt
    updates = UpdatesInFlight(settings.max_concurrent_updates)
    desk = None
    if settings.agent_chat_id is not None:
        desk = Desk(bot, settings.agent_chat_id, settings.agent_ids, i18n, settings.default_locale, settings.supervisor_ids)
    isolation = create_events_isolation(settings)
    dispatcher = create_dispatcher(settings, session_factory, policy, i18n, clock, updates, desk, isolation)
    outermost(dispatcher, UpdateMetrics(metrics))
    dispatcher.errors.outer_middleware(ErrorMetrics(metrics))
    courier = Courier(
        bot, session_factory, clock, policy, desk, open_case_topic,
        every=settings.outbox_every_seconds, grace=timedelta(seconds=settings.outbox_grace_seconds),
    )
    dispatcher.shutdown.register(dispatcher.drain)
    dispatcher.startup.register(courier.start)
    dispatcher.shutdown.register(courier.stop)
    dispatcher.shutdown.register(limiter.close)
    return App(settings, engine, session_factory, bot, dispatcher, policy, i18n, clock, updates, desk, isolation, courier, metrics)


def pace_outbound(bot: Bot, limiter: OutboundLimiter, attempts: int) -> None:
    """The limiter's turns per chat, then retries, then pacing, innermost: every attempt is paced.

    Registered after `OutboundMiddleware`, so a call waits for its turn only once the update's
    unit of work is committed: no write turn or connection is held while it waits.
    """
    bot.session.middleware(limiter.in_order)
    bot.session.middleware(RetryTransient(attempts))  # one record per call
    bot.session.middleware(limiter.pace)


def create_outbound_limiter(settings: Settings) -> OutboundLimiter:
    """Telegram's limits on what the bot sends, shared through Redis when there is one (bot.outbound_limits)."""
    return create_limiter(
        settings.redis_url,
        Rate(settings.outbound_bot_per_second, settings.outbound_bot_burst),
        Rate(settings.outbound_chat_per_second, settings.outbound_chat_burst),
        Rate(settings.outbound_group_per_minute / 60, settings.outbound_group_burst),
    )


async def set_commands(bot: Bot, i18n: I18n) -> None:
    """The command menu, in each supported language (Telegram picks by the user's language)."""
    for locale in SUPPORTED_LOCALES:
        with i18n.context(), i18n.use_locale(locale):
            commands = [
                BotCommand(command="start", description=_("Begin or start again")),
                BotCommand(command="balance", description=_("What you owe")),
                BotCommand(command="plans", description=_("Ways to pay")),
                BotCommand(command="myplan", description=_("Your arrangement")),
                BotCommand(command="faq", description=_("Questions people often ask")),
                BotCommand(command="agent", description=_("Talk to a person")),
                BotCommand(command="help", description=_("What I can do")),
                BotCommand(command="language", description=_("Change the language")),
                BotCommand(command="cancel", description=_("Stop what we are doing")),
                BotCommand(command="stop", description=_("No more messages from us")),
            ]
        language_code = language(locale).commands_language
        await bot.set_my_commands(commands, scope=BotCommandScopeDefault(), language_code=language_code)
