"""Prometheus metrics of one bot process, in a registry the App owns (tests build many apps)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.types import ErrorEvent, TelegramObject, Update
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Case

CONTENT_TYPE = CONTENT_TYPE_LATEST
HANDLING_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.updates = Counter(
            "repay_updates", "Updates received from Telegram, by type (redeliveries included)", ["type"], registry=self.registry
        )
        self.handling = Histogram(
            "repay_update_handling_seconds", "Time from receiving an update to the end of its handling (commit included)",
            buckets=HANDLING_BUCKETS, registry=self.registry,
        )
        self.errors = Counter(
            "repay_update_errors", "Handler exceptions (each one an apology, unless the person blocked the bot)",
            ["exception"], registry=self.registry,
        )
        self.telegram_requests = Counter(
            "repay_telegram_requests", "Calls to the Bot API, by method; each attempt of a retried call counts",
            ["method"], registry=self.registry,
        )
        self.telegram_flood_waits = Counter(
            "repay_telegram_retry_after", "Bot API answers 429 (flood control, retry_after), by method",
            ["method"], registry=self.registry,
        )
        self.in_flight = Gauge("repay_updates_in_flight", "Updates being handled now in this process", registry=self.registry)
        self.cases_waiting = Gauge(
            "repay_cases_waiting", "Cases waiting for an agent (the whole database: the same in every process)",
            registry=self.registry,
        )

    async def render(self, session_factory: async_sessionmaker[AsyncSession]) -> bytes:
        """The text exposition; the cases waiting are counted now, in one query."""
        async with session_factory() as session:
            # `status != 'resolved'` is the predicate of the open-case indexes: the count reads only open cases.
            waiting = await session.scalar(
                select(func.count()).select_from(Case).where(Case.status != "resolved", Case.status == "waiting")
            )
        self.cases_waiting.set(waiting or 0)
        return generate_latest(self.registry)


class UpdateMetrics(BaseMiddleware):
    """Outermost around every update: counts it by type and times its handling."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(
        self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]], event: TelegramObject, data: dict[str, Any]
    ) -> Any:
        assert isinstance(event, Update)
        self.metrics.updates.labels(event.event_type).inc()
        started = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            return await handler(event, data)
        finally:
            self.metrics.in_flight.dec()
            self.metrics.handling.observe(time.perf_counter() - started)


class ErrorMetrics(BaseMiddleware):
    """On the dispatcher's error observer: counts each handler exception before the apology."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(
        self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]], event: TelegramObject, data: dict[str, Any]
    ) -> Any:
        assert isinstance(event, ErrorEvent)
        self.metrics.errors.labels(type(event.exception).__name__).inc()
        return await handler(event, data)


class OutboundMetrics(BaseRequestMiddleware):
    """Innermost on the bot session: sees each attempt of a call, and each 429."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(self, make_request: Callable[..., Awaitable[Any]], bot: Bot, method: TelegramMethod[Any]) -> Any:
        name = method.__api_method__
        self.metrics.telegram_requests.labels(name).inc()
        try:
            return await make_request(bot, method)
        except TelegramRetryAfter:
            self.metrics.telegram_flood_waits.labels(name).inc()
            raise
