"""The languages the bot speaks, and what each one needs to be read and written.

Adding a language is one entry here, its gettext catalog in `locales/`, its knowledge base in
`bot/data/faq/`, and its texts in the policy (disclosures, handoff words, bureau names); the
policy check and the tests then ask for each of those. The FAQ matcher's analyzer
(`bot.domain.faq`: stemming, stop words, word segmentation) is the one piece written per language.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    code: str
    """The locale: the catalog's directory and the accounts file's `locale` value."""
    name: str
    """The language's name in itself, on the language buttons."""
    telegram_tags: frozenset[str]
    """Telegram `language_code` tags (lower case) that mean this language; a tag's base
    (``en`` of ``en-us``) is tried after the whole tag."""
    spaced_words: bool
    """Whether words are separated by spaces: keywords must start a word (not so in Chinese)."""
    question_read: int
    """Characters of a message the FAQ matcher reads: a question's length in this language."""
    birth_date_example: str
    """How a birth date may be typed, for a log line or an error that has no translation."""
    decimal_comma: bool
    """Amounts are written 1 500,50 (a comma before the decimals) rather than 1,500.50."""
    commands_language: str | None
    """The `language_code` the bot's command list is set for (None: the default list)."""


LANGUAGES: tuple[Language, ...] = (
    Language("en", "English", frozenset({"en"}), True, 250, "03/07/1985 or 7 March 1985", False, None),
    Language(
        "zh_CN", "简体中文", frozenset({"zh", "zh-cn", "zh-hans", "zh-sg", "zh-hans-cn"}), False, 80,
        "1985年3月7日 or 1985-03-07", False, "zh",
    ),
    Language("ru", "Русский", frozenset({"ru"}), True, 250, "07.03.1985 or 7 March 1985", True, "ru"),
)
DEFAULT_LANGUAGE = "en"
SUPPORTED_LOCALES: tuple[str, ...] = tuple(language.code for language in LANGUAGES)
_BY_CODE = {language.code: language for language in LANGUAGES}


def language(code: str) -> Language:
    """The language of a supported locale (the default language for any other)."""
    return _BY_CODE.get(code) or _BY_CODE[DEFAULT_LANGUAGE]


def locale_for_tag(tag: str) -> str | None:
    """The locale a Telegram language tag (`en-US`, `zh-hans`, `ru`) means, or None."""
    tag = tag.replace("_", "-").lower()
    for candidate in (tag, tag.split("-")[0]):
        for known in LANGUAGES:
            if candidate in known.telegram_tags:
                return known.code
        if tag.startswith("zh"):
            return None  # zh-TW, zh-Hant: not the simplified Chinese the bot writes
    return None
