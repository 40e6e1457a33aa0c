"""One place where a failure becomes a short apology; the bot keeps running."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.types import ErrorEvent
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.i18n import locale_for_language_code
from bot.settings import Settings

log = logging.getLogger(__name__)


async def apologise(event: ErrorEvent, bot: Bot, i18n: I18n, settings: Settings) -> None:
    if isinstance(event.exception, TelegramForbiddenError):
        # The person blocked the bot (or left the chat) while the update was handled: nothing
        # failed on our side, and no apology could reach them.
        log.info("update %s not answered: %s", event.update.update_id, event.exception.message)
        return
    log.exception("update %s failed", event.update.update_id, exc_info=event.exception)
    chat_id = None
    if event.update.message is not None:
        chat_id = event.update.message.chat.id
    elif event.update.callback_query is not None and event.update.callback_query.message is not None:
        chat_id = event.update.callback_query.message.chat.id
    if chat_id is None:
        return
    user = event.update.event.from_user if hasattr(event.update.event, "from_user") else None
    locale = locale_for_language_code(user.language_code if user else None, settings.default_locale)
    try:
        with i18n.context(), i18n.use_locale(locale):
            text = _("Sorry, something went wrong on our side. Please try again in a moment.")
        await bot.send_message(chat_id, text)
    except TelegramAPIError as error:
        log.warning("could not apologise in chat %s: %s", chat_id, error)


def create_router() -> Router:
    router = Router(name=__name__)
    router.error.register(apologise)
    return router
