"""Questions and answers: the bank's knowledge base (one TOML file per locale) and the matcher.

The bank edits `bot/data/faq/<locale>.toml` without touching code: the entries, and the locale's
vocabulary (synonyms, weak words, words to keep whole). `load_knowledge_base` reads every locale,
validates it and reports every mistake with its file and key (`FaqError`).

A `Matcher` is built once per locale: it precomputes the normalized, stemmed (en, ru) or segmented
(zh) forms of every way of asking, their token sets and an inverted index with IDF weights.
`Matcher.match(text)` scores a free-text message against every entry by combining weighted token
overlap with fuzzy string similarity, and a topic classifier (logistic regression fitted on the
phrasings and on `examples/<locale>.toml`, questions people asked) ranks the topics. The message is
answered when the best score reaches `MATCH_THRESHOLD`, or `EVIDENCE_THRESHOLD` for a message with
`STRONG_EVIDENCE`, or when the classifier is sure of a topic the scores do not rule out
(`CLASSIFIER_CONFIDENCE`, `CLASSIFIER_FLOOR`), or leans to a topic the message shares topic words
with (`CLASSIFIER_LEANING`, `TOPIC_EVIDENCE`, `TOPIC_FLOOR`); never on weak words alone. The
classifier picks the topic. Otherwise the bot offers the three likeliest topics for an "I'm not sure
I understood" answer. Messages that must go to a person (hardship, dispute, anger, asking for a
person) are caught before matching, by the policy's handoff words.

Only a message's beginning is matched (`QUESTION_READ`), so any message costs about what a question
does. What a matcher derives from its knowledge base (the analysed phrasings, the fitted classifier)
and the parsed files are kept on disk (`faq_cache`): a start with an unchanged knowledge base reads
them back instead of fitting again, and needs neither scikit-learn nor jieba's dictionary.

Answers may use the account's figures through placeholders; an entry that needs them
(`needs_account`) is only rendered for a verified chat, with values the caller formatted (Babel).
An entry may also hold `variants`: answers for accounts of one jurisdiction, one credit-bureau rule
or that meet legal thresholds of their pack (`Circumstances`); the first variant whose conditions all
hold is the answer, else `answer`. What may be said about the bureau or the courts thus follows the
reader's account, never one text for everybody.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import threading
import tomllib
import unicodedata
from array import array
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from itertools import repeat
from operator import itemgetter, mul, truediv
from pathlib import Path
from typing import Any

from bot.domain import faq_cache
from bot.domain import jurisdiction as packs
from bot.domain.errors import ProblemsError
from bot.domain.jurisdiction import BUREAU_RULES, LegalRules
from bot.domain.policy import JURISDICTION_CODE
from bot.languages import DEFAULT_LANGUAGE, LANGUAGES, SUPPORTED_LOCALES

log = logging.getLogger(__name__)

LOCALES = SUPPORTED_LOCALES
DEFAULT_LOCALE = DEFAULT_LANGUAGE
DEFAULT_FAQ_DIR = Path(__file__).resolve().parent.parent / "data" / "faq"
EXAMPLES_DIR = "examples"

ACCOUNT_PLACEHOLDERS = frozenset(
    {
        "overdue_amount", "minimum_due", "daily_interest", "interest_rate", "next_installment",
        "bureau_name", "bureau_years", "bureau_offset_days", "bureau_drop_off_date",
    }
)
"""The account's figures and what its jurisdiction's pack says (the bureau is known once the
account is): only for a verified chat."""
BANK_PLACEHOLDERS = frozenset({"bank_name", "bank_phone", "bank_website"})
PLACEHOLDERS = ACCOUNT_PLACEHOLDERS | BANK_PLACEHOLDERS
BUTTONS = ("plans", "person", "pay")
MAX_TITLE_LENGTH = 40
MIN_QUESTIONS = 6
MAX_QUESTIONS = 24
_FILE_KEYS = ("vocabulary", "entries")
_VOCABULARY_KEYS = ("synonyms", "weak", "words")
_ENTRY_KEYS = ("id", "title", "questions", "answer", "needs_account", "buttons", "variants")
_VARIANT_KEYS = ("jurisdiction", "bureau_rule", "meets", "answer")
THRESHOLDS = tuple(item.name for item in fields(LegalRules))
"""What a variant may require the account to meet: the legal thresholds of its pack."""
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
CHARACTER_NGRAMS = (2, 4)
"""The lengths of the letter sequences the classifier reads inside each word (padded with spaces)."""
MESSAGE_READ = 4096
"""Characters of a message read at all: Telegram's longest message."""
READ_AHEAD = 4
"""A message is normalized this many times QUESTION_READ characters at a time: its beginning has
enough characters to match unless it is mostly punctuation, symbols and spaces (then it is read on)."""
QUESTION_READ = {item.code: item.question_read for item in LANGUAGES}
"""Characters of the normalized message that are matched, per locale (a Chinese character says about
as much as three letters). A question is short (normalized, the longest message of the evaluation
sets has 162 characters, 50 in Chinese) and a message's beginning says what it is about: reading no
more keeps every step of matching (segmenting, stemming, typo correction, fuzzy similarity, the
classifier's letter sequences) about as cheap for a 4,096-character message as for a question:
about twice the time of an evaluation question on average (benchmarks/faq.py)."""
MODEL_FORMAT = 2
"""The layout of a cached matcher model; the cache key also holds this module's source."""



