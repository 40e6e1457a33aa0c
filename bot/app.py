"""The composition root: settings in, a wired bot and dispatcher out. Used by the CLI and the tests."""

from __future__ import annotations

import asyncio
import contextlib
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
from aiogram.fsm.storage.base import BaseEventIsolation
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
from bot.db import create_engine, create_schema, create_session_factory
from bot.db.fsm_storage import SQLAlchemyStorage
from bot.desk import Desk
from bot.domain.faq import matcher_for
from bot.domain.policy import Policy, load_policy
from bot.i18n import ChatLocaleMiddleware, create_i18n
from bot.metrics import ErrorMetrics, Metrics, OutboundMetrics, UpdateMetrics
from bot.middlewares import FloodThrottle, UnitOfWorkMiddleware, UpdatesInFlight
from bot.services.audit import OutboundMiddleware
from bot.services.verification import VerificationRules
from bot.settings import SUPPORTED_LOCALES, Settings
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
        storage=SQLAlchemyStorage(session_factory),
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
        watch = DeskWatch(desk, session_factory, policy, clock)
        dispatcher.startup.register(watch.start)
        dispatcher.shutdown.register(watch.stop)
    return dispatcher


class DeskWatch:
    """Re-announces waiting cases in the agents' group while the bot polls."""

    def __init__(self, desk: Desk, session_factory: async_sessionmaker[AsyncSession], policy: Policy, clock: Clock) -> None:
        self.desk = desk
        self.session_factory = session_factory
        self.policy = policy
        self.clock = clock
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.desk.watch(self.session_factory, self.policy, self.clock))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def arrange_update_middlewares(
    dispatcher: Dispatcher, updates: UpdatesInFlight, unit_of_work: UnitOfWorkMiddleware, throttle: FloodThrottle
) -> None:
    """The order around every update, outermost first.

    The bound on updates in flight wraps aiogram's error middleware, so an apology counts as
    handling (and so does a dropped update); the flood throttle and then the unit of work come
    after aiogram has found the chat and the user, the throttle first so a dropped update costs no
    session; both come before aiogram's FSM middleware reads the state through the unit.
    """
    manager = dispatcher.update.outer_middleware
    builtin = list(manager)
    for middleware in builtin:
        manager.unregister(middleware)
    manager.register(updates)
    for middleware in builtin:
        if middleware is dispatcher.fsm:
            manager.register(throttle)
            manager.register(unit_of_work)
        manager.register(middleware)


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
    for locale in SUPPORTED_LOCALES:  # validates the bank's files; the first question does not wait
        matcher_for(locale)
    engine = create_engine(settings.database_url, settings.max_concurrent_updates)
    await create_schema(engine)
    session_factory = create_session_factory(engine)
    i18n = create_i18n(settings.default_locale)
    bot = create_bot(settings, token)
    bot.session.middleware(OutboundMiddleware(session_factory, clock))
    bot.session.middleware(RetryTransient(settings.telegram_attempts))  # one record per call
    metrics = Metrics()
    bot.session.middleware(OutboundMetrics(metrics))  # innermost: every attempt
    updates = UpdatesInFlight(settings.max_concurrent_updates)
    desk = None
    if settings.agent_chat_id is not None:
        desk = Desk(bot, settings.agent_chat_id, settings.agent_ids, i18n, settings.default_locale)
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
    return App(settings, engine, session_factory, bot, dispatcher, policy, i18n, clock, updates, desk, isolation, courier, metrics)


async def set_commands(bot: Bot, i18n: I18n) -> None:
    """The command menu, in each supported language (Telegram picks by the user's language)."""
    for locale in SUPPORTED_LOCALES:
        with i18n.context(), i18n.use_locale(locale):
            commands = [
                BotCommand(command="start", description=_("Begin or start again")),
                BotCommand(command="balance", description=_("What you owe")),
                BotCommand(command="plans", description=_("Ways to pay")),
                BotCommand(command="myplan", description=_("Your arrangement")),
                BotCommand(command="help", description=_("What I can do")),
                BotCommand(command="language", description=_("Change the language")),
                BotCommand(command="cancel", description=_("Stop what we are doing")),
                BotCommand(command="stop", description=_("No more messages from us")),
            ]
        language_code = None if locale == "en" else locale.split("_")[0]
        await bot.set_my_commands(commands, scope=BotCommandScopeDefault(), language_code=language_code)
