"""Webhook mode: Telegram POSTs each update; the answer goes back once the update is handled.

The POST is answered only after the update's handling ended and its unit of work was committed
(aiogram's `handle_in_background=False`), so a process that dies mid-update leaves the request
unanswered and Telegram delivers the update again; a second delivery of an update handled before
is recognised by its audit row (`UpdateHandledBefore`). The bound on updates in flight holds here
as in polling: a request beyond it waits for a slot (Telegram sends at most `max_connections` at once).

At shutdown the process stops listening, lets the requests under way finish, then stops the
courier. It does not delete the webhook: other processes behind the same URL keep serving it, and
Telegram keeps the updates for a while when none answers.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bot.app import App, create_app
from bot.metrics import CONTENT_TYPE
from bot.settings import Settings

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 2.0
SHUTDOWN_TIMEOUT = 20.0


class UpdateHandler(SimpleRequestHandler):
    """aiogram's handler, answering each update only once it is handled.

    A method a handler returns is called through the bot (its middlewares record it), as polling
    does, instead of riding back in the webhook answer unrecorded.
    """

    async def _handle_request(self, bot: Bot, request: web.Request) -> web.Response:
        result = await self.dispatcher.feed_webhook_update(bot, await request.json(loads=bot.session.json_loads), **self.data)
        if isinstance(result, TelegramMethod):
            await self.dispatcher.silent_call_request(bot=bot, result=result)
        return web.json_response({})


class HealthChecks:
    """The database answers SELECT 1 and, when configured, Redis answers PING, each within a short timeout.

    The database is asked over a connection of its own, not one of the pool: the pool is sized for
    the updates in flight, and a busy moment must not make a healthy process look dead.
    """

    def __init__(self, settings: Settings, timeout: float = CHECK_TIMEOUT) -> None:
        self.timeout = timeout
        connect_args = {"timeout": timeout} if settings.database_url.startswith("postgresql") else {}
        self.engine = create_async_engine(settings.database_url, poolclass=NullPool, connect_args=connect_args)
        self.redis: Any = None
        if settings.redis_url:
            from redis.asyncio import Redis

            self.redis = Redis.from_url(settings.redis_url, socket_connect_timeout=timeout, socket_timeout=timeout)

    async def _database(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def run(self) -> dict[str, str]:
        checks = {"database": self._database()}
        if self.redis is not None:
            checks["redis"] = self.redis.ping()
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check, self.timeout)
                results[name] = "ok"
            except Exception as error:  # noqa: BLE001 - any failure is the answer
                results[name] = f"failed: {type(error).__name__}"
        return results

    async def close(self) -> None:
        await self.engine.dispose()
        if self.redis is not None:
            await self.redis.aclose()


class WebhookServer:
    def __init__(self, app: App) -> None:
        self.app = app
        settings = app.settings
        self.secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        self.health = HealthChecks(settings)
        web_app = web.Application()
        handler = UpdateHandler(app.dispatcher, app.bot, handle_in_background=False, secret_token=self.secret)
        # Registered by hand: `handler.register` would close the bot's session at shutdown, before
        # the requests under way have finished; `App.close` closes it last.
        web_app.router.add_post(settings.webhook_path, handler.handle)
        web_app.router.add_get("/healthz", self.healthz)
        web_app.router.add_get("/metrics", self.metrics)
        self.runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
        self.started = False

    async def healthz(self, _request: web.Request) -> web.Response:
        checks = await self.health.run()
        healthy = all(result == "ok" for result in checks.values())
        return web.json_response({"status": "ok" if healthy else "failing", "checks": checks}, status=200 if healthy else 503)

    async def metrics(self, _request: web.Request) -> web.Response:
        body = await self.app.metrics.render(self.app.session_factory)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def start(self, host: str, port: int) -> int:
        """Start the bot's background work, then listen; returns the port bound (0 picks one)."""
        dispatcher: Dispatcher = self.app.dispatcher
        await dispatcher.emit_startup(bot=self.app.bot, **dispatcher.workflow_data)
        self.started = True
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        return int(self.runner.addresses[0][1])

    async def set_webhook(self, url: str) -> None:
        settings = self.app.settings
        await self.app.bot.set_webhook(
            url,
            secret_token=self.secret,
            allowed_updates=self.app.dispatcher.resolve_used_update_types(),
            max_connections=settings.webhook_max_connections,
        )
        log.info("webhook set: %s", url)

    async def stop(self) -> None:
        """Stop listening, let the requests under way finish, then the background work; the webhook stays."""
        await self.runner.cleanup()
        if self.started:
            dispatcher = self.app.dispatcher
            await dispatcher.emit_shutdown(bot=self.app.bot, **dispatcher.workflow_data)
            self.started = False
        await self.health.close()


async def serve(settings: Settings) -> int:
    """`python -m bot webhook`: serve until SIGTERM or SIGINT."""
    assert settings.webhook_url is not None
    app = await create_app(settings)
    server = WebhookServer(app)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        port = await server.start(settings.webhook_host, settings.webhook_port)
        log.info("listening on %s:%s", settings.webhook_host, port)
        await server.set_webhook(settings.webhook_url)
        await stopping.wait()
        log.info("stopping: finishing the updates under way")
    finally:
        await server.stop()
        await app.close()
    return 0