class FaqError(ProblemsError):
    """The knowledge base is invalid, or an answer cannot be rendered; `problems` lists each mistake."""

    what = "FAQ"


@dataclass(frozen=True)
class Circumstances:
    """What chooses among an answer's variants: the account's jurisdiction (its pack's code), its
    credit-bureau rule and the legal thresholds (`THRESHOLDS`) it meets."""

    jurisdiction: str
    bureau_rule: str
    meets: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Variant:
    """An answer for accounts in some circumstances: every condition given must hold."""

    answer: str
    jurisdiction: str | None = None
    bureau_rule: str | None = None
    meets: frozenset[str] = frozenset()

    def applies(self, circumstances: Circumstances) -> bool:
        return (
            self.jurisdiction in (None, circumstances.jurisdiction)
            and self.bureau_rule in (None, circumstances.bureau_rule)
            and self.meets <= circumstances.meets
        )

    @property
    def conditions(self) -> tuple[str | None, str | None, tuple[str, ...]]:
        return self.jurisdiction, self.bureau_rule, tuple(sorted(self.meets))


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
    variants: tuple[Variant, ...] = ()

    @property
    def answers(self) -> tuple[str, ...]:
        """Every text the entry may answer with: `answer`, then its variants'."""
        return (self.answer, *(variant.answer for variant in self.variants))

    @property
    def placeholders(self) -> frozenset[str]:
        """The placeholders its answers use."""
        return frozenset(name for answer in self.answers for name in _PLACEHOLDER.findall(answer))

    def answer_for(self, circumstances: Circumstances | None) -> str:
        """The first variant that applies to these circumstances, else `answer`."""
        if circumstances is not None:
            for variant in self.variants:
                if variant.applies(circumstances):
                    return variant.answer
        return self.answer


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
    """Read `<locale>.toml` for every locale in `directory`; raise `FaqError` listing every mistake.

    Files read and found valid before (the same bytes, the same code) come from the cache, as
    parsing TOML is slow; their digest names the cached copy.
    """
    directory = Path(directory)
    contents = {}
    for path in _knowledge_base_files(directory):
        try:
            contents[path] = path.read_bytes()
        except OSError as error:
            contents[path] = error
    name = _knowledge_base_name(contents)
    stored = faq_cache.read(name)
    bases = _bases_from_data(stored) if stored is not None else None
    if bases is None:
        bases = _parse_files(directory, contents)
        faq_cache.write(name, json.dumps(_bases_data(bases), ensure_ascii=False).encode("utf-8"))
    return bases


def _knowledge_base_files(directory: Path) -> list[Path]:
    return [directory / f"{locale}.toml" for locale in LOCALES] + [
        directory / EXAMPLES_DIR / f"{locale}.toml" for locale in LOCALES
    ]


def _knowledge_base_name(contents: Mapping[Path, bytes | OSError]) -> str:
    """The cache file of the knowledge base read from `contents`: named by their digest (a file that
    could not be read counts as its error)."""
    parts = [
        b"read:" + content if isinstance(content, bytes) else f"not read: {type(content).__name__}"
        for content in contents.values()
    ]
    return f"faq-knowledge-base-{faq_cache.digest(_code_fingerprint(), *parts)}.json"


def _parse_files(directory: Path, contents: Mapping[Path, bytes | OSError]) -> dict[str, KnowledgeBase]:
    problems: list[str] = []
    bases: dict[str, KnowledgeBase] = {}
    for locale in LOCALES:
        path = directory / f"{locale}.toml"
        raw, problem = _parse_toml(contents[path], path.name)
        if raw is None:
            problems.append(problem or f"{path.name}: file is missing")
            continue
        base, found = _parse(raw, locale, path.name)
        problems.extend(found)
        if base is not None:
            examples, found = _load_examples(contents[directory / EXAMPLES_DIR / path.name], base)
            problems.extend(found)
            bases[locale] = replace(base, examples=examples)
    problems.extend(_compare_locales(bases))
    if problems:
        raise FaqError(problems)
    return bases


def _parse_toml(content: bytes | OSError, source: str) -> tuple[dict[str, Any] | None, str | None]:
    """A file's TOML, or what is wrong with the file; (None, None) when it is missing."""
    if isinstance(content, FileNotFoundError):
        return None, None
    try:
        if isinstance(content, OSError):
            raise content
        # as a file opened as text reads it: universal newlines
        text = content.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        return tomllib.loads(text), None
    except (OSError, UnicodeDecodeError) as error:
        return None, f"{source}: cannot be read ({error})"
    except tomllib.TOMLDecodeError as error:
        return None, f"{source}: not valid TOML ({error})"


