"""No input is expensive: what reads free text costs time linear in it, or reads a bounded part of it.

Each function is timed (process time, best of several runs, so other processes and a slow machine
matter little) on 1,024 and 4,096 characters of the same kind of text. Linear cost grows about 4
times from one to the other, quadratic 16 times; the test allows 8. A call on 4,096 characters
must also stay well under the 20 ms that would hold up every other chat.
"""

from __future__ import annotations

import gc
import io
import logging
import re
import time
import unicodedata
from collections.abc import Callable
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.amounts import InvalidAmount, monthly_budget, parse_amount
from bot.domain.dates import MAX_LENGTH as MAX_DATE_LENGTH
from bot.domain.dates import parse_birth_date, parse_date
from bot.domain.errors import DomainError, InvalidDate
from bot.domain.masking import mask_text
from bot.domain.phones import normalize_phone
from bot.domain.policy import fold, load_policy
from bot.logs import masked_handler
from bot.settings import DEFAULT_POLICY_FILE

SMALL, LARGE = 1024, 4096
MAX_GROWTH = 8
MAX_SECONDS = 0.020
NEGLIGIBLE = 0.0002  # below this a call at 4,096 characters is cheap whatever its growth
HANDOFF = load_policy(DEFAULT_POLICY_FILE).handoff

KINDS = {
    "one letter": "a",
    "one Chinese character": "我",
    "words": "please call me tomorrow about my card ",
    "digits": "1234567890",
    "digit and space": "1 ",
    "digit and dot": "1.",
    "digit and dash": "1-",
    "digit and slash": "1/",
    "emoji": "😀🎉",
    "Chinese": "我每个月只能还钱，",
    "Cyrillic": "могу платить в месяц ",
    "mixed": "Call +7 912 345-67-89 on 7 марта 1985, 我 😀 pay 1,500 a month. ",
    "whitespace": " ",
    "month and day": "march 7 ",
    "combining marks": "и\u0306",
    "ellipses": "1…",
}


def _quietly(function: Callable[[str], object]) -> Callable[[str], object]:
    def call(text: str) -> object:
        try:
            return function(text)
        except DomainError:
            return None

    return call


def _logged(text: str) -> None:
    _LOG_OUTPUT.seek(0)
    _LOG_OUTPUT.truncate()
    _LOGGER.info("inbound %s", text)


def _logged_traceback(text: str) -> None:
    _LOG_OUTPUT.seek(0)
    _LOG_OUTPUT.truncate()
    try:
        raise ValueError(text)
    except ValueError:
        _LOGGER.exception("failed")


_LOG_OUTPUT = io.StringIO()
_LOGGER = logging.getLogger("tests.input_cost")
_LOGGER.propagate = False
_LOGGER.setLevel(logging.INFO)
_LOGGER.addHandler(masked_handler(_LOG_OUTPUT))

FUNCTIONS: dict[str, Callable[[str], object]] = {
    "mask_text": mask_text,
    "parse_date": _quietly(lambda text: parse_date(text, "en")),
    "parse_birth_date": _quietly(lambda text: parse_birth_date(text, "ru", date(2025, 6, 1))),
    "parse_amount": _quietly(lambda text: parse_amount(text, "en")),
    "monthly_budget": lambda text: monthly_budget(text + " a month", "ru"),
    "normalize_phone": _quietly(lambda text: normalize_phone(text, "RU")),
    "handoff en": lambda text: HANDOFF.reason_in(text, "en"),
    "handoff ru": lambda text: HANDOFF.reason_in(text, "ru"),
    "handoff zh_CN": lambda text: HANDOFF.reason_in(text, "zh_CN"),
    "log record": _logged,
    "log traceback": _logged_traceback,
}


