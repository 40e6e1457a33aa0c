"""Calls to Telegram that fail for a moment are made again.

The Bot API answers a share of calls with flood control (429 with `retry_after`), a server error
(500, or 502 as an HTML page from its front end), no answer in time, or a dropped connection. None
of these carried the call out as far as the bot can tell, so the call is made again: after
`retry_after` for flood control, after a short, growing pause otherwise, a few times at most.
What Telegram refuses (400, 403, 404 …) is not retried: it would be refused again.

A wait longer than `longest_wait` is not made inside an update (the update would hold its chat's
lock meanwhile): the error goes to the caller, as it does once the attempts are used up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.exceptions import ClientDecodeError, TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType

log = logging.getLogger(__name__)

TRANSIENT = (TelegramServerError, TelegramNetworkError, ClientDecodeError)


class RetryTransient(BaseRequestMiddleware):
    def __init__(self, attempts: int = 5, first_pause: float = 0.25, longest_wait: float = 30.0) -> None:
        self.attempts = attempts
        self.first_pause = first_pause
        self.longest_wait = longest_wait
        self.retried = 0

    async def __call__(
        self,
        make_request: Callable[[Bot, TelegramMethod[TelegramType]], Awaitable[Any]],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        pause = self.first_pause
        for attempt in range(1, self.attempts + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as error:
                if attempt == self.attempts or error.retry_after > self.longest_wait:
                    raise
                wait = float(error.retry_after)
            except TRANSIENT as error:
                if attempt == self.attempts:
                    raise
                wait, pause = pause, pause * 2
                log.info("%s failed (%s), attempt %s of %s", method.__api_method__, type(error).__name__, attempt, self.attempts)
            self.retried += 1
            await asyncio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")