def _bases_data(bases: Mapping[str, KnowledgeBase]) -> dict[str, Any]:
    """The knowledge bases as plain JSON data, for the cache (`_bases_from_data` reads it)."""
    return {
        locale: {
            "source": base.source,
            "entries": [
                [
                    entry.id, entry.title, entry.questions, entry.answer, entry.needs_account, entry.buttons,
                    [[variant.answer, *variant.conditions] for variant in entry.variants],
                ]
                for entry in base.entries
            ],
            "vocabulary": [base.vocabulary.synonyms, base.vocabulary.weak, base.vocabulary.words],
            "examples": base.examples,
        }
        for locale, base in bases.items()
    }


def _bases_from_data(stored: bytes) -> dict[str, KnowledgeBase] | None:
    """The knowledge bases `_bases_data` wrote, or None for a damaged file."""
    try:
        data = json.loads(stored.decode("utf-8"))
        bases = {}
        for locale, item in data.items():
            entries = tuple(
                Entry(
                    id=str(entry_id),
                    title=str(title),
                    questions=tuple(map(str, questions)),
                    answer=str(answer),
                    needs_account=bool(needs_account),
                    buttons=tuple(map(str, buttons)),
                    locale=locale,
                    variants=tuple(
                        Variant(str(text), jurisdiction, bureau_rule, frozenset(map(str, meets)))
                        for text, jurisdiction, bureau_rule, meets in variants
                    ),
                )
                for entry_id, title, questions, answer, needs_account, buttons, variants in item["entries"]
            )
            synonyms, weak, words = item["vocabulary"]
            vocabulary = Vocabulary(
                synonyms=tuple(tuple(map(str, group)) for group in synonyms),
                weak=tuple(map(str, weak)),
                words=tuple(map(str, words)),
            )
            examples = tuple((str(entry_id), str(text)) for entry_id, text in item["examples"])
            bases[locale] = KnowledgeBase(locale, entries, str(item["source"]), vocabulary, examples)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return bases if set(bases) == set(LOCALES) else None


def _load_examples(
    content: bytes | OSError, base: KnowledgeBase
) -> tuple[tuple[tuple[str, str], ...], list[str]]:
    """The examples file of `base`'s locale: `[examples]` with a list of questions per entry id.

    The file is optional; every mistake is reported with the file and the key.
    """
    source = f"{EXAMPLES_DIR}/{base.locale}.toml"
    raw, problem = _parse_toml(content, source)
    if raw is None:
        return (), [problem] if problem else []
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
    variants, found = _parse_variants(item.get("variants", []), f"{where}: variants")
    problems.extend(found)
    for variant in variants:
        used |= set(_PLACEHOLDER.findall(variant.answer)) & PLACEHOLDERS
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
            elif variants and not needs_account:
                problems.append(f"{where}: needs_account: must be true, the answer is chosen by the account (variants)")
            if needs_account and "answer" in item and isinstance(answer, str) and not account_used and not variants:
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
            variants=tuple(variants),
        ),
        problems,
    )


def _parse_variants(raw: Any, where: str) -> tuple[list[Variant], list[str]]:
    """`[[entries.variants]]`: each an answer with at least one condition (`_VARIANT_KEYS`)."""
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        return [], [f"{where}: must be [[entries.variants]] tables"]
    problems: list[str] = []
    variants: list[Variant] = []
    seen: dict[tuple[Any, ...], int] = {}
    for index, item in enumerate(raw):
        here = f"{where}[{index}]"
        found = [f"{here}: {key}: unknown key (allowed: {', '.join(_VARIANT_KEYS)})" for key in item if key not in _VARIANT_KEYS]
        answer = item.get("answer")
        if not isinstance(answer, str) or not answer.strip():
            found.append(f"{here}: answer: must be non-empty text")
        else:
            found.extend(f"{here}: answer: {problem}" for problem in _answer_problems(answer))
        jurisdiction = item.get("jurisdiction")
        if jurisdiction is not None and not (isinstance(jurisdiction, str) and JURISDICTION_CODE.fullmatch(jurisdiction)):
            found.append(f"{here}: jurisdiction: not a jurisdiction code of the policy (such as CN)")
        bureau_rule = item.get("bureau_rule")
        if bureau_rule is not None and bureau_rule not in BUREAU_RULES:
            found.append(f"{here}: bureau_rule: must be one of {', '.join(BUREAU_RULES)}")
        meets = item.get("meets", [])
        if not (isinstance(meets, list) and all(name in THRESHOLDS for name in meets)):
            found.append(f"{here}: meets: must list thresholds of the pack's legal rules ({', '.join(THRESHOLDS)})")
            meets = []
        if jurisdiction is None and bureau_rule is None and not meets:
            found.append(f"{here}: no condition (give jurisdiction, bureau_rule or meets)")
        if found:
            problems.extend(found)
            continue
        variant = Variant(answer.strip(), jurisdiction, bureau_rule, frozenset(meets))
        if variant.conditions in seen:
            problems.append(f"{here}: the same conditions as {where}[{seen[variant.conditions]}]")
        seen.setdefault(variant.conditions, index)
        variants.append(variant)
    return variants, problems


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
            if other is not None and [v.conditions for v in other.variants] != [v.conditions for v in entry.variants]:
                problems.append(
                    f"{base.source}: id {entry.id!r}: variants differ from {reference.source} "
                    "(the same conditions, in the same order, in every language)"
                )
    return problems


