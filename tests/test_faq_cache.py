"""The FAQ's cache: a start with an unchanged knowledge base reads back what an earlier start derived,
gets exactly the same answers, needs neither scikit-learn nor jieba's dictionary, and anything the
results depend on changing builds them again."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bot.domain import faq, faq_cache
from bot.domain.faq import DEFAULT_FAQ_DIR, LOCALES, Matcher, load_knowledge_base

TOY_TOPICS = {
    "en": {
        "how_to_pay": ("How to pay", ["how do I pay", "where can I pay my card", "ways to make a payment",
                                      "can I pay online", "pay the bill", "paying by bank transfer"]),
        "late_fee": ("Late fees", ["why was I charged a late fee", "what is the late fee", "remove the late charge",
                                   "late payment fee", "penalty for paying late", "fee for a missed payment"]),
        "credit_record": ("Credit record", ["will this hurt my credit score", "credit bureau report",
                                            "does it affect my credit history", "when is it removed from my record",
                                            "credit rating after default", "bureau listing"]),
    },
    "zh_CN": {
        "how_to_pay": ("怎么还款", ["怎么还款", "在哪里还钱", "还款方式有哪些", "可以网上还款吗", "怎么还信用卡", "银行转账还款"]),
        "late_fee": ("违约金", ["为什么收违约金", "违约金是多少", "能免掉违约金吗", "逾期费用", "晚还的罚款", "滞纳金怎么算"]),
        "credit_record": ("征信记录", ["会影响征信吗", "征信报告", "上征信了吗", "征信记录什么时候消除", "逾期对信用有影响吗", "征信黑名单"]),
    },
    "ru": {
        "how_to_pay": ("Как оплатить", ["как оплатить", "где можно заплатить", "способы оплаты",
                                        "можно оплатить онлайн", "оплатить счёт", "оплата банковским переводом"]),
        "late_fee": ("Штраф за просрочку", ["почему списали штраф", "какой штраф за просрочку", "убрать штраф",
                                            "пеня за просрочку", "штраф за опоздание с оплатой",
                                            "комиссия за пропуск платежа"]),
        "credit_record": ("Кредитная история", ["испортится ли кредитная история", "бюро кредитных историй",
                                                "повлияет ли на кредитную историю", "когда удалят запись",
                                                "кредитный рейтинг после просрочки", "запись в бюро"]),
    },
}
TOY_VOCABULARY = {
    "en": '[vocabulary]\nweak = ["today"]\nsynonyms = [["fee", "fees", "charge", "penalty"]]\n',
    "zh_CN": '[vocabulary]\nweak = ["今天"]\nwords = ["违约金"]\nsynonyms = [["违约金", "滞纳金", "罚款"]]\n',
    "ru": '[vocabulary]\nweak = ["сегодня"]\nsynonyms = [["штраф", "пеня", "комиссия"]]\n',
}
TOY_EXAMPLES = {
    "en": {"how_to_pay": ["where do I send the money"], "late_fee": ["what is this extra charge"]},
    "zh_CN": {"how_to_pay": ["钱打到哪里"], "late_fee": ["多收的钱是什么"]},
    "ru": {"how_to_pay": ["куда перевести деньги"], "late_fee": ["что за лишнее списание"]},
}
MESSAGES = {
    "en": ["how can I pay", "is there a fee for paying late", "my credit score", "hello", "paymnet online", ""],
    "zh_CN": ["我想还款", "违约金能免吗", "征信", "你好", "钱打到哪里呢"],
    "ru": ["как мне оплатить", "штраф за просрочку", "кредитная история", "привет"],
}


def write_toy_faq(directory: Path) -> Path:
    """A small valid knowledge base (three topics in three locales, with examples): quick to fit."""
    (directory / faq.EXAMPLES_DIR).mkdir(parents=True)
    for locale in LOCALES:
        blocks = [TOY_VOCABULARY[locale]]
        for entry_id, (title, questions) in TOY_TOPICS[locale].items():
            blocks.append(
                f"[[entries]]\nid = {json.dumps(entry_id)}\ntitle = {json.dumps(title, ensure_ascii=False)}\n"
                f"questions = {json.dumps(questions, ensure_ascii=False)}\n"
                f'answer = "Call {{bank_phone}}."\nneeds_account = false\n'
            )
        (directory / f"{locale}.toml").write_text("\n".join(blocks), encoding="utf-8")
        examples = "\n".join(
            f"{entry_id} = {json.dumps(texts, ensure_ascii=False)}" for entry_id, texts in TOY_EXAMPLES[locale].items()
        )
        (directory / faq.EXAMPLES_DIR / f"{locale}.toml").write_text(f"[examples]\n{examples}\n", encoding="utf-8")
    return directory


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv(faq_cache.CACHE_DIRECTORY_VARIABLE, str(directory))
    return directory


@pytest.fixture
def toy_dir(tmp_path: Path) -> Path:
    return write_toy_faq(tmp_path / "faq")


def probabilities(matcher: Matcher, text: str) -> list[tuple[int, float]]:
    normalized = matcher._prepare(text)
    return matcher._classifier.ranked(normalized, matcher._analyzer.tokens(normalized))


def test_a_cached_model_matches_exactly_as_a_fresh_fit(cache_dir):
    base = load_knowledge_base(DEFAULT_FAQ_DIR)["en"]
    fitted = Matcher(base)
    stored = Matcher(base)
    assert not fitted.from_cache and stored.from_cache
    questions = [*MESSAGES["en"], "is this message really from my bank", "can I pay in installments instead",
                 "thanks for the info", "they keep adding interest every single day, how does that work"]
    for text in questions:
        assert stored.match(text) == fitted.match(text), text
        assert stored.match(text, verified=True) == fitted.match(text, verified=True), text
        assert probabilities(stored, text) == probabilities(fitted, text), text


@pytest.mark.parametrize("locale", LOCALES)
def test_a_cached_model_of_every_locale_matches_as_a_fresh_fit(cache_dir, toy_dir, locale):
    base = load_knowledge_base(toy_dir)[locale]
    fitted, stored = Matcher(base), Matcher(base)
    assert not fitted.from_cache and stored.from_cache
    for text in MESSAGES[locale]:
        assert stored.match(text) == fitted.match(text), text
        assert probabilities(stored, text) == probabilities(fitted, text), text
        assert stored.scores(text) == fitted.scores(text), text


def test_a_chinese_matcher_from_the_cache_cuts_nothing_until_the_first_message(cache_dir, toy_dir):
    base = load_knowledge_base(toy_dir)["zh_CN"]
    Matcher(base)
    stored = Matcher(base)
    assert stored.from_cache and stored._analyzer._jieba is None
    assert stored.match("我想还款").best.id == "how_to_pay"
    assert stored._analyzer._jieba is not None


def test_a_start_with_a_warm_cache_imports_neither_scikit_learn_nor_jieba(cache_dir, toy_dir):
    for base in load_knowledge_base(toy_dir).values():
        Matcher(base)
    script = (
        "import json, sys\n"
        "from bot.domain.faq import Matcher, load_knowledge_base\n"
        f"matchers = [Matcher(base) for base in load_knowledge_base({str(toy_dir)!r}).values()]\n"
        "before = sorted(name for name in ('sklearn', 'jieba', 'scipy', 'numpy') if name in sys.modules)\n"
        "answer = matchers[1].match('我想还款').best.id\n"
        "print(json.dumps([[m.from_cache for m in matchers], before, answer, 'sklearn' in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ}, check=True, timeout=120
    )
    from_cache, imported, answer, sklearn_after_matching = json.loads(done.stdout)
    assert from_cache == [True, True, True]
    assert imported == []
    assert answer == "how_to_pay" and not sklearn_after_matching


def test_a_stored_knowledge_base_equals_the_parsed_files(cache_dir, monkeypatch):
    parsed = load_knowledge_base(DEFAULT_FAQ_DIR)

    def must_not_parse(*_arguments):
        raise AssertionError("parsed again although the files did not change")

    monkeypatch.setattr(faq, "_parse_files", must_not_parse)
    assert load_knowledge_base(DEFAULT_FAQ_DIR) == parsed


def test_editing_a_knowledge_base_file_or_an_examples_file_fits_again(cache_dir, toy_dir):
    def en_matcher() -> Matcher:
        return Matcher(load_knowledge_base(toy_dir)["en"])

    assert not en_matcher().from_cache
    assert en_matcher().from_cache
    knowledge = toy_dir / "en.toml"
    original = knowledge.read_text(encoding="utf-8")
    knowledge.write_text(original.replace('"pay the bill"', '"set up a direct debit"'), encoding="utf-8")
    edited = en_matcher()
    assert not edited.from_cache
    assert "set up a direct debit" in edited.base.get("how_to_pay").questions
    assert edited.match("set up a direct debit").best.id == "how_to_pay"
    assert en_matcher().from_cache

    examples = toy_dir / faq.EXAMPLES_DIR / "en.toml"
    original_examples = examples.read_text(encoding="utf-8")
    examples.write_text(original_examples.replace("send the money", "wire the cash"), encoding="utf-8")
    assert not en_matcher().from_cache

    knowledge.write_text(original, encoding="utf-8")
    examples.write_text(original_examples, encoding="utf-8")
    assert en_matcher().from_cache


def test_a_different_matching_code_fits_again(cache_dir, toy_dir, monkeypatch):
    base = load_knowledge_base(toy_dir)["en"]
    Matcher(base)
    assert Matcher(base).from_cache
    monkeypatch.setattr(faq, "MODEL_FORMAT", faq.MODEL_FORMAT + 1)
    faq._code_fingerprint.cache_clear()
    faq._model_fingerprint.cache_clear()
    try:
        assert not Matcher(base).from_cache
    finally:
        faq._code_fingerprint.cache_clear()
        faq._model_fingerprint.cache_clear()


def test_an_unwritable_cache_directory_fits_in_memory(tmp_path, toy_dir, monkeypatch, caplog):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory would be")
    monkeypatch.setenv(faq_cache.CACHE_DIRECTORY_VARIABLE, str(blocker / "cache"))
    bases = load_knowledge_base(toy_dir)
    first, second = Matcher(bases["en"]), Matcher(bases["en"])
    assert not first.from_cache and not second.from_cache
    assert second.match("how can I pay").best.id == "how_to_pay"
    assert "cannot write" in caplog.text


def test_a_damaged_cache_file_is_built_again(cache_dir, toy_dir):
    base = load_knowledge_base(toy_dir)["en"]
    Matcher(base)
    for path in cache_dir.iterdir():
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    again = load_knowledge_base(toy_dir)["en"]
    assert again == base
    rebuilt = Matcher(again)
    assert not rebuilt.from_cache and rebuilt.match("how can I pay").best.id == "how_to_pay"
    assert Matcher(again).from_cache


def test_a_write_is_all_or_nothing(cache_dir, monkeypatch):
    assert faq_cache.write("kind-1", b"whole")
    assert sorted(path.name for path in cache_dir.iterdir()) == ["kind-1"]

    def interrupted(_source, _target):
        raise OSError("disk full")

    monkeypatch.setattr(faq_cache.os, "replace", interrupted)
    assert not faq_cache.write("kind-2", b"half")
    assert sorted(path.name for path in cache_dir.iterdir()) == ["kind-1"]
    assert faq_cache.read("kind-1") == b"whole"


def test_only_the_latest_versions_of_a_file_are_kept(cache_dir):
    for number in range(faq_cache.KEPT_VERSIONS + 3):
        faq_cache.write(f"faq-model-en-{number:04d}", b"x")
        os.utime(cache_dir / f"faq-model-en-{number:04d}", (number, number))
    faq_cache.write("faq-model-ru-0000", b"x")
    kept = sorted(path.name for path in cache_dir.iterdir() if path.name.startswith("faq-model-en-"))
    assert len(kept) == faq_cache.KEPT_VERSIONS
    assert kept[-1] == f"faq-model-en-{faq_cache.KEPT_VERSIONS + 2:04d}" and "faq-model-en-0000" not in kept
    assert (cache_dir / "faq-model-ru-0000").exists()


def test_the_cache_directory_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FAQ_CACHE_DIR", str(tmp_path / "chosen"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert faq_cache.cache_directory() == tmp_path / "chosen"
    monkeypatch.setenv("FAQ_CACHE_DIR", "")
    assert faq_cache.cache_directory() == tmp_path / "xdg" / "repay-bot"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert faq_cache.cache_directory() == tmp_path / "home" / ".cache" / "repay-bot"


def test_the_stored_chinese_dictionary_cuts_as_jieba_does(cache_dir):
    base = load_knowledge_base(DEFAULT_FAQ_DIR)["zh_CN"]
    texts = [text for entry in base for text in (entry.title, *entry.questions)]
    texts += [text for _entry_id, text in base.examples]
    chance = random.Random(7)
    texts += ["".join(chr(chance.randrange(0x4E00, 0x9FA5)) for _ in range(80)) for _ in range(20)]
    built = faq_cache.jieba_tokenizer()
    stored = faq_cache.jieba_tokenizer()
    assert type(built.FREQ) is dict and isinstance(stored.FREQ, faq_cache.ChineseDictionary)
    import jieba

    plain = jieba.Tokenizer()
    plain.initialize()
    for tokenizer in (plain, stored):
        for word in base.vocabulary.words:
            tokenizer.add_word(word)
    assert stored.total == plain.total
    assert [stored.lcut(text) for text in texts] == [plain.lcut(text) for text in texts]


def test_a_damaged_chinese_dictionary_is_not_used(cache_dir):
    faq_cache.jieba_tokenizer()
    (stored,) = cache_dir.glob("jieba-dictionary-*")
    stored.write_bytes(stored.read_bytes()[:-100])
    tokenizer = faq_cache.jieba_tokenizer()
    assert type(tokenizer.FREQ) is dict
    assert tokenizer.lcut("怎么还款") == ["怎么", "还款"]


def test_the_letter_sequences_are_scikit_learns(cache_dir):
    from sklearn.feature_extraction.text import TfidfVectorizer

    analyzer = TfidfVectorizer(analyzer="char_wb", ngram_range=faq.CHARACTER_NGRAMS).build_analyzer()
    bases = load_knowledge_base(DEFAULT_FAQ_DIR)
    texts = [faq.normalize(text, base.locale) for base in bases.values() for entry in base for text in entry.questions]
    texts += ["a", "", "ab  cd", "Straße ÉCOLE", "x" * 300]
    assert [faq._character_ngrams(text) for text in texts] == [analyzer(text) for text in texts]
