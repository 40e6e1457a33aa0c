"""Questions and answers: the bank's knowledge base (one TOML file per locale) and the matcher.

The bank edits `bot/data/faq/<locale>.toml` without touching code: the entries, and the locale's
vocabulary (synonyms, weak words, words to keep whole). `load_knowledge_base` reads every locale,
validates it and reports every mistake with its file and key (`FaqError`).

A `Matcher` is built once per locale: it precomputes the normalized, stemmed (en, ru) or segmented
(zh) forms of every way of asking, their token sets and an inverted index with IDF weights.
`Matcher.match(text)` scores a free-text message against every entry by combining weighted token
overlap with fuzzy string similarity, and a topic classifier (logistic regression trained at
start-up on the phrasings and on `examples/<locale>.toml`, questions people asked) ranks the
topics. The message is answered when the best score reaches `MATCH_THRESHOLD`, or
`EVIDENCE_THRESHOLD` for a message with `STRONG_EVIDENCE`, or when the classifier is sure of a topic
the scores do not rule out (`CLASSIFIER_CONFIDENCE`, `CLASSIFIER_FLOOR`), or leans to a topic the
message shares topic words with (`CLASSIFIER_LEANING`, `TOPIC_EVIDENCE`, `TOPIC_FLOOR`); never on
weak words alone. The classifier picks the topic. Otherwise the bot offers the three likeliest
topics for an "I'm not sure I understood" answer. Messages that must go to a person (hardship,
dispute, anger, asking for a person) are caught before matching, by the policy's handoff words.

Answers may use the account's figures through placeholders; an entry that needs them
(`needs_account`) is only rendered for a verified chat, with values the caller formatted (Babel).
"""

from __future__ import annotations

import logging
import math
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from bot.domain.errors import ProblemsError

LOCALES = ("en", "zh_CN", "ru")
DEFAULT_LOCALE = "en"
DEFAULT_FAQ_DIR = Path(__file__).resolve().parent.parent / "data" / "faq"
EXAMPLES_DIR = "examples"

ACCOUNT_PLACEHOLDERS = frozenset(
    {"overdue_amount", "minimum_due", "daily_interest", "bureau_drop_off_date", "next_installment"}
)
BANK_PLACEHOLDERS = frozenset({"bank_name", "bank_phone", "bank_website"})
PLACEHOLDERS = ACCOUNT_PLACEHOLDERS | BANK_PLACEHOLDERS
BUTTONS = ("plans", "person", "pay")
MAX_TITLE_LENGTH = 40
MIN_QUESTIONS = 6
MAX_QUESTIONS = 24
_FILE_KEYS = ("vocabulary", "entries")
_VOCABULARY_KEYS = ("synonyms", "weak", "words")
_ENTRY_KEYS = ("id", "title", "questions", "answer", "needs_account", "buttons")
_REQUIRED_KEYS = ("id", "title", "questions", "answer", "needs_account")
_ID = re.compile(r"[a-z][a-z0-9_]*\Z")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_HTML_TAG = re.compile(r"<\s*/?\s*[A-Za-z][^<>]*>|&[A-Za-z]+;|&#\d+;")

# Matching. Weights and thresholds were chosen on the evaluation sets tests/data/faq_*_<locale>.toml
# (tests/test_faq.py says which were tuned on and prints the figures of each): the lowest thresholds
# at which at most 5 % of their off-topic messages match.
MATCH_THRESHOLD = 0.42
"""A message whose best entry scores at least this is answered (with the classifier's topic)."""
EVIDENCE_THRESHOLD = 0.30
STRONG_EVIDENCE = 1.9
"""A message whose best entry shares this much with it (counted in words that only one entry uses;
weak words do not count) is answered from EVIDENCE_THRESHOLD up. A long message ("I owed 1,200 in
March, now it says 1,310 and I haven't used the card") scores low because most of its words are
about other things, yet the few it shares with an entry are strong evidence; off-topic messages
rarely share two. A lower bar (1.5) answered more questions of the evaluation sets it was tried on
but more off-topic messages of a set it was not: a wrong answer costs more than "I'm not sure" with
the closest topics."""
UNKNOWN_WORD_WEIGHT = 2.0
"""A word the knowledge base never uses weighs this many times the rarest known word."""
QUERY_SHARE = 0.5
"""In token overlap, how much covering the message counts against covering the phrasing."""
CANDIDATE_COUNT = 3
"""How many closest topics an "I'm not sure I understood" answer offers."""
OVERLAP_WEIGHT = 0.45
"""Share of the score from IDF-weighted token overlap with the closest phrasing."""
COVERAGE_WEIGHT = 0.20
"""Share from how much of the message the entry's whole vocabulary covers."""
FUZZY_WEIGHT = 0.35
"""Share from rapidfuzz similarity of the normalized message and the closest phrasing."""
TYPO_EDITS = 1
"""An unknown word this many edits (insert, delete, replace, swap two neighbours) from a known one
counts as it: "paymnet", "intrest". Two edits turn too many other words into known ones."""
TYPO_MIN_LENGTH = 5
"""Shorter unknown words are not corrected (too many false friends)."""
CLASSIFIER_CONFIDENCE = 0.5
CLASSIFIER_FLOOR = 0.33
"""A message below the thresholds above is still answered when the topic classifier gives its topic
at least CLASSIFIER_CONFIDENCE and the scores above give that topic at least CLASSIFIER_FLOOR: the two
read a message differently, and off-topic messages rarely convince both."""
CLASSIFIER_LEANING = 0.4
TOPIC_EVIDENCE = 1.0
TOPIC_FLOOR = 0.2
"""A long message that shares little with any phrasing is still answered when the classifier gives
its topic at least CLASSIFIER_LEANING, and the message shares TOPIC_EVIDENCE (as STRONG_EVIDENCE
counts) with that topic and scores TOPIC_FLOOR for it: "my husband says the number creeps up every
day although we stopped using the card, how does that work"."""
CLASSIFIER_REGULARIZATION = 10.0
"""The inverse regularization strength (C) of the topic classifier's logistic regression."""



