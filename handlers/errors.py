"""One place where a failure becomes a short apology; the bot keeps running."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ErrorEvent
from aiogram.utils.i18n import gettext as _

router = Router(name=__name__)
log = logging.getLogger(__name__)


@router.error()
async def apologise(event: ErrorEvent, bot: Bot) -> None:
    log.exception("update %s failed", event.update.update_id, exc_info=event.exception)
    chat_id = None
    if event.update.message is not None:
        chat_id = event.update.message.chat.id
    elif event.update.callback_query is not None and event.update.callback_query.message is not None:
        chat_id = event.update.callback_query.message.chat.id
    if chat_id is None:
        return
    try:
        await bot.send_message(chat_id, _("Sorry, something went wrong on our side. Please try again in a moment."))
    except TelegramAPIError as error:
        log.warning("could not apologise in chat %s: %s", chat_id, error)
