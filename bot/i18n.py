"""Translations: the compiled catalogs, and the reader's locale chosen per update."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiogram.types import TelegramObject, User
from aiogram.utils.i18n import I18n, I18nMiddleware

from bot.catalogs import DOMAIN, compile_catalogs
from bot.languages import LANGUAGES, SUPPORTED_LOCALES, locale_for_tag
from bot.settings import PROJECT_ROOT

LOCALES_DIR = PROJECT_ROOT / "locales"
"""The catalogs' sources (`.po`), in a checkout."""
PACKAGED_LOCALES_DIR = Path(__file__).resolve().parent / "locales"
"""The catalogs compiled when the wheel was built (`.mo` only), in an installed package."""

LANGUAGE_NAMES = {language.code: language.name for language in LANGUAGES}


def catalogs_dir() -> Path:
    """Where the compiled catalogs are: shipped in the package, else compiled from the checkout's locales/."""
    if any(PACKAGED_LOCALES_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.mo")):
        return PACKAGED_LOCALES_DIR
    compile_catalogs(LOCALES_DIR)
    return LOCALES_DIR


def create_i18n(default_locale: str) -> I18n:
    return I18n(path=catalogs_dir(), default_locale=default_locale, domain=DOMAIN)


def locale_for_language_code(language_code: str | None, default: str) -> str:
    """Map Telegram's IETF language tag (`en-US`, `zh-hans`, `ru`) to a supported locale."""
    if not language_code:
        return default
    return locale_for_tag(language_code) or default


class ChatLocaleMiddleware(I18nMiddleware):
    """The chat's chosen language, else the user's Telegram language, else the default."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        return self.choose_locale(data)

    def choose_locale(self, data: dict[str, Any]) -> str:
        ctx = data.get("ctx")
        profile = ctx.profile if ctx is not None else None
        if profile is not None and profile.locale in SUPPORTED_LOCALES:
            return profile.locale
        user: User | None = data.get("event_from_user")
        return locale_for_language_code(user.language_code if user else None, self.i18n.default_locale)