class FaqError(ProblemsError):
    """The knowledge base is invalid, or an answer cannot be rendered; `problems` lists each mistake."""

    what = "FAQ"


@dataclass(frozen=True)
class Entry:
    """One topic of the knowledge base in one locale."""

    id: str
    title: str
    questions: tuple[str, ...]
    answer: str
    needs_account: bool
    buttons: tuple[str, ...] = ()
    locale: str = DEFAULT_LOCALE

    @property
    def placeholders(self) -> frozenset[str]:
        """The placeholders the answer uses."""
        return frozenset(_PLACEHOLDER.findall(self.answer))


@dataclass(frozen=True)
class Vocabulary:
    """How people of one locale name the things the knowledge base talks about.

    `synonyms`: groups of words that mean the same thing in every topic ("jail", "prison"); in the
    knowledge base and in messages alike every word of a group is read as the group's first word.
    `weak`: everyday words ("today", "next") that help to tell topics apart but are no reason to
    answer on their own: a message that shares only such words with its best entry is not answered.
    `words`: words the Chinese segmenter must keep whole ("违约金").
    """

    synonyms: tuple[tuple[str, ...], ...] = ()
    weak: tuple[str, ...] = ()
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class KnowledgeBase:
    """The entries of one locale, in the file's order, the locale's vocabulary, and the examples.

    `examples` are questions people asked, each with the id of the entry that answers it
    (`examples/<locale>.toml`): they teach the topic classifier more ways of asking than the
    phrasings, and are not used for the scores that decide whether to answer.
    """

    locale: str
    entries: tuple[Entry, ...]
    source: str = ""
    vocabulary: Vocabulary = Vocabulary()
    examples: tuple[tuple[str, str], ...] = ()

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(entry.id for entry in self.entries)

    def get(self, entry_id: str) -> Entry | None:
        for entry in self.entries:
            if entry.id == entry_id:
                return entry
        return None

    def entries_for(self, verified: bool) -> list[Entry]:
        """The entries whose answer may be shown: all when verified, else those needing no account."""
        return [entry for entry in self.entries if verified or not entry.needs_account]


@dataclass(frozen=True)
class MatchResult:
    """What the matcher found for a message.

    `best` is the entry to answer with, or None: then the bot says it is not sure and offers
    `candidates` (the likeliest topics, best first, with their scores) and a person. `score` is the
    score of `best`, or the best score when nothing is answered.
    `needs_verification` is True when `best` needs account figures and the chat is not verified: the
    bot asks the person to verify first and must not render the answer.
    `small_talk` is True when the message holds nothing to match but greetings, thanks and everyday
    words ("hi", "ok thanks", "how are you today"): no topic is close, so none is offered.
    """

    best: Entry | None
    score: float
    candidates: list[tuple[Entry, float]] = field(default_factory=list)
    needs_verification: bool = False
    small_talk: bool = False


# ---------------------------------------------------------------------------------------------
# Loading and validation


def load_knowledge_base(directory: Path = DEFAULT_FAQ_DIR) -> dict[str, KnowledgeBase]:
    """Read `<locale>.toml` for every locale in `directory`; raise `FaqError` listing every mistake."""
    directory = Path(directory)
    problems: list[str] = []
    bases: dict[str, KnowledgeBase] = {}
    for locale in LOCALES:
        path = directory / f"{locale}.toml"
        source = path.name
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            problems.append(f"{source}: file is missing")
            continue
        except (OSError, UnicodeDecodeError) as error:
            problems.append(f"{source}: cannot be read ({error})")
            continue
        except tomllib.TOMLDecodeError as error:
            problems.append(f"{source}: not valid TOML ({error})")
            continue
        base, found = _parse(raw, locale, source)
        problems.extend(found)
        if base is not None:
            examples, found = _load_examples(directory / EXAMPLES_DIR / f"{locale}.toml", base)
            problems.extend(found)
            bases[locale] = replace(base, examples=examples)
    problems.extend(_compare_locales(bases))
    if problems:
        raise FaqError(problems)
    return bases


