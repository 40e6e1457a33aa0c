"""Every user-facing string in the code is in each catalog, translated, with the same placeholders."""

from __future__ import annotations

import re
import string

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.i18n import LOCALES_DIR, create_i18n
from bot.settings import PROJECT_ROOT, SUPPORTED_LOCALES


def strings_in_code() -> set[str | tuple[str, str]]:
    """Every message in the code: a string, or (singular, plural) for an ngettext count."""
    found: set[str | tuple[str, str]] = set()
    for package in ("bot", "handlers"):
        for _filename, _line, message, _comments, _context in extract_from_dir(
            PROJECT_ROOT / package, method_map=[("**.py", "python")],
            keywords={"_": None, "__": None, "ngettext": (1, 2)},
        ):
            found.add(message if isinstance(message, str) else (message[0], message[1]))
    return found


def placeholders(text: str) -> set[str]:
    return {name for _literal, name, _spec, _conversion in string.Formatter().parse(text) if name}


CODE_STRINGS = strings_in_code()


def test_the_code_has_strings_to_translate() -> None:
    assert "Thank you." in CODE_STRINGS
    assert len(CODE_STRINGS) > 30


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_catalog_translates_every_string_in_the_code(locale: str) -> None:
    with (LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source, locale=locale)
    missing = sorted(str(text) for text in CODE_STRINGS if catalog.get(text) is None)
    untranslated = sorted(str(text) for text in CODE_STRINGS if catalog.get(text) and not all(forms(catalog.get(text))))
    fuzzy = sorted(str(message.id) for message in catalog if message.id and message.fuzzy)
    assert not missing, f"{locale}: not in the catalog: {missing}"
    assert not untranslated, f"{locale}: untranslated: {untranslated}"
    assert not fuzzy, f"{locale}: fuzzy: {fuzzy}"
    for text in CODE_STRINGS:
        translations = forms(catalog.get(text))
        if isinstance(text, tuple):
            assert len(translations) == catalog.num_plurals, f"{locale}: plural forms of {text[1]!r}"
        for translation in translations:
            assert placeholders(translation) == placeholders(text if isinstance(text, str) else text[1]), (
                f"{locale}: placeholders differ in {text!r}"
            )
            assert not re.search(r"<[a-z]", translation), f"{locale}: markup in {text!r}"


def forms(message) -> tuple[str, ...]:
    """A message's translation: one string, or each plural form."""
    return message.string if isinstance(message.string, tuple) else (message.string,)


def test_catalogs_compile_and_load() -> None:
    i18n = create_i18n("en")
    assert set(SUPPORTED_LOCALES) <= set(i18n.available_locales)
    with i18n.context(), i18n.use_locale("ru"):
        assert i18n.gettext("Thank you.") == "Спасибо."
    with i18n.context(), i18n.use_locale("zh_CN"):
        assert i18n.gettext("Thank you.") == "谢谢。"


DATE_PLACEHOLDERS = {"date", "latest", "first", "last", "until", "drop_off", "expires", "day", "due"}
"""Placeholders filled with `day()`; `{time}` is `when()`, which ends in the time of day."""


def test_a_russian_date_never_ends_in_two_full_stops() -> None:
    """Russian dates end in "г." (`2 дек. 2026 г.`): a sentence ending with one takes no second stop."""
    from datetime import date

    from bot.formatting import day

    written = day(date(2026, 12, 2), "ru")
    assert written.endswith("г.")
    with (LOCALES_DIR / "ru" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source, locale="ru")
    doubled = []
    for message in catalog:
        if not message.id or not isinstance(message.string, str):
            continue
        names = placeholders(message.string)
        filled = message.string.format(**{name: written if name in DATE_PLACEHOLDERS else "X" for name in names})
        if "г.." in filled:
            doubled.append(message.string)
    assert not doubled, doubled
