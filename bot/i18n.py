"""Translations: catalogs compiled at start-up, and the reader's locale chosen per update."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiogram.types import TelegramObject, User
from aiogram.utils.i18n import I18n, I18nMiddleware
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from bot.settings import PROJECT_ROOT, SUPPORTED_LOCALES

LOCALES_DIR = PROJECT_ROOT / "locales"
DOMAIN = "messages"

LANGUAGE_NAMES = {"en": "English", "zh_CN": "简体中文", "ru": "Русский"}


def compile_catalogs(locales_dir: Path = LOCALES_DIR) -> None:
    """Compile each `.po` whose `.mo` is missing or older, so no compiled file lives in git."""
    for po_path in sorted(locales_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as source:
            catalog = read_po(source, locale=po_path.parent.parent.name)
        temporary = mo_path.with_suffix(".mo.tmp")
        with temporary.open("wb") as target:
            write_mo(target, catalog)
        temporary.replace(mo_path)


def create_i18n(default_locale: str, locales_dir: Path = LOCALES_DIR) -> I18n:
    compile_catalogs(locales_dir)
    return I18n(path=locales_dir, default_locale=default_locale, domain=DOMAIN)


def locale_for_language_code(language_code: str | None, default: str) -> str:
    """Map Telegram's IETF language tag (`en-US`, `zh-hans`, `ru`) to a supported locale."""
    if not language_code:
        return default
    tag = language_code.replace("_", "-").lower()
    if tag.startswith("zh"):
        return "zh_CN" if tag in {"zh", "zh-cn", "zh-hans", "zh-sg", "zh-hans-cn"} else default
    base = tag.split("-")[0]
    return base if base in SUPPORTED_LOCALES else default


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