def _load_examples(path: Path, base: KnowledgeBase) -> tuple[tuple[tuple[str, str], ...], list[str]]:
    """The examples file of `base`'s locale: `[examples]` with a list of questions per entry id.

    The file is optional; every mistake is reported with the file and the key.
    """
    source = f"{EXAMPLES_DIR}/{path.name}"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return (), []
    except (OSError, UnicodeDecodeError) as error:
        return (), [f"{source}: cannot be read ({error})"]
    except tomllib.TOMLDecodeError as error:
        return (), [f"{source}: not valid TOML ({error})"]
    problems = [f"{source}: {key}: unknown key (expected [examples])" for key in raw if key != "examples"]
    table = raw.get("examples", {})
    if not isinstance(table, dict):
        return (), [*problems, f"{source}: examples: must be a table of entry ids"]
    known = set(base.ids)
    examples: list[tuple[str, str]] = []
    seen: set[str] = set()
    for entry_id, questions in table.items():
        where = f"{source}: examples.{entry_id}"
        if entry_id not in known:
            problems.append(f"{where}: no entry has this id")
            continue
        if not isinstance(questions, list) or not all(isinstance(q, str) and q.strip() for q in questions):
            problems.append(f"{where}: must be a list of non-empty texts")
            continue
        for question in questions:
            key = normalize(question, base.locale)
            if key in seen:
                problems.append(f"{where}: {question!r} appears twice")
            seen.add(key)
            examples.append((entry_id, question))
    return tuple(examples), problems


def parse_knowledge_base(raw: Mapping[str, Any], locale: str, source: str = "") -> KnowledgeBase:
    """Validate one locale's parsed TOML; raise `FaqError` listing every mistake."""
    base, problems = _parse(raw, locale, source or f"{locale}.toml")
    if problems or base is None:
        raise FaqError(problems)
    return base


def _parse(raw: Mapping[str, Any], locale: str, source: str) -> tuple[KnowledgeBase | None, list[str]]:
    problems: list[str] = []
    for key in raw:
        if key not in _FILE_KEYS:
            problems.append(f"{source}: {key}: unknown key (expected [vocabulary] and [[entries]])")
    vocabulary, found = _parse_vocabulary(raw.get("vocabulary", {}), locale, f"{source}: vocabulary")
    problems.extend(found)
    items = raw.get("entries")
    if not isinstance(items, list) or not items:
        problems.append(f"{source}: entries: missing (add [[entries]] blocks)")
        return None, problems
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        where = f"{source}: entries[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a table")
            continue
        entry_id = item.get("id")
        if isinstance(entry_id, str) and entry_id:
            where = f"{source}: entries[{index}] (id {entry_id!r})"
        entry, found = _parse_entry(item, locale, where)
        problems.extend(found)
        if isinstance(entry_id, str):
            if entry_id in seen:
                problems.append(f"{where}: id: duplicate of entries[{seen[entry_id]}]")
            else:
                seen[entry_id] = index
        if entry is not None and not found:
            entries.append(entry)
    if problems:
        return None, problems
    return (
        KnowledgeBase(locale=locale, entries=tuple(entries), source=source, vocabulary=vocabulary),
        problems,
    )


def _parse_vocabulary(raw: Any, locale: str, where: str) -> tuple[Vocabulary, list[str]]:
    if not isinstance(raw, dict):
        return Vocabulary(), [f"{where}: must be a table ([vocabulary])"]
    problems = [
        f"{where}: {key}: unknown key (allowed: {', '.join(_VOCABULARY_KEYS)})"
        for key in raw
        if key not in _VOCABULARY_KEYS
    ]
    groups = raw.get("synonyms", [])
    if not isinstance(groups, list):
        return Vocabulary(), [*problems, f"{where}: synonyms: must be a list of lists of words"]
    seen: dict[str, int] = {}
    for number, group in enumerate(groups):
        if not (
            isinstance(group, list)
            and len(group) >= 2
            and all(isinstance(word, str) and normalize(word, locale) for word in group)
        ):
            problems.append(f"{where}: synonyms[{number}]: must list at least two words")
            continue
        for word in group:
            key = normalize(word, locale)
            if key in seen and seen[key] != number:
                problems.append(
                    f"{where}: synonyms[{number}]: {word!r} is already in synonyms[{seen[key]}]"
                )
            seen.setdefault(key, number)
    lists = {}
    for key in ("weak", "words"):
        words = raw.get(key, [])
        if not (isinstance(words, list) and all(isinstance(word, str) and word.strip() for word in words)):
            problems.append(f"{where}: {key}: must be a list of words")
            words = []
        lists[key] = tuple(word.strip() for word in words)
    if problems:
        return Vocabulary(), problems
    return (
        Vocabulary(synonyms=tuple(tuple(word.strip() for word in group) for group in groups), **lists),
        problems,
    )


