"""The language registry: one place names the bot's languages, and every file a language needs has them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.domain.faq import DEFAULT_FAQ_DIR
from bot.domain.policy import load_policy
from bot.i18n import locale_for_language_code
from bot.languages import LANGUAGES, SUPPORTED_LOCALES, language, locale_for_tag
from bot.settings import DEFAULT_POLICY_FILE, PROJECT_ROOT


@pytest.mark.parametrize(
    ("tag", "locale"),
    [("en", "en"), ("en-US", "en"), ("ru", "ru"), ("ru-RU", "ru"), ("zh-hans", "zh_CN"), ("zh-CN", "zh_CN"),
     ("zh", "zh_CN"), ("zh-TW", None), ("zh-hant", None), ("de", None), ("", None)],
)
def test_telegram_tags_map_to_locales(tag: str, locale: str | None) -> None:
    assert locale_for_tag(tag) == locale
    assert locale_for_language_code(tag, "en") == (locale or "en")


@pytest.mark.parametrize("code", SUPPORTED_LOCALES)
def test_every_language_has_its_catalog_knowledge_base_and_policy_texts(code: str) -> None:
    assert (PROJECT_ROOT / "locales" / code / "LC_MESSAGES" / "messages.po").is_file()
    assert (DEFAULT_FAQ_DIR / f"{code}.toml").is_file()
    assert (DEFAULT_FAQ_DIR / "examples" / f"{code}.toml").is_file()
    policy = load_policy(DEFAULT_POLICY_FILE)
    assert code in policy.handoff.keywords
    for pack in policy.jurisdictions.values():
        assert pack.credit_bureau.names[code]
    for disclosure in policy.disclosures:
        assert disclosure.texts[code]


def test_unknown_locales_fall_back_to_the_default_language() -> None:
    assert language("de").code == "en"
    assert [item.code for item in LANGUAGES] == list(SUPPORTED_LOCALES)
    assert len({item.name for item in LANGUAGES}) == len(LANGUAGES)
