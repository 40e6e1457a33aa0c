"""Long polling that confirms an update to Telegram only once the bot has handled it.

aiogram confirms an update (the next getUpdates' `offset`) as soon as it has handed it out, so
updates being handled when the process dies are gone. Here the offset moves only past updates
whose handling ended: after a crash Telegram delivers the unfinished ones again, and an update
handled before is recognised by its recorded id (`bot.db.unit_of_work.UpdateHandledBefore`).
Updates handed out and not finished come back with every poll; they are not handed out twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from aiogram import Bot, Dispatcher, loggers
from aiogram.methods import GetUpdates
from aiogram.types import Update
from aiogram.utils.backoff import Backoff, BackoffConfig

from bot.telegram_retry import TRANSIENT

BACKOFF = BackoffConfig(min_delay=1.0, max_delay=5.0, factor=1.3, jitter=0.1)
STALLED_POLL_WAIT = 0.5
"""How long to wait for a handling to end when a poll brought only updates already handed out."""


class ConfirmingDispatcher(Dispatcher):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._unfinished: set[int] = set()
        self._progress = asyncio.Event()

    async def drain(self, timeout: float = 15.0) -> None:
        """At shutdown: let the updates being handled finish (what is left is delivered again)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._unfinished and loop.time() < deadline:
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), deadline - loop.time())

    async def _process_update(self, bot: Bot, update: Update, call_answer: bool = True, **kwargs: Any) -> bool:
        try:
            return await super()._process_update(bot, update, call_answer, **kwargs)
        finally:
            self._unfinished.discard(update.update_id)
            self._progress.set()

    async def _listen_updates(  # type: ignore[override]
        self,
        bot: Bot,
        polling_timeout: int = 30,
        backoff_config: BackoffConfig = BACKOFF,
        allowed_updates: list[str] | None = None,
    ) -> AsyncGenerator[Update, None]:
        backoff = Backoff(config=backoff_config)
        get_updates = GetUpdates(timeout=polling_timeout, allowed_updates=allowed_updates)
        kwargs = {"request_timeout": int(bot.session.timeout + polling_timeout)} if bot.session.timeout else {}
        handed_out: set[int] = set()
        newest = 0
        while True:
            try:
                updates = await bot(get_updates, **kwargs)
            except Exception as error:  # noqa: BLE001 - polling outlives Telegram being away
                level = loggers.dispatcher.warning if isinstance(error, TRANSIENT) else loggers.dispatcher.error
                level("Failed to fetch updates - %s: %s; again in %.1f s", type(error).__name__, error, backoff.next_delay)
                await backoff.asleep()
                continue
            backoff.reset()
            fresh = 0
            for update in updates:
                newest = max(newest, update.update_id)
                if update.update_id in handed_out:
                    continue
                handed_out.add(update.update_id)
                self._unfinished.add(update.update_id)
                fresh += 1
                yield update
            if not fresh and any(update.update_id in self._unfinished for update in updates):
                # Only updates still being handled came back: poll again once one of them ends.
                self._progress.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._progress.wait(), STALLED_POLL_WAIT)
            get_updates.offset = min(self._unfinished, default=newest + 1) if newest else None
            if get_updates.offset is not None:
                handed_out = {update_id for update_id in handed_out if update_id >= get_updates.offset}