def _parse_entry(item: Mapping[str, Any], locale: str, where: str) -> tuple[Entry | None, list[str]]:
    problems: list[str] = []
    for key in item:
        if key not in _ENTRY_KEYS:
            problems.append(f"{where}: {key}: unknown key (allowed: {', '.join(_ENTRY_KEYS)})")
    for key in _REQUIRED_KEYS:
        if key not in item:
            problems.append(f"{where}: {key}: missing")
    entry_id = item.get("id")
    if "id" in item and not (isinstance(entry_id, str) and _ID.match(entry_id)):
        problems.append(f"{where}: id: must be lowercase letters, digits and '_', starting with a letter")
    title = item.get("title")
    if "title" in item:
        if not isinstance(title, str) or not title.strip():
            problems.append(f"{where}: title: must be non-empty text")
        elif len(title) > MAX_TITLE_LENGTH:
            problems.append(f"{where}: title: {len(title)} characters, at most {MAX_TITLE_LENGTH}")
    questions = item.get("questions")
    if "questions" in item:
        if not isinstance(questions, list) or not all(isinstance(q, str) and q.strip() for q in questions):
            problems.append(f"{where}: questions: must be a list of non-empty texts")
        elif not MIN_QUESTIONS <= len(questions) <= MAX_QUESTIONS:
            problems.append(
                f"{where}: questions: {len(questions)} given, write {MIN_QUESTIONS} to {MAX_QUESTIONS}"
            )
        elif len({q.strip().casefold() for q in questions}) != len(questions):
            problems.append(f"{where}: questions: the same question appears twice")
    answer = item.get("answer")
    used: set[str] = set()
    if "answer" in item:
        if not isinstance(answer, str) or not answer.strip():
            problems.append(f"{where}: answer: must be non-empty text")
        else:
            problems.extend(f"{where}: answer: {problem}" for problem in _answer_problems(answer))
            used = set(_PLACEHOLDER.findall(answer)) & PLACEHOLDERS
    needs_account = item.get("needs_account")
    if "needs_account" in item:
        if not isinstance(needs_account, bool):
            problems.append(f"{where}: needs_account: must be true or false")
        else:
            account_used = sorted(used & ACCOUNT_PLACEHOLDERS)
            if account_used and not needs_account:
                problems.append(
                    f"{where}: needs_account: must be true, the answer uses {', '.join(account_used)}"
                )
            if needs_account and "answer" in item and isinstance(answer, str) and not account_used:
                problems.append(f"{where}: needs_account: must be false, the answer uses no account figure")
    buttons = item.get("buttons", [])
    if not isinstance(buttons, list) or not all(isinstance(b, str) for b in buttons):
        problems.append(f"{where}: buttons: must be a list of names ({', '.join(BUTTONS)})")
        buttons = []
    else:
        for name in buttons:
            if name not in BUTTONS:
                problems.append(f"{where}: buttons: unknown button {name!r} (allowed: {', '.join(BUTTONS)})")
        if len(set(buttons)) != len(buttons):
            problems.append(f"{where}: buttons: the same button appears twice")
    if problems:
        return None, problems
    return (
        Entry(
            id=entry_id,
            title=title.strip(),
            questions=tuple(q.strip() for q in questions),
            answer=answer.strip(),
            needs_account=needs_account,
            buttons=tuple(buttons),
            locale=locale,
        ),
        problems,
    )


def _answer_problems(answer: str) -> list[str]:
    problems = []
    for name in _PLACEHOLDER.findall(answer):
        if name not in PLACEHOLDERS:
            problems.append(
                f"unknown placeholder {{{name}}} (allowed: {', '.join(sorted(PLACEHOLDERS))})"
            )
    if "{" in _PLACEHOLDER.sub("", answer) or "}" in _PLACEHOLDER.sub("", answer):
        problems.append("a brace without its pair (write placeholders as {name})")
    if _HTML_TAG.search(answer):
        problems.append("contains HTML markup; write plain text")
    return problems


def _compare_locales(bases: Mapping[str, KnowledgeBase]) -> list[str]:
    """Every locale must have the same ids, and an id needs the account in all locales or none."""
    if len(bases) < 2:
        return []
    problems: list[str] = []
    reference_locale = DEFAULT_LOCALE if DEFAULT_LOCALE in bases else next(iter(bases))
    reference = bases[reference_locale]
    reference_ids = set(reference.ids)
    for locale, base in bases.items():
        if locale == reference_locale:
            continue
        ids = set(base.ids)
        for missing in sorted(reference_ids - ids):
            problems.append(f"{base.source}: id {missing!r}: missing (present in {reference.source})")
        for extra in sorted(ids - reference_ids):
            problems.append(f"{base.source}: id {extra!r}: not in {reference.source}")
        for entry in base.entries:
            other = reference.get(entry.id)
            if other is not None and other.needs_account != entry.needs_account:
                problems.append(
                    f"{base.source}: id {entry.id!r}: needs_account differs from {reference.source}"
                )
    return problems


# ---------------------------------------------------------------------------------------------
# Rendering


def render_answer(entry: Entry, values: Mapping[str, str] | None = None) -> str:
    """The answer with its placeholders filled from already-formatted strings.

    Raises `FaqError` when the answer needs account figures and `values` lacks them (an unverified
    chat must never see them), or when a bank placeholder is missing. The result is plain text: the
    bot escapes it before sending.
    """
    values = values or {}
    needed = entry.placeholders
    missing_account = sorted(name for name in needed & ACCOUNT_PLACEHOLDERS if name not in values)
    if entry.needs_account and (missing_account or not values):
        raise FaqError(
            [f"{entry.locale}: {entry.id}: needs the account figures {', '.join(missing_account or sorted(needed & ACCOUNT_PLACEHOLDERS))}; verify the person first"]
        )
    missing = sorted(name for name in needed if name not in values)
    if missing:
        raise FaqError([f"{entry.locale}: {entry.id}: no value for {', '.join(missing)}"])
    return _PLACEHOLDER.sub(lambda found: str(values[found.group(1)]), entry.answer)