# ---------------------------------------------------------------------------------------------
# Rendering


def render_answer(
    entry: Entry, values: Mapping[str, str] | None = None, circumstances: Circumstances | None = None
) -> str:
    """The answer for the account's `circumstances`, its placeholders filled from already-formatted
    strings.

    Raises `FaqError` when the answer needs account figures and `values` lacks them (an unverified
    chat must never see them), when an entry with variants is given no circumstances, or when a bank
    placeholder is missing. The result is plain text: the bot escapes it before sending.
    """
    values = values or {}
    answer = entry.answer_for(circumstances)
    needed = frozenset(_PLACEHOLDER.findall(answer))
    missing_account = sorted(name for name in needed & ACCOUNT_PLACEHOLDERS if name not in values)
    unknown = entry.variants and circumstances is None
    if entry.needs_account and (missing_account or not values.keys() & ACCOUNT_PLACEHOLDERS or unknown):
        needs = missing_account or sorted(entry.placeholders & ACCOUNT_PLACEHOLDERS) or ["its circumstances"]
        raise FaqError([f"{entry.locale}: {entry.id}: needs the account's {', '.join(needs)}; verify the person first"])
    missing = sorted(name for name in needed if name not in values)
    if missing:
        raise FaqError([f"{entry.locale}: {entry.id}: no value for {', '.join(missing)}"])
    return _PLACEHOLDER.sub(lambda found: str(values[found.group(1)]), answer)


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
_WHITE_SPACES = re.compile(r"\s\s+")
_NORMALIZATION_REACH = 32
"""How far cutting a text can change its normalized form before the cut (NFKC, contractions)."""


class _Separators(dict):
    """A `str.translate` table that turns punctuation and symbols ("_" too) into spaces and keeps every
    other character; a character's Unicode category is looked up the first time it comes (and
    remembered for the first _SEPARATORS_KEPT characters: messages cannot make it grow without end)."""

    def __missing__(self, code: int) -> int | str:
        kept = not unicodedata.category(chr(code)).startswith(_PUNCTUATION_CATEGORIES)
        value = code if kept else " "
        if len(self) < _SEPARATORS_KEPT:
            self[code] = value
        return value


_SEPARATORS_KEPT = 65_536


_SEPARATORS = _Separators()


