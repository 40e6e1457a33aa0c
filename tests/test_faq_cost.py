"""No message is expensive to match: the matcher reads only a message's beginning, so the work it does
for a 4,096-character message of any kind is bounded by what it does for a question.

These tests count work (characters normalized, tokens, letter sequences, characters compared), not
time: they do not depend on how busy the machine is.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain import faq
from bot.domain.faq import DEFAULT_FAQ_DIR, LOCALES, READ_AHEAD, Matcher, load_knowledge_base

LONGEST_MESSAGE = 4096
QUESTIONS = {"en": "how do I pay my card", "zh_CN": "怎么还信用卡", "ru": "как оплатить карту"}


def long_messages(length: int = LONGEST_MESSAGE) -> dict[str, str]:
    """A message of `length` characters of each kind."""
    chance = random.Random(length)
    words = "payment interest card bank overdue plan оплата карта долг 还款 利息 paymnet".split()
    pieces: dict[str, Callable[[], str]] = {
        "words": lambda: chance.choice(words) + " ",
        "emoji": lambda: chance.choice("😀😂🙏💳🔥👍"),
        "chinese": lambda: chr(chance.randrange(0x4E00, 0x9FA5)),
        "digits": lambda: str(chance.randrange(10)),
        "gibberish": lambda: "".join(chance.choice("qwxzjkvb") for _ in range(chance.randrange(5, 12))) + " ",
        "punctuation": lambda: chance.choice("?!.,;:-()[]"),
    }
    pieces["mixed"] = lambda: chance.choice(list(pieces.values()))()

    def fill(piece: Callable[[], str]) -> str:
        text = ""
        while len(text) < length:
            text += piece()
        return text[:length]

    return {"one letter": "a" * length, **{kind: fill(piece) for kind, piece in pieces.items()}}


@pytest.fixture(scope="module")
def matchers() -> dict[str, Matcher]:
    return {locale: Matcher(base) for locale, base in load_knowledge_base(DEFAULT_FAQ_DIR).items()}


class Work:
    """What one match read: characters normalized, the text tokenized, tokens, letter sequences, the
    strings compared by fuzzy similarity."""

    def __init__(self, matcher: Matcher, monkeypatch: pytest.MonkeyPatch) -> None:
        self.normalized: list[int] = []
        self.tokenized: list[int] = []
        self.tokens: list[int] = []
        self.ngrams: list[int] = []
        self.compared: list[int] = []
        normalize, ngrams = faq.normalize, faq._character_ngrams
        tokens, process = matcher._analyzer.tokens, matcher._process

        def counted_normalize(text: str, locale: str) -> str:
            self.normalized.append(len(text))
            return normalize(text, locale)

        def counted_tokens(text: str) -> list[str]:
            found = tokens(text)
            self.tokenized.append(len(text))
            self.tokens.append(len(found))
            return found

        def counted_ngrams(text: str) -> list[str]:
            found = ngrams(text)
            self.ngrams.append(len(found))
            return found

        def counted_extract(query: str, choices, **options):
            self.compared.append(len(query))
            return process.extract(query, choices, **options)

        monkeypatch.setattr(faq, "normalize", counted_normalize)
        monkeypatch.setattr(faq, "_character_ngrams", counted_ngrams)
        monkeypatch.setattr(matcher._analyzer, "tokens", counted_tokens)
        monkeypatch.setattr(matcher, "_process", SimpleNamespace(extract=counted_extract))

    def totals(self) -> tuple[int, ...]:
        counted = (self.normalized, self.tokenized, self.tokens, self.ngrams, self.compared)
        return tuple(sum(counts) for counts in counted)


def work_for(matcher: Matcher, text: str, monkeypatch: pytest.MonkeyPatch) -> Work:
    with monkeypatch.context() as patch:
        work = Work(matcher, patch)
        matcher.match(text)
    return work


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", list(long_messages()))
def test_a_long_message_is_read_no_further_than_a_question_goes(matchers, monkeypatch, locale, kind):
    matcher = matchers[locale]
    limit = matcher.question_read
    assert limit <= LONGEST_MESSAGE // 8
    work = work_for(matcher, long_messages()[kind], monkeypatch)
    assert sum(work.normalized) <= READ_AHEAD * limit + LONGEST_MESSAGE
    assert all(length <= limit for length in work.tokenized)
    assert all(length <= limit for length in work.compared)
    # a word gives at most itself and one token per character (Chinese); three letter sequences a letter
    assert sum(work.tokens) <= 2 * limit
    assert sum(work.ngrams) <= 3 * (limit + 2) * 2


@pytest.mark.parametrize("locale", LOCALES)
def test_the_work_stops_growing_with_the_message(matchers, monkeypatch, locale):
    matcher = matchers[locale]
    limit = matcher.question_read
    text = long_messages(50_000)["words"]
    matcher.match(text)  # typos once corrected are remembered: count the same work every time
    read = work_for(matcher, text[: READ_AHEAD * limit], monkeypatch).totals()[1:]
    for length in (READ_AHEAD * limit + 1, LONGEST_MESSAGE, 50_000):
        assert work_for(matcher, text[:length], monkeypatch).totals()[1:] == read, length
    # a message of nothing but symbols is read on, up to Telegram's longest message and no further
    assert max(work_for(matcher, "?! " * 20_000, monkeypatch).normalized) == LONGEST_MESSAGE


@pytest.mark.parametrize("locale", LOCALES)
def test_a_question_followed_by_a_wall_of_text_is_read_as_the_question(matchers, locale):
    matcher = matchers[locale]
    question = QUESTIONS[locale]
    for wall in ("a" * LONGEST_MESSAGE, "x" * 5000, "🙏" * LONGEST_MESSAGE):
        assert matcher.match(f"{question} {wall}"[:LONGEST_MESSAGE]) == matcher.match(question)


@pytest.mark.parametrize("locale", LOCALES)
def test_a_question_after_a_wall_of_symbols_is_still_read(matchers, locale):
    matcher = matchers[locale]
    question = QUESTIONS[locale]
    wall = "?! 💳 " * 600
    assert len(wall) > READ_AHEAD * matcher.question_read
    assert matcher.match(wall + question) == matcher.match(question)


def test_an_unknown_chinese_word_is_taken_apart_in_linear_work(matchers, monkeypatch):
    matcher = matchers["zh_CN"]
    looked_up: list[str] = []
    synonym = matcher._analyzer.synonym

    def counted(piece: str) -> str:
        looked_up.append(piece)
        return synonym(piece)

    monkeypatch.setattr(matcher._analyzer, "synonym", counted)
    for length in (40, 80, 120):
        looked_up.clear()
        word = "".join(chr(0x4E00 + (7 * index) % 2000) for index in range(length))
        matcher._known_pieces(word)
        assert len(looked_up) <= length * matcher._longest_piece
        assert all(len(piece) <= matcher._longest_piece for piece in looked_up)


def reference_normalize(text: str, locale: str) -> str:
    """What `normalize` means, written the plain way."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.replace("ё", "е") if locale == "ru" else faq._CONTRACTION.sub("nt", text)
    text = "".join(" " if unicodedata.category(char)[0] in "PS" else char for char in text)
    return " ".join(text.split())


@given(st.text(max_size=200), st.sampled_from(LOCALES))
def test_normalize_is_what_it_says(text, locale):
    assert faq.normalize(text, locale) == reference_normalize(text, locale)


def test_normalize_reads_every_kind_of_character():
    for text in ["Can't PAY!!", "ＡＢＣ１２３", "Ёлка, ёж", "还款？还款！", "a_b-c", "💳 pay 💳", "x" * 5000]:
        for locale in LOCALES:
            assert faq.normalize(text, locale) == reference_normalize(text, locale)