# ---------------------------------------------------------------------------------------------
# Text processing

_EN_STOP = frozenset(
    """a an the i me my mine we our you your u ur yours he she it its they them their this that these
    those is are was were be been being am do does did doing have has had having will would shall
    should can could may might must to of in on at by for with from up down out off over under about
    into onto than then so and or but if as just also very too pls please plz ok okay hi hello hey
    there here what whats wat which who whom whose when where why how all any some each much many
    most other such own same only now get got gonna wanna gotta im ive id arent wasnt r s t d ll m
    re ve no yes thanks thank thx dear sir madam guys
    morning afternoon evening um uh hmm well actually really wondering cool great alright sure
    lol haha""".split()
)
_RU_STOP = frozenset(
    """а и в во на с со к ко о об от до по за из у же ли бы то это этот эта эти этого этой что чтобы
    как так там тут где когда кто я мне меня мой моя моё мое мои моей моему моим ты тебе тебя вы вас
    какой какая какое какие каких вам ваш ваша ваше ваши мою моих моего моем моём он она оно они его
    ее её их нас нам мы наш да нет не ни ну вот уже ещё еще
    был была были быть будет буду есть или но если для при без над под про через пожалуйста плиз
    пжл ок привет здравствуйте ли же вообще тоже также очень просто добрый подскажите
    скажите спасибо большое извините здрасте блин короче типа чё че понял поняла ясно ладно хорошо
    который которая которое которые которую которого котором""".split()
)
_ZH_STOP = frozenset(
    """的 了 吗 呢 啊 吧 呀 嘛 哦 哈 么 我 你 您 他 她 它 们 我们 你们 是 在 有 和 与 就 都 也 还是 这 那 这个
    那个 一下 一个 个 请 请问 吧 啦 喔 嗯 什么 怎么 怎么样 为什么 为啥 咋 啥 能 能不能 可以 会 会不会 要
    想 给 把 被 让 又 很 太 你好 您好 麻烦 谢谢 问下 问一下 想问 请教 哈哈 哈哈哈 呵呵 嘿嘿""".split()
)
# "还" (repay / still) and "不" carry meaning here and stay.
_ACKNOWLEDGEMENTS = {
    "en": re.compile(
        r"\b(?:thanks|thank you|thx|ty)(?: so much| a lot)? for (?:the |your |that |this )?"
        r"(?:info|information|answer|reply|response|help|explanation|update)\b"
    ),
    "ru": re.compile(
        r"\bспасибо(?: большое| огромное)? за (?:информацию|инфу|ответ|ответы|помощь|разъяснение|пояснение)\b"
    ),
    "zh_CN": re.compile(r"谢谢(?:你|您)?(?:的)?(?:回答|回复|信息|解答|帮助|说明)"),
}
"""Thanks for an answer ("thanks for the info") is no question: its nouns must not pick a topic."""

_PUNCTUATION_CATEGORIES = ("P", "S")
_WORD = re.compile(r"\w+")
_CONTRACTION = re.compile(r"n['’]t\b")
_AMOUNT = re.compile(r"[\d.,]+[wk万千]?")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def normalize(text: str, locale: str) -> str:
    """NFKC (full width to ASCII), casefold, punctuation and symbols to spaces, ё→е, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if locale == "ru":
        text = text.replace("ё", "е")
    else:
        text = _CONTRACTION.sub("nt", text)  # "can't" is written "cant" as often
    text = "".join(
        " " if unicodedata.category(char).startswith(_PUNCTUATION_CATEGORIES) and char != "_" else char
        for char in text
    )
    return " ".join(text.replace("_", " ").split())


class _Analyzer:
    """Turns normalized text into tokens: stems for en and ru, jieba words and characters for zh."""

    def __init__(self, locale: str, vocabulary: Vocabulary) -> None:
        self.locale = locale
        self.chinese = locale.startswith("zh")
        if self.chinese:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            # a private tokenizer: the domain words below do not leak into other users of jieba
            self._jieba = jieba.Tokenizer()
            self._jieba.initialize()
            for word in vocabulary.words:
                self._jieba.add_word(word)
            self.stop = _ZH_STOP
            self._stemmer = None
        else:
            import snowballstemmer

            self._stemmer = snowballstemmer.stemmer("russian" if locale == "ru" else "english")
            self.stop = _RU_STOP if locale == "ru" else _EN_STOP
        self._stems: dict[str, str] = {}
        self._synonyms: dict[str, str] = {}
        for group in vocabulary.synonyms:
            canonical = self._plain_stem(group[0])
            for word in group:
                if self.chinese:
                    self._jieba.add_word(word)
                self._synonyms[self._plain_stem(word)] = canonical
        if self.chinese:
            for word in vocabulary.weak:
                self._jieba.add_word(word)
        self.weak = frozenset(self._token(word) for word in vocabulary.weak)

    def _token(self, word: str) -> str:
        """The token a single word is read as."""
        word = normalize(word, self.locale)
        return self.synonym(word) if self.chinese else self._stem(word)

    def synonym(self, word: str) -> str:
        """The word that stands for `word`'s synonym group, or `word` itself."""
        return self._synonyms.get(word, word)

    def _plain_stem(self, word: str) -> str:
        word = normalize(word, self.locale)
        return self._stemmer.stemWord(word) if self._stemmer is not None else word

    def _stem(self, word: str) -> str:
        stem = self._stems.get(word)
        if stem is None:
            stem = self._stemmer.stemWord(word) if self._stemmer is not None else word
            stem = self._synonyms.get(stem, stem)
            if len(self._stems) < 50_000:
                self._stems[word] = stem
        return stem

    def tokens(self, normalized: str) -> list[str]:
        if self.chinese:
            return self._chinese_tokens(normalized)
        return [
            self._stem(word)
            for word in _WORD.findall(normalized)
            if word not in self.stop and not word.isdigit()
        ]

    def _chinese_tokens(self, normalized: str) -> list[str]:
        tokens: list[str] = []
        for word in self._jieba.lcut(normalized):
            word = word.strip()
            if not word or word in self.stop or _AMOUNT.fullmatch(word):
                continue
            # a word of a synonym group is read as the group's first word, characters included
            word = self._synonyms.get(word, word)
            tokens.append(word)
            if len(word) > 1 and _CJK.match(word):
                # single characters as well: jieba does not always cut a phrase the same way
                tokens.extend("#" + char for char in word if char not in self.stop)
        return tokens

    def fuzzy_form(self, normalized: str, tokens: list[str]) -> str:
        """The string fuzzy similarity compares: characters for zh, stems without stop-words otherwise."""
        if self.chinese:
            return "".join(char for char in normalized if not char.isspace())
        return " ".join(tokens)