def _text(unit: str, length: int) -> str:
    return (unit * (length // len(unit) + 1))[:length]


def _costs(function: Callable[[str], object], small: str, large: str, repeats: int = 5) -> tuple[float, float]:
    """Best time per call on `small` and on `large`, measured in turns so that a busy moment of the
    machine weighs on both alike; each measurement runs long enough (about 1 ms) to be read."""
    start = time.process_time()
    function(small)
    loops = max(1, min(100, int(0.001 / max(time.process_time() - start, 1e-6))))
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for index, text in enumerate((small, large)):
            start = time.process_time()
            for _ in range(loops):
                function(text)
            best[index] = min(best[index], (time.process_time() - start) / loops)
    return best[0], best[1]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_cost_is_linear_or_bounded(name: str, kind: str) -> None:
    function = FUNCTIONS[name]
    small, large = _text(KINDS[kind], SMALL), _text(KINDS[kind], LARGE)
    function(small)  # caches, compiled patterns
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(3):  # a slow moment of the machine is not a slow function: measure again
            small_cost, large_cost = _costs(function, small, large)
            if large_cost < MAX_SECONDS and large_cost <= max(MAX_GROWTH * small_cost, NEGLIGIBLE):
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    assert large_cost < MAX_SECONDS, f"{name} takes {large_cost * 1000:.1f} ms on {LARGE} characters of {kind}"
    assert large_cost <= max(MAX_GROWTH * small_cost, NEGLIGIBLE), (
        f"{name} on {kind}: {small_cost * 1000:.3f} ms at {SMALL} characters, "
        f"{large_cost * 1000:.3f} ms at {LARGE}: grows faster than linearly"
    )


# --- The parsers refuse what is too long to be what they read ---------------------------------------


def test_a_date_longer_than_any_date_is_refused_politely() -> None:
    with pytest.raises(InvalidDate, match="longer than any date"):
        parse_date("1985-03-07 " + "a" * MAX_DATE_LENGTH, "en")
    with pytest.raises(InvalidDate, match="not a date") as refused:
        parse_date("a" * MAX_DATE_LENGTH, "en")
    assert "longer" not in str(refused.value), "up to the limit the text is read"


def test_spaces_around_a_date_do_not_count() -> None:
    assert parse_date(" " * 300 + "1985-03-07\n", "en") == date(1985, 3, 7)


def test_an_amount_longer_than_any_amount_is_refused_politely() -> None:
    with pytest.raises(InvalidAmount, match="longer than any amount"):
        parse_amount("1" + " " * 300 + "1", "en")
    assert parse_amount(" " * 300 + "1 500 " + " " * 300, "ru") == 1500


def test_a_monthly_budget_is_still_found_in_a_long_message() -> None:
    text = "Hello. " * 500 + "I can pay 1,500 a month." + " " * 2000
    assert monthly_budget(text, "en") == 1500


# --- The one-pass keyword matcher reads as the word-by-word one ------------------------------------


def _reason_word_by_word(text: str, locale: str) -> str | None:
    folded = fold(text)
    for reason, words in HANDOFF.keywords.get(locale, {}).items():
        for word in words:
            found = word in folded if locale == "zh_CN" else re.search(r"(?<!\w)" + re.escape(word), folded)
            if found:
                return reason
    return None


_KEYWORD_PIECES = sorted(
    {piece for reasons in HANDOFF.keywords.values() for words in reasons.values() for word in words for piece in (word, word[:3], word[1:])}
    | {" ", "s", "x", "'", "’", "-", "1", "Ａ", "\n"}
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_KEYWORD_PIECES), max_size=12).map("".join), st.sampled_from(["en", "ru", "zh_CN"]))
def test_handoff_words_are_found_as_before(text: str, locale: str) -> None:
    assert HANDOFF.reason_in(text, locale) == _reason_word_by_word(text, locale)


# --- The amount in a monthly offer is found as before ------------------------------------------------

_QUADRATIC_AMOUNT_TOKEN = re.compile(
    r"[¥$€₽￥]?\s*[0-9０-９][0-9０-９\s.,\u00a0\u202f]*(?:\s*(?:元|块|руб\.?|р\.|₽|yuan|rub|usd|eur))?", re.IGNORECASE
)


def _budget_as_before(text: str, locale: str) -> object:
    """monthly_budget as it was, for a text that says "a month" in some language."""
    tokens = [token.strip() for token in _QUADRATIC_AMOUNT_TOKEN.findall(unicodedata.normalize("NFKC", text))]
    tokens = [token for token in tokens if token]
    if len(tokens) != 1:
        return None
    try:
        return parse_amount(tokens[0], locale)
    except InvalidAmount:
        return None


_BUDGET_PIECES = [*"0123456789１ ,.¥$₽元块\u00a0x", "руб", "р.", "rub", "pay "]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_BUDGET_PIECES), max_size=14).map("".join),
    st.sampled_from([" a month", " в месяц", "每月"]),
    st.sampled_from(["en", "ru", "zh_CN"]),
)
def test_monthly_amounts_are_found_as_before(text: str, monthly: str, locale: str) -> None:
    assert monthly_budget(text + monthly, locale) == _budget_as_before(text + monthly, locale)