def normalize(text: str, locale: str) -> str:
    """NFKC (full width to ASCII), casefold, punctuation and symbols to spaces, ё→е, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if locale == "ru":
        text = text.replace("ё", "е")
    else:
        text = _CONTRACTION.sub("nt", text)  # "can't" is written "cant" as often
    return " ".join(text.translate(_SEPARATORS).split())


def _beginning(normalized: str, limit: int) -> str:
    """The first `limit` characters of a normalized text, without a word cut in half (unless the
    text's first word is longer than that)."""
    if len(normalized) <= limit:
        return normalized
    beginning = normalized[:limit]
    if normalized[limit] != " " and " " in beginning:
        beginning = beginning.rsplit(" ", 1)[0]
    return beginning.rstrip()


def _character_ngrams(text: str) -> list[str]:
    """The classifier's letter sequences: scikit-learn's `char_wb` analyzer (lowercase, every word
    padded with a space, CHARACTER_NGRAMS long), written out so scoring needs no scikit-learn."""
    shortest, longest = CHARACTER_NGRAMS
    ngrams: list[str] = []
    add = ngrams.append
    for word in _WHITE_SPACES.sub(" ", text.lower()).split():
        word = f" {word} "
        length = len(word)
        for size in range(shortest, longest + 1):
            offset = 0
            add(word[offset : offset + size])
            while offset + size < length:
                offset += 1
                add(word[offset : offset + size])
            if offset == 0:  # a word shorter than `size` counts once
                break
    return ngrams


class _Analyzer:
    """Turns normalized text into tokens: stems for en and ru, jieba words and characters for zh."""

    def __init__(self, locale: str, vocabulary: Vocabulary, forms: Mapping[str, Any] | None = None) -> None:
        """`forms`: what `forms()` gave for this vocabulary before (it spares stemming it again)."""
        self.locale = locale
        self.chinese = locale.startswith("zh")
        if self.chinese:
            self.stop = _ZH_STOP
            self._stemmer = None
            # jieba must keep these whole: the locale's words, synonyms and weak words, in this order
            self._jieba_words = (
                *vocabulary.words,
                *(word for group in vocabulary.synonyms for word in group),
                *vocabulary.weak,
            )
            self._jieba: Any = None
            self._jieba_lock = threading.Lock()
        else:
            import snowballstemmer

            self._stemmer = snowballstemmer.stemmer("russian" if locale == "ru" else "english")
            self.stop = _RU_STOP if locale == "ru" else _EN_STOP
        self._stems: dict[str, str] = {}
        self._synonyms: dict[str, str] = {}
        if forms is not None:
            self._synonyms = {str(form): str(canonical) for form, canonical in forms["synonyms"].items()}
            self.weak = frozenset(map(str, forms["weak"]))
        else:
            for group in vocabulary.synonyms:
                canonical = self._plain_stem(group[0])
                for word in group:
                    self._synonyms[self._plain_stem(word)] = canonical
            self.weak = frozenset(self._token(word) for word in vocabulary.weak)
        self.longest_synonym = max(map(len, self._synonyms), default=0)

    def forms(self) -> dict[str, Any]:
        """The vocabulary as this analyzer reads it (synonyms and weak words stemmed), as plain data."""
        return {"synonyms": self._synonyms, "weak": sorted(self.weak)}

    def _segmenter(self) -> Any:
        """A private jieba tokenizer with the locale's words (they do not leak into other users of
        jieba), made when the first Chinese text is cut: a matcher read from the cache needs none."""
        if self._jieba is None:
            with self._jieba_lock:
                if self._jieba is None:
                    segmenter = faq_cache.jieba_tokenizer()
                    for word in self._jieba_words:
                        segmenter.add_word(word)
                    self._jieba = segmenter
        return self._jieba

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
        for word in self._segmenter().lcut(normalized):
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
    """Logistic regression over character n-grams and the analyzer's words, fitted on the knowledge
    base's titles, phrasings and examples.

    It ranks topics better than phrasing-by-phrasing similarity for a question worded unlike any
    phrasing ("is there an operator I can chat to instead"), because it weighs every word and letter
    sequence by how well it tells the topics apart. It is also sure of some topic for any message, so
    the matcher's scores still decide whether to answer at all.

    scikit-learn fits the model (`fit`); a message is scored here from the fitted weights, because
    calling scikit-learn for one short text costs milliseconds, and a model read from the cache
    needs no scikit-learn at all.
    """

    def __init__(self, model: Mapping[str, Any], numbers: array) -> None:
        """`model` and `numbers` as `fit` gives them; ValueError when they do not belong together."""
        self._labels = [int(label) for label in model["labels"]]
        self._intercepts = [float(value) for value in model["intercepts"]]
        size = len(self._intercepts)
        self._parts = []  # per kind of feature: sublinear tf, columns, IDF weights, a row per label
        offset = 0
        for kind, sublinear in (("characters", True), ("words", False)):
            names = model["features"][kind]
            count = len(names)
            rows_at = offset + count
            end = rows_at + count * size
            if end > len(numbers):
                raise ValueError(f"fewer numbers than the classifier's {kind} need")
            rows = [numbers[rows_at + label * count : rows_at + (label + 1) * count] for label in range(size)]
            self._parts.append((sublinear, dict(zip(names, range(count))), numbers[offset:rows_at], rows))
            offset = end
        if offset != len(numbers):
            raise ValueError("more numbers than the classifier's features need")

    @staticmethod
    def fit(
        texts: list[str], labels: list[int], tokens: Callable[[str], list[str]]
    ) -> tuple[dict[str, Any], array]:
        """Fit the model: its labels, intercepts and feature names (plain JSON data), and its numbers
        (a flat array of floats): for the character features, then for the word features, the IDF
        weight of each feature, then the coefficients of every feature for the first label, for the
        second, and so on."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_union

        chars = TfidfVectorizer(analyzer=_character_ngrams, sublinear_tf=True)
        words = TfidfVectorizer(analyzer=tokens)
        regression = LogisticRegression(C=CLASSIFIER_REGULARIZATION, max_iter=3000)
        regression.fit(make_union(chars, words).fit_transform(texts), labels)
        model: dict[str, Any] = {
            "labels": [int(label) for label in regression.classes_],
            "intercepts": [float(value) for value in regression.intercept_],
            "features": {},
        }
        numbers = array("d")
        offset = 0
        for kind, vectorizer in (("characters", chars), ("words", words)):
            names = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
            model["features"][kind] = names
            numbers.extend(vectorizer.idf_.tolist())
            numbers.extend(regression.coef_[:, offset : offset + len(names)].ravel().tolist())
            offset += len(names)
        return model, numbers

    def ranked(self, normalized: str, words: list[str]) -> list[tuple[int, float]]:
        """Entry indexes with their probability, most likely first; `words` are the analyzer's
        tokens of `normalized` (the caller has them already: cutting Chinese is not cheap)."""
        decision = list(self._intercepts)
        features_of_each_kind = (_character_ngrams(normalized), words)
        for features, (sublinear, columns, idf, rows) in zip(features_of_each_kind, self._parts):
            counts: dict[int, int] = {}
            for feature in features:
                column = columns.get(feature)
                if column is not None:
                    counts[column] = counts.get(column, 0) + 1
            if not counts:
                continue
            values = [
                ((1 + math.log(count)) if sublinear else count) * idf[column]
                for column, count in counts.items()
            ]
            norm = math.sqrt(sum(value * value for value in values)) or 1.0
            present = list(counts)
            gather = itemgetter(*present) if len(present) > 1 else lambda row: (row[present[0]],)
            # each label's decision adds weight * value / norm feature by feature, in C loops
            decision = [
                sum(map(truediv, map(mul, gather(row), values), repeat(norm)), total)
                for total, row in zip(decision, rows)
            ]
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


def _phrasing_texts(base: KnowledgeBase) -> list[tuple[int, str]]:
    """Every way of asking of the knowledge base (titles and questions) with its entry's index."""
    texts: list[tuple[int, str]] = []
    for index, entry in enumerate(base.entries):
        texts.extend((index, text) for text in (entry.title, *entry.questions))
    return texts


def _build_model(base: KnowledgeBase, analyzer: _Analyzer) -> tuple[dict[str, Any], array]:
    """Everything a matcher derives from its knowledge base, as plain data: each phrasing's entry,
    tokens and fuzzy form, the words of each answer, and the fitted topic classifier."""
    phrasings = []
    for index, text in _phrasing_texts(base):
        normalized = normalize(text, base.locale)
        tokens = analyzer.tokens(normalized)
        phrasings.append((index, normalized, tokens))
    positions = {entry.id: index for index, entry in enumerate(base.entries)}
    classifier, numbers = _TopicClassifier.fit(
        [normalized for _index, normalized, _tokens in phrasings]
        + [normalize(text, base.locale) for _entry_id, text in base.examples],
        [index for index, _normalized, _tokens in phrasings]
        + [positions[entry_id] for entry_id, _text in base.examples],
        analyzer.tokens,
    )
    model = {
        "format": MODEL_FORMAT,
        "vocabulary": analyzer.forms(),
        "phrasings": [
            [index, tokens, analyzer.fuzzy_form(normalized, tokens)]
            for index, normalized, tokens in phrasings
        ],
        "answer_words": [
            analyzer.tokens(normalize(_PLACEHOLDER.sub(" ", "\n".join(entry.answers)), base.locale))
            for entry in base.entries
        ],
        "classifier": classifier,
    }
    return model, numbers


@lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """What everything cached depends on besides the knowledge base's files: this code (the cache's
    too, and the bureau rules and legal thresholds variants are checked against) and Python (its
    Unicode tables normalize text)."""
    sources = faq_cache.file_digest([Path(__file__), Path(faq_cache.__file__), Path(packs.__file__)])
    return faq_cache.digest(str(MODEL_FORMAT), sys.version, sources)


@lru_cache(maxsize=1)
def _model_fingerprint() -> str:
    """What a model depends on besides its knowledge base: the code, and the versions of the
    libraries that analyse (jieba, snowballstemmer) and fit (scikit-learn and what it uses)."""
    from importlib import metadata

    versions = []
    for package in ("scikit-learn", "scipy", "numpy", "jieba", "snowballstemmer"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} missing")
    return faq_cache.digest(_code_fingerprint(), *versions)


def _model_name(base: KnowledgeBase) -> str:
    """The cache file of `base`'s model: named by a digest of everything the model is built from,
    the knowledge base's file and examples file as they were read included."""
    content = json.dumps(
        [
            base.locale,
            [[entry.id, entry.title, entry.questions, entry.answers] for entry in base.entries],
            [base.vocabulary.synonyms, base.vocabulary.weak, base.vocabulary.words],
            base.examples,
        ],
        ensure_ascii=False,
    )
    return f"faq-model-{base.locale}-{faq_cache.digest(_model_fingerprint(), content)}.bin"


class Matcher:
    """Matches free text against one locale's knowledge base; build once, reuse for every message.

    The analysed phrasings and the fitted classifier come from the cache when the knowledge base
    has not changed since they were built (`from_cache` says whether they did; `cache=False` builds
    them here and reads and writes nothing).
    """

    def __init__(self, base: KnowledgeBase, *, threshold: float | None = None, cache: bool = True) -> None:
        from rapidfuzz import fuzz, process
        from rapidfuzz.distance import OSA

        self._edits = OSA.distance
        self._fuzz = fuzz
        self._process = process
        self.base = base
        self.locale = base.locale
        self.threshold = MATCH_THRESHOLD if threshold is None else threshold
        self.question_read = QUESTION_READ.get(base.locale, QUESTION_READ[DEFAULT_LOCALE])
        name = _model_name(base) if cache else None
        self.from_cache = name is not None and self._use_stored(name)
        if not self.from_cache:
            self._analyzer = _Analyzer(base.locale, base.vocabulary)
            model, numbers = _build_model(base, self._analyzer)
            self._use(model, numbers)
            if name is not None:
                faq_cache.write(name, faq_cache.pack_model(model, numbers))
        self._corrections: dict[str, str | None] = {}
        self._pieces: dict[str, list[str]] = {}
        self._typo_words: dict[int, list[str]] = {}

    def _use_stored(self, name: str) -> bool:
        """Use the model stored as `name`; False when there is none or it is damaged."""
        data = faq_cache.read(name)
        unpacked = faq_cache.unpack_model(data) if data is not None else None
        if unpacked is None or unpacked[0].get("format") != MODEL_FORMAT:
            return False
        model, numbers = unpacked
        try:
            self._analyzer = _Analyzer(self.locale, self.base.vocabulary, model["vocabulary"])
            self._use(model, numbers)
        except (AttributeError, KeyError, IndexError, TypeError, ValueError) as error:
            log.warning("FAQ cache: %s is damaged (%s); fitting again", name, error)
            return False
        return True

    def _use(self, model: Mapping[str, Any], numbers: array) -> None:
        """Index the phrasings of a model `_build_model` made and make its classifier."""
        entries = self.base.entries
        phrasings = [(int(index), list(tokens), str(fuzzy)) for index, tokens, fuzzy in model["phrasings"]]
        answer_words = model["answer_words"]
        if len(answer_words) != len(entries) or not all(0 <= index < len(entries) for index, *_ in phrasings):
            raise ValueError("the model is of another knowledge base")
        document_frequency: dict[str, int] = {}
        entry_vocabulary: list[set[str]] = [set() for _ in entries]
        for index, tokens, _fuzzy in phrasings:
            entry_vocabulary[index].update(tokens)
        for vocabulary in entry_vocabulary:
            for token in vocabulary:
                document_frequency[token] = document_frequency.get(token, 0) + 1
        count = max(len(entries), 1)
        idf = {token: math.log(1 + count / df) for token, df in document_frequency.items()}
        specific_weight = math.log(1 + count)  # the weight of a word only one entry uses
        # words of the answer count towards an entry's coverage, not towards its phrasings
        for index, words in enumerate(answer_words):
            entry_vocabulary[index].update(token for token in words if token in idf)
        phrasing_list: list[_Phrasing] = []
        phrasing_index: dict[str, list[int]] = {}
        for index, tokens, fuzzy in phrasings:
            token_set = frozenset(tokens)
            position = len(phrasing_list)
            phrasing_list.append(
                _Phrasing(
                    entry_index=index,
                    tokens=token_set,
                    weight=sum(idf[token] for token in token_set),
                    fuzzy=fuzzy,
                )
            )
            for token in token_set:
                phrasing_index.setdefault(token, []).append(position)
        classifier = _TopicClassifier(model["classifier"], numbers)
        if not set(classifier._labels) <= set(range(len(entries))):
            raise ValueError("the classifier is of another knowledge base")
        self._idf = idf
        self._specific_weight = specific_weight
        self._unknown_idf = UNKNOWN_WORD_WEIGHT * specific_weight
        self._vocabulary = sorted(token for token in idf if not token.startswith("#"))
        self._token_entries: dict[str, list[int]] = {}
        for index, vocabulary in enumerate(entry_vocabulary):
            for token in vocabulary:
                self._token_entries.setdefault(token, []).append(index)
        self._phrasings = phrasing_list
        self._index = phrasing_index
        self._fuzzy_choices = [phrasing.fuzzy for phrasing in phrasing_list]
        self._classifier = classifier
        # no known word (nor a synonym of one) is longer: the longest piece worth looking for
        self._longest_piece = max(self._analyzer.longest_synonym, max(map(len, idf), default=0))

    def _correct(self, token: str) -> str | None:
        """A known token for an unknown one (a typo), or None."""
        if token in self._corrections:
            return self._corrections[token]
        corrected = None
        if len(token) >= TYPO_MIN_LENGTH and not token.isdigit() and not self._analyzer.chinese:
            candidates = self._typo_candidates(len(token))
            found = self._process.extract(
                token, candidates, scorer=self._edits, score_cutoff=TYPO_EDITS, limit=None
            )
            if found:
                corrected = found[0][0]
        if len(self._corrections) < 10_000:
            self._corrections[token] = corrected
        return corrected

    def _typo_candidates(self, length: int) -> list[str]:
        """The known words a typo of `length` letters may stand for, in alphabetical order: those as
        long or up to TYPO_EDITS longer (people drop and swap letters more often than they add them:
        "debit" is not "debt"); any other word is more than TYPO_EDITS edits away."""
        candidates = self._typo_words.get(length)
        if candidates is None:
            candidates = [known for known in self._vocabulary if length <= len(known) <= length + TYPO_EDITS]
            self._typo_words[length] = candidates
        return candidates

    def _query_tokens(self, raw: list[str]) -> dict[str, float]:
        """The message's tokens with their weights: typos corrected, unknown Chinese words in pieces."""
        weights: dict[str, float] = {}
        for token in raw:
            if token in self._idf:
                weights[token] = self._idf[token]
            elif self._analyzer.chinese:
                for piece in self._known_pieces(token):
                    weights[piece] = self._idf.get(piece, self._unknown_idf)
            else:
                token = self._correct(token) or token
                weights[token] = self._idf.get(token, self._unknown_idf)
        return weights

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
                for end in range(min(len(word), start + self._longest_piece), start, -1):
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
        """The normalized beginning of the message (QUESTION_READ) without thanks for an answer."""
        text = text[:MESSAGE_READ]
        ahead = text[: READ_AHEAD * self.question_read]
        normalized = normalize(ahead, self.locale)
        # normalized well past the limit, `ahead` keeps what the whole message would; short of it, the
        # message is mostly symbols and spaces so far: read on
        if len(ahead) < len(text) and len(normalized) <= self.question_read + _NORMALIZATION_REACH:
            normalized = normalize(text, self.locale)
        normalized = _beginning(normalized, self.question_read)
        acknowledgement = _ACKNOWLEDGEMENTS.get(self.locale)
        if acknowledgement is not None:
            normalized = " ".join(acknowledgement.sub(" ", normalized).split())
        return normalized

    def scores(self, text: str) -> list[tuple[Entry, float]]:
        """Every entry with its score (0..1), best first."""
        normalized = self._prepare(text)
        ranked, _small_talk = self._rank(normalized, self._analyzer.tokens(normalized))
        return [(entry, score) for entry, score, _evidence in ranked]

    def _rank(self, normalized: str, raw_tokens: list[str]) -> tuple[list[tuple[Entry, float, float]], bool]:
        """Every entry with its score and the evidence for it, best first; and whether the message is
        small talk (no word but weak ones). `raw_tokens` are the analyzer's tokens of `normalized`.

        The evidence is what the message shares with the entry, counted in words only one entry uses
        (see STRONG_EVIDENCE); it is -1 when the message shares nothing with the entry but weak words.
        `normalized` is the message as `_prepare` gives it.
        """
        # words, but none to match: a greeting or thanks; a typed number or amount is no small talk
        small_talk = any(char.isalpha() for char in normalized)
        if not normalized:
            return [(entry, 0.0, 0.0) for entry in self.base.entries], small_talk
        weights = self._query_tokens(raw_tokens)
        query_weight = sum(weights.values()) or 1.0
        best_overlap = [0.0] * len(self.base.entries)
        touched: set[int] = set()
        for token in weights:
            touched.update(self._index.get(token, ()))
        for position in touched:
            phrasing = self._phrasings[position]
            shared = sum(map(weights.get, phrasing.tokens, repeat(0)))  # a word it lacks adds 0
            if not shared:
                continue
            # weighted geometric mean of how much of the message and of the phrasing is shared
            of_query = shared / query_weight
            of_phrasing = shared / (phrasing.weight or 1.0)
            overlap = of_query**QUERY_SHARE * of_phrasing ** (1 - QUERY_SHARE)
            if overlap > best_overlap[phrasing.entry_index]:
                best_overlap[phrasing.entry_index] = overlap
        # per entry: the weight of the message's words it uses (coverage) and the evidence for it;
        # Chinese single characters repeat their word's evidence and do not count twice, weak words
        # are no evidence. Each entry adds up its words in the message's order.
        weak = self._analyzer.weak
        count = len(self.base.entries)
        covered, strong = [0] * count, [0] * count
        shares, shares_strong = [False] * count, [False] * count
        for token, weight in weights.items():
            counted, is_weak = token[0] != "#", token in weak
            for index in self._token_entries.get(token, ()):
                covered[index] += weight
                if counted:
                    shares[index] = True
                    if not is_weak:
                        strong[index] += weight
                        shares_strong[index] = True
        coverage = [value / query_weight for value in covered]
        evidence = [
            -1.0 if shares[index] and not shares_strong[index] else strong[index] / self._specific_weight
            for index in range(count)
        ]
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
        tokens = self._analyzer.tokens(normalized)
        ranked, small_talk = self._rank(normalized, tokens)
        _top, score, evidence = ranked[0]
        scores = {entry.id: entry_score for entry, entry_score, _ in ranked}
        shared = {entry.id: entry_evidence for entry, _score, entry_evidence in ranked}
        classified = [
            (self.base.entries[index], probability)
            for index, probability in self._classifier.ranked(normalized, tokens)
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


def check_jurisdictions(codes: Collection[str], directory: Path = DEFAULT_FAQ_DIR) -> None:
    """Raise `FaqError` when a variant names a jurisdiction the policy has no pack for (its answer
    could never be given): checked at start-up, once the policy is read."""
    problems = [
        f"{base.source}: id {entry.id!r}: variants[{index}]: jurisdiction {variant.jurisdiction!r} has no pack in the policy"
        for base in _default_bases(Path(directory)).values()
        for entry in base
        for index, variant in enumerate(entry.variants)
        if variant.jurisdiction is not None and variant.jurisdiction not in codes
    ]
    if problems:
        raise FaqError(problems)


def faq_topics(locale: str, directory: Path = DEFAULT_FAQ_DIR) -> list[Entry]:
    """Every topic of `locale` in the file's order, for a /faq list of buttons (label: `entry.title`)."""
    return list(knowledge_base(locale, directory).entries)