# ---------------------------------------------------------------------------------------------
# Matching


class _TopicClassifier:
    """Logistic regression over character n-grams and the analyzer's words, trained at start-up on
    the knowledge base's titles, phrasings and examples.

    It ranks topics better than phrasing-by-phrasing similarity for a question worded unlike any
    phrasing ("is there an operator I can chat to instead"), because it weighs every word and letter
    sequence by how well it tells the topics apart. It is also sure of some topic for any message, so
    the matcher's scores still decide whether to answer at all.

    scikit-learn fits the model; a message is scored here from the fitted weights, because calling
    scikit-learn for one short text costs milliseconds.
    """

    def __init__(self, texts: list[str], labels: list[int], tokens: Any) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_union

        chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
        words = TfidfVectorizer(analyzer=tokens)
        model = LogisticRegression(C=CLASSIFIER_REGULARIZATION, max_iter=3000)
        model.fit(make_union(chars, words).fit_transform(texts), labels)
        self._labels = [int(label) for label in model.classes_]
        self._intercepts = [float(value) for value in model.intercept_]
        self._parts = []
        offset = 0
        for vectorizer, sublinear in ((chars, True), (words, False)):
            features = {
                feature: (float(vectorizer.idf_[column]), model.coef_[:, offset + column].tolist())
                for feature, column in vectorizer.vocabulary_.items()
            }
            self._parts.append((vectorizer.build_analyzer(), sublinear, features))
            offset += len(vectorizer.vocabulary_)

    def ranked(self, normalized: str) -> list[tuple[int, float]]:
        """Entry indexes with their probability, most likely first."""
        decision = list(self._intercepts)
        for analyze, sublinear, features in self._parts:
            counts: dict[str, int] = {}
            for feature in analyze(normalized):
                if feature in features:
                    counts[feature] = counts.get(feature, 0) + 1
            values = {
                feature: ((1 + math.log(count)) if sublinear else count) * features[feature][0]
                for feature, count in counts.items()
            }
            norm = math.sqrt(sum(value * value for value in values.values())) or 1.0
            for feature, value in values.items():
                for position, weight in enumerate(features[feature][1]):
                    decision[position] += weight * value / norm
        top = max(decision)
        exponents = [math.exp(value - top) for value in decision]
        total = sum(exponents)
        probabilities = zip(self._labels, (value / total for value in exponents))
        return sorted(probabilities, key=lambda pair: pair[1], reverse=True)


@dataclass(frozen=True)
class _Phrasing:
    entry_index: int
    tokens: frozenset[str]
    weight: float
    fuzzy: str


class Matcher:
    """Matches free text against one locale's knowledge base; build once, reuse for every message."""

    def __init__(self, base: KnowledgeBase, *, threshold: float | None = None) -> None:
        from rapidfuzz import fuzz, process
        from rapidfuzz.distance import OSA

        self._edits = OSA.distance
        self._fuzz = fuzz
        self._process = process
        self.base = base
        self.locale = base.locale
        self.threshold = MATCH_THRESHOLD if threshold is None else threshold
        self._analyzer = _Analyzer(base.locale, base.vocabulary)
        texts: list[tuple[int, str]] = []
        for index, entry in enumerate(base.entries):
            texts.extend((index, text) for text in (entry.title, *entry.questions))
        analysed = []
        document_frequency: dict[str, int] = {}
        entry_vocabulary: list[set[str]] = [set() for _ in base.entries]
        for index, text in texts:
            normalized = normalize(text, self.locale)
            tokens = self._analyzer.tokens(normalized)
            analysed.append((index, normalized, tokens))
            entry_vocabulary[index].update(tokens)
        for vocabulary in entry_vocabulary:
            for token in vocabulary:
                document_frequency[token] = document_frequency.get(token, 0) + 1
        count = max(len(base.entries), 1)
        self._idf = {token: math.log(1 + count / df) for token, df in document_frequency.items()}
        self._specific_weight = math.log(1 + count)  # the weight of a word only one entry uses
        self._unknown_idf = UNKNOWN_WORD_WEIGHT * self._specific_weight
        # words of the answer count towards an entry's coverage, not towards its phrasings
        for index, entry in enumerate(base.entries):
            words = self._analyzer.tokens(normalize(_PLACEHOLDER.sub(" ", entry.answer), self.locale))
            entry_vocabulary[index].update(token for token in words if token in self._idf)
        self._vocabulary = sorted(token for token in self._idf if not token.startswith("#"))
        self._entry_vocabulary = [frozenset(vocabulary) for vocabulary in entry_vocabulary]
        self._phrasings: list[_Phrasing] = []
        self._index: dict[str, list[int]] = {}
        for index, normalized, tokens in analysed:
            token_set = frozenset(tokens)
            position = len(self._phrasings)
            self._phrasings.append(
                _Phrasing(
                    entry_index=index,
                    tokens=token_set,
                    weight=sum(self._idf[token] for token in token_set),
                    fuzzy=self._analyzer.fuzzy_form(normalized, tokens),
                )
            )
            for token in token_set:
                self._index.setdefault(token, []).append(position)
        self._fuzzy_choices = [phrasing.fuzzy for phrasing in self._phrasings]
        positions = {entry.id: index for index, entry in enumerate(base.entries)}
        self._classifier = _TopicClassifier(
            [normalized for _index, normalized, _tokens in analysed]
            + [normalize(text, self.locale) for _entry_id, text in base.examples],
            [index for index, _normalized, _tokens in analysed]
            + [positions[entry_id] for entry_id, _text in base.examples],
            self._analyzer.tokens,
        )
        self._corrections: dict[str, str | None] = {}
        self._pieces: dict[str, list[str]] = {}

    def _correct(self, token: str) -> str | None:
        """A known token for an unknown one (a typo), or None."""
        if token in self._corrections:
            return self._corrections[token]
        corrected = None
        if len(token) >= TYPO_MIN_LENGTH and not token.isdigit() and not self._analyzer.chinese:
            found = self._process.extract(
                token, self._vocabulary, scorer=self._edits, score_cutoff=TYPO_EDITS, limit=None
            )
            # people drop and swap letters more often than they add them: "debit" is not "debt"
            for known, _distance, _position in found:
                if len(known) >= len(token):
                    corrected = known
                    break
        if len(self._corrections) < 10_000:
            self._corrections[token] = corrected
        return corrected

    def _query_tokens(self, normalized: str) -> tuple[dict[str, float], list[str]]:
        weights: dict[str, float] = {}
        raw = self._analyzer.tokens(normalized)
        for token in raw:
            if token in self._idf:
                weights[token] = self._idf[token]
            elif self._analyzer.chinese:
                for piece in self._known_pieces(token):
                    weights[piece] = self._idf.get(piece, self._unknown_idf)
            else:
                token = self._correct(token) or token
                weights[token] = self._idf.get(token, self._unknown_idf)
        return weights, raw

    def _known_pieces(self, word: str) -> list[str]:
        """Known words inside an unknown Chinese word: jieba glues "能免" (can waive) or "改到" (change
        to) into one word the knowledge base never uses; read it as its known parts."""
        pieces = self._pieces.get(word)
        if pieces is not None:
            return pieces
        pieces = []
        if not word.startswith("#") and _CJK.match(word):
            start = 0
            while start < len(word):
                for end in range(len(word), start, -1):
                    piece = word[start:end]
                    piece = self._analyzer.synonym(piece)
                    if piece in self._idf:
                        pieces.append(piece)
                        start = end
                        break
                else:
                    if word[start] not in self._analyzer.stop:
                        pieces = []
                        break
                    start += 1
        pieces = pieces or [word]
        if len(self._pieces) < 10_000:
            self._pieces[word] = pieces
        return pieces

    def _prepare(self, text: str) -> str:
        """The normalized message without thanks for an answer."""
        normalized = normalize(text, self.locale)
        acknowledgement = _ACKNOWLEDGEMENTS.get(self.locale)
        if acknowledgement is not None:
            normalized = " ".join(acknowledgement.sub(" ", normalized).split())
        return normalized

    def scores(self, text: str) -> list[tuple[Entry, float]]:
        """Every entry with its score (0..1), best first."""
        return [(entry, score) for entry, score, _evidence in self._rank(self._prepare(text))[0]]

    def _rank(self, normalized: str) -> tuple[list[tuple[Entry, float, float]], bool]:
        """Every entry with its score and the evidence for it, best first; and whether the message is
        small talk (no word but weak ones).

        The evidence is what the message shares with the entry, counted in words only one entry uses
        (see STRONG_EVIDENCE); it is -1 when the message shares nothing with the entry but weak words.
        `normalized` is the message as `_prepare` gives it.
        """
        # words, but none to match: a greeting or thanks; a typed number or amount is no small talk
        small_talk = any(char.isalpha() for char in normalized)
        if not normalized:
            return [(entry, 0.0, 0.0) for entry in self.base.entries], small_talk
        weights, raw_tokens = self._query_tokens(normalized)
        query_weight = sum(weights.values()) or 1.0
        best_overlap = [0.0] * len(self.base.entries)
        touched: set[int] = set()
        for token in weights:
            touched.update(self._index.get(token, ()))
        for position in touched:
            phrasing = self._phrasings[position]
            shared = sum(weights[token] for token in phrasing.tokens if token in weights)
            if not shared:
                continue
            # weighted geometric mean of how much of the message and of the phrasing is shared
            of_query = shared / query_weight
            of_phrasing = shared / (phrasing.weight or 1.0)
            overlap = of_query**QUERY_SHARE * of_phrasing ** (1 - QUERY_SHARE)
            if overlap > best_overlap[phrasing.entry_index]:
                best_overlap[phrasing.entry_index] = overlap
        coverage = [
            sum(weight for token, weight in weights.items() if token in vocabulary) / query_weight
            for vocabulary in self._entry_vocabulary
        ]
        # Chinese single characters repeat their word's evidence and do not count twice; weak words
        # are no evidence
        weak = self._analyzer.weak
        evidence = []
        for vocabulary in self._entry_vocabulary:
            shared = [token for token in weights if token in vocabulary and token[0] != "#"]
            strong = sum(weights[token] for token in shared if token not in weak) / self._specific_weight
            evidence.append(-1.0 if shared and all(token in weak for token in shared) else strong)
        best_fuzzy = [0.0] * len(self.base.entries)
        query_fuzzy = self._analyzer.fuzzy_form(normalized, raw_tokens)
        if query_fuzzy:
            found = self._process.extract(
                query_fuzzy, self._fuzzy_choices, scorer=self._fuzz.ratio, limit=None
            )
            for _choice, similarity, position in found:
                index = self._phrasings[position].entry_index
                value = float(similarity) / 100
                if value > best_fuzzy[index]:
                    best_fuzzy[index] = value
        results = [
            (
                entry,
                OVERLAP_WEIGHT * best_overlap[index]
                + COVERAGE_WEIGHT * coverage[index]
                + FUZZY_WEIGHT * best_fuzzy[index],
                evidence[index],
            )
            for index, entry in enumerate(self.base.entries)
        ]
        results.sort(key=lambda scored: scored[1], reverse=True)
        small_talk = small_talk and all(token in weak for token in weights if token[0] != "#")
        return results, small_talk

    def match(self, text: str, *, verified: bool = False) -> MatchResult:
        """The best entry for `text` (or None), the closest topics, and flags.

        The scores decide whether the message is answered; the classifier decides with which topic.
        """
        normalized = self._prepare(text)
        ranked, small_talk = self._rank(normalized)
        _top, score, evidence = ranked[0]
        scores = {entry.id: entry_score for entry, entry_score, _ in ranked}
        shared = {entry.id: entry_evidence for entry, _score, entry_evidence in ranked}
        classified = [
            (self.base.entries[index], probability)
            for index, probability in self._classifier.ranked(normalized)
        ]
        topic, confidence = classified[0]
        candidates = [(entry, scores[entry.id]) for entry, _probability in classified[:CANDIDATE_COUNT]]
        answered = evidence >= 0 and (
            score >= self.threshold
            or (score >= EVIDENCE_THRESHOLD and evidence >= STRONG_EVIDENCE)
            or (confidence >= CLASSIFIER_CONFIDENCE and scores[topic.id] >= CLASSIFIER_FLOOR)
            or (
                confidence >= CLASSIFIER_LEANING
                and shared[topic.id] >= TOPIC_EVIDENCE
                and scores[topic.id] >= TOPIC_FLOOR
            )
        )
        if not answered:
            return MatchResult(best=None, score=score, candidates=candidates, small_talk=small_talk)
        return MatchResult(
            best=topic,
            score=scores[topic.id],
            candidates=candidates,
            needs_verification=topic.needs_account and not verified,
        )


# ---------------------------------------------------------------------------------------------
# The bank's default knowledge base, loaded and matched once per process.


@lru_cache(maxsize=4)
def _default_bases(directory: Path) -> dict[str, KnowledgeBase]:
    return load_knowledge_base(directory)


def knowledge_base(locale: str, directory: Path = DEFAULT_FAQ_DIR) -> KnowledgeBase:
    """The knowledge base of `locale` (English for an unknown locale), loaded once."""
    bases = _default_bases(Path(directory))
    return bases.get(locale) or bases[DEFAULT_LOCALE]


@lru_cache(maxsize=8)
def _matcher(locale: str, directory: Path) -> Matcher:
    return Matcher(knowledge_base(locale, directory))


def matcher_for(locale: str, directory: Path = DEFAULT_FAQ_DIR) -> Matcher:
    """The matcher of `locale` (English for an unknown locale), built once."""
    base = knowledge_base(locale, directory)
    return _matcher(base.locale, Path(directory))


def faq_topics(locale: str, directory: Path = DEFAULT_FAQ_DIR) -> list[Entry]:
    """Every topic of `locale` in the file's order, for a /faq list of buttons (label: `entry.title`)."""
    return list(knowledge_base(locale, directory).entries)
