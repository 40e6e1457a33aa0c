"""The FAQ: the knowledge base loads and is validated, answers render safely, and matching is measured."""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from bot.domain.errors import DomainError
from bot.domain.faq import (
    ACCOUNT_PLACEHOLDERS,
    CANDIDATE_COUNT,
    DEFAULT_FAQ_DIR,
    LOCALES,
    MAX_QUESTIONS,
    MIN_QUESTIONS,
    PLACEHOLDERS,
    Circumstances,
    FaqError,
    Matcher,
    faq_topics,
    load_knowledge_base,
    matcher_for,
    normalize,
    render_answer,
)

EVAL_DIR = Path(__file__).parent / "data"
# Evaluation sets per locale (tests/data/faq_<set>_<locale>.toml), each with questions labelled with
# their entry and off-topic messages that must match nothing. Each blind set was written by someone
# who saw only a one-line description of each topic, never the knowledge base or another set;
# questions that came out word for word as a phrasing or an example were removed. Each was measured
# once on arrival (the figures are in the commit that added it). Earlier sets (a tuning set and blind
# sets 1 to 21) became the classifier's examples (bot/data/faq/examples), so they no longer measure
# anything. 22 and 23 were measured once and then used to set the classifier's thresholds; 24 and 25
# were measured once, and only their off-topic banking questions then became examples; 26 and 27 were
# measured once and not tuned on.
EVALUATION_SETS = tuple(f"blind{number}" for number in range(22, 28))
EVALUATIONS = [(name, locale) for name in EVALUATION_SETS for locale in LOCALES]
TARGET_ACCURACY = 0.90
MAX_FALSE_MATCHES = 0.05
# Where a locale misses a target on a set: the level reached, guarded against regressions.
BELOW_TARGET: dict[tuple[str, str], float] = {}
FALSE_MATCHES_ABOVE_TARGET: dict[tuple[str, str], float] = {("blind26", "ru"): 0.08}
OTHER_SERVICES = "other_services"
"""The topic that sends banking questions outside collections (savings, PINs, transfers) to the bank's
own channels: an off-topic message answered with it is counted apart, not as a false match."""
ABOUT_CHAT = "about_chat"
"""The topic that says what the chat is and can do ("are you a bot?", "what can you do?"): an
off-topic message answered with it is counted apart too."""
REQUIRED_TOPICS = (
    "balance_grew", "minimum_payment", "credit_record", "fee_waiver", "how_to_pay",
    "missed_installment", "change_plan", "is_it_the_bank", "stop_messages", "dispute",
    "legal_consequences", "privacy", "talk_to_person",
)
SAMPLE_VALUES = {
    "overdue_amount": "¥12,345.60",
    "minimum_due": "¥1,500.00",
    "daily_interest": "¥6.17",
    "interest_rate": "18.25% a year (0.05% a day)",
    "bureau_name": "the Credit Reference Center of the People's Bank of China",
    "bureau_years": "5 years",
    "bureau_offset_days": "180 days",
    "bureau_drop_off_date": "1 December 2031",
    "next_installment": "¥893.33 on 15 January 2027",
    "bank_name": "Example Bank",
    "bank_phone": "+86 400 820 8888",
    "bank_website": "https://www.example-bank.com",
}
BANK_VALUES = {name: SAMPLE_VALUES[name] for name in ("bank_name", "bank_phone", "bank_website")}
EVERY_CIRCUMSTANCE = [
    Circumstances(code, rule, frozenset(meets))
    for code in ("CN", "US", "RU")
    for rule in ("after_repayment", "after_delinquency")
    for meets in ((), ("court_action",), ("criminal_notice",), ("court_action", "criminal_notice"))
]


@pytest.fixture(scope="module")
def bases():
    return load_knowledge_base(DEFAULT_FAQ_DIR)


@pytest.fixture(scope="module")
def matchers(bases):
    return {locale: Matcher(base) for locale, base in bases.items()}


def copy_faq(tmp_path: Path) -> Path:
    target = tmp_path / f"faq{len(list(tmp_path.iterdir()))}"
    shutil.copytree(DEFAULT_FAQ_DIR, target)
    return target


def problems_after(tmp_path: Path, locale: str, old: str, new: str) -> list[str]:
    directory = copy_faq(tmp_path)
    path = directory / f"{locale}.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(FaqError) as caught:
        load_knowledge_base(directory)
    assert isinstance(caught.value, DomainError)
    return caught.value.problems


# --- loading and validation ---------------------------------------------------------------------


def test_every_locale_loads_with_the_same_ids(bases):
    assert set(bases) == set(LOCALES)
    ids = [base.ids for base in bases.values()]
    assert all(each == ids[0] for each in ids)
    assert 15 <= len(ids[0]) <= 20


def test_required_topics_are_present(bases):
    for base in bases.values():
        missing = set(REQUIRED_TOPICS) - set(base.ids)
        assert not missing, f"{base.locale}: missing {sorted(missing)}"


def test_entries_are_well_formed(bases):
    for base in bases.values():
        for entry in base:
            assert len(entry.title) <= 40 and MIN_QUESTIONS <= len(entry.questions) <= MAX_QUESTIONS
            assert entry.placeholders <= PLACEHOLDERS
            assert entry.needs_account == bool(entry.placeholders & ACCOUNT_PLACEHOLDERS or entry.variants)
            assert "<" not in entry.answer and ">" not in entry.answer


def test_unknown_placeholder_is_reported_with_file_and_key(tmp_path):
    problems = problems_after(tmp_path, "en", "about {daily_interest} a day", "about {hourly_interest} a day")
    assert any("en.toml" in p and "balance_grew" in p and "{hourly_interest}" in p for p in problems), problems


def test_duplicate_id_is_reported(tmp_path):
    problems = problems_after(tmp_path, "ru", 'id = "privacy"', 'id = "dispute"')
    assert any("ru.toml" in p and "duplicate" in p for p in problems), problems


def test_ids_differing_between_locales_are_reported(tmp_path):
    problems = problems_after(tmp_path, "zh_CN", 'id = "privacy"', 'id = "privacy_zh"')
    assert any("zh_CN.toml" in p and "'privacy'" in p and "missing" in p for p in problems), problems
    assert any("zh_CN.toml" in p and "'privacy_zh'" in p for p in problems), problems


def test_missing_field_is_reported(tmp_path):
    problems = problems_after(tmp_path, "en", 'title = "Privacy of my data"\n', "")
    assert any("en.toml" in p and "privacy" in p and "title: missing" in p for p in problems), problems


def test_unknown_button_is_reported(tmp_path):
    problems = problems_after(tmp_path, "en", 'buttons = ["pay"]', 'buttons = ["call_me"]')
    assert any("buttons" in p and "call_me" in p for p in problems), problems


def test_account_placeholder_without_needs_account_is_reported(tmp_path):
    old = 'answer = """You can pay with'
    new = 'answer = """You owe {overdue_amount}. You can pay with'
    problems = problems_after(tmp_path, "en", old, new)
    assert any("how_to_pay" in p and "needs_account: must be true" in p for p in problems), problems


def test_variants_are_validated(tmp_path):
    old = '[[entries.variants]]\nmeets = ["court_action"]\n'
    problems = problems_after(tmp_path, "en", old, '[[entries.variants]]\nmeets = ["court_action", "jail"]\n')
    assert any("legal_consequences" in p and "variants[1]: meets" in p for p in problems), problems
    problems = problems_after(tmp_path, "en", old, '[[entries.variants]]\n')
    assert any("variants[1]: no condition" in p for p in problems), problems
    problems = problems_after(tmp_path, "en", old, '[[entries.variants]]\nbureau_rule = "forever"\n')
    assert any("variants[1]: bureau_rule" in p for p in problems), problems
    problems = problems_after(tmp_path, "en", old, '[[entries.variants]]\njurisdiction = "china"\n')
    assert any("variants[1]: jurisdiction" in p for p in problems), problems


def test_variants_must_agree_across_locales(tmp_path):
    problems = problems_after(tmp_path, "ru", 'jurisdiction = "CN"\n', 'jurisdiction = "RU"\n')
    assert any("ru.toml" in p and "legal_consequences" in p and "variants differ" in p for p in problems), problems


def test_an_entry_with_variants_needs_the_account(tmp_path):
    directory = copy_faq(tmp_path)
    for locale in LOCALES:
        path = directory / f"{locale}.toml"
        text = path.read_text(encoding="utf-8")
        start = text.index('id = "legal_consequences"')
        at = text.index("needs_account = true", start)
        path.write_text(text[:at] + "needs_account = false" + text[at + len("needs_account = true"):], encoding="utf-8")
    with pytest.raises(FaqError) as caught:
        load_knowledge_base(directory)
    assert any("legal_consequences" in p and "chosen by the account" in p for p in caught.value.problems)


def test_html_and_stray_braces_are_reported(tmp_path):
    problems = problems_after(tmp_path, "ru", "Вы вправе запросить", "<b>Вы</b> вправе { запросить")
    assert any("HTML" in p for p in problems) and any("brace" in p for p in problems), problems


def test_a_word_in_two_synonym_groups_is_reported(tmp_path):
    problems = problems_after(tmp_path, "en", '["link", "url"]', '["link", "url", "jail"]')
    assert any("en.toml: vocabulary: synonyms" in p and "'jail' is already in synonyms[0]" in p for p in problems), problems


def test_vocabulary_shape_is_checked(tmp_path):
    problems = problems_after(tmp_path, "zh_CN", "[vocabulary]\n", "[vocabulary]\nstopwords = []\n")
    assert any("zh_CN.toml: vocabulary: stopwords: unknown key" in p for p in problems), problems
    problems = problems_after(tmp_path, "ru", '["ипотека", "кредит"]', '["ипотека"]')
    assert any("ru.toml: vocabulary: synonyms[" in p and "at least two words" in p for p in problems), problems


def test_synonyms_from_the_file_are_used(tmp_path, bases):
    assert Matcher(bases["en"]).match("will they put me in prison").best.id == "legal_consequences"
    directory = copy_faq(tmp_path)
    path = directory / "en.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('"jail", "prison", ', '"jail", ', 1), encoding="utf-8")
    without = Matcher(load_knowledge_base(directory)["en"]).match("will they put me in prison")
    assert without.best is None or without.score < Matcher(bases["en"]).match("will they put me in prison").score


def test_invalid_toml_and_missing_file_are_reported(tmp_path):
    directory = copy_faq(tmp_path)
    (directory / "ru.toml").write_text("[[entries]\nid = ", encoding="utf-8")
    (directory / "zh_CN.toml").unlink()
    with pytest.raises(FaqError) as caught:
        load_knowledge_base(directory)
    text = str(caught.value)
    assert "ru.toml: not valid TOML" in text and "zh_CN.toml: file is missing" in text


# --- rendering and verification ------------------------------------------------------------------


def test_every_answer_renders_in_every_locale(bases):
    for base in bases.values():
        for entry in base:
            texts = {render_answer(entry, SAMPLE_VALUES, circumstances) for circumstances in EVERY_CIRCUMSTANCE}
            assert len(texts) == len(entry.answers), (base.locale, entry.id, "every variant is reachable")
            for text in texts:
                assert "{" not in text and "}" not in text, (base.locale, entry.id)
            for name in entry.placeholders:
                assert any(SAMPLE_VALUES[name] in text for text in texts)


def test_rendering_fills_values(bases):
    entry = bases["en"].get("minimum_payment")
    assert "Your minimum due is ¥1,500.00." in render_answer(entry, SAMPLE_VALUES)


def test_account_answer_is_refused_without_account_values(bases):
    for base in bases.values():
        for entry in base:
            if entry.needs_account:
                for values in (None, {}, BANK_VALUES):
                    with pytest.raises(FaqError, match="verify"):
                        render_answer(entry, values, EVERY_CIRCUMSTANCE[0])
                if entry.variants:
                    with pytest.raises(FaqError, match="verify"):
                        render_answer(entry, SAMPLE_VALUES)
            else:
                assert "{" not in render_answer(entry, BANK_VALUES)


def test_entries_for_unverified_have_no_account_entries(bases):
    for base in bases.values():
        unverified = base.entries_for(verified=False)
        assert unverified and not any(entry.needs_account for entry in unverified)
        assert len(base.entries_for(verified=True)) == len(base)


def test_unverified_match_of_an_account_entry_needs_verification(matchers):
    question = {"en": "What is my minimum due?", "zh_CN": "我的最低还款额是多少？", "ru": "Какой у меня минимальный платёж?"}
    for locale, text in question.items():
        result = matchers[locale].match(text)
        assert result.best is not None and result.best.id == "minimum_payment", (locale, result)
        assert result.needs_verification
        assert not matchers[locale].match(text, verified=True).needs_verification
    general = matchers["en"].match("Is this really the bank?")
    assert general.best.id == "is_it_the_bank" and not general.needs_verification


def test_not_sure_offers_three_candidates(matchers):
    result = matchers["en"].match("what's the weather like in Paris")
    assert result.best is None and len(result.candidates) == 3


def test_faq_topics_lists_every_entry_in_order(bases):
    for locale in LOCALES:
        assert [entry.id for entry in faq_topics(locale)] == list(bases[locale].ids)
    assert faq_topics("de")[0].locale == "en"
    assert matcher_for("ru").match("как заплатить").best.id == "how_to_pay"


def test_normalization():
    assert normalize("ＣＡＮ  U  waive？！ the FEE", "en") == "can u waive the fee"
    assert normalize("Ещё раз, пожалуйста!", "ru") == "еще раз пожалуйста"
    assert normalize("我逾期了３个月，会坐牢吗？", "zh_CN") == "我逾期了3个月 会坐牢吗"


def evaluation(name: str, locale: str) -> dict:
    return tomllib.loads((EVAL_DIR / f"faq_{name}_{locale}.toml").read_text(encoding="utf-8"))


@dataclass
class Quality:
    accuracy: float
    offered: float
    """How often the expected entry is among the closest topics an "I'm not sure" answer offers."""
    false_matches: float
    """Off-topic messages answered from a collections topic."""
    redirected: float
    """Off-topic messages answered with OTHER_SERVICES: "for that, use the app or call the bank"."""
    about_chat: float
    """Off-topic messages answered with ABOUT_CHAT: "I am the bank's assistant, this is what I do"."""
    misses: list[str]


def evaluate(matcher: Matcher, data: dict) -> Quality:
    known = set(matcher.base.ids)
    misses = []
    correct = offered = false = redirected = about_chat = 0
    for item in data["questions"]:
        assert item["expected"] in known, item
        result = matcher.match(item["text"], verified=True)
        offered += item["expected"] in [entry.id for entry, _score in result.candidates]
        if result.best is not None and result.best.id == item["expected"]:
            correct += 1
        else:
            got = result.best.id if result.best else None
            misses.append(f"{item['text']!r}: expected {item['expected']}, got {got} ({result.score:.2f})")
    for text in data["off_topic"]:
        result = matcher.match(text, verified=True)
        if result.best is None:
            continue
        if result.best.id == OTHER_SERVICES:
            redirected += 1
        elif result.best.id == ABOUT_CHAT:
            about_chat += 1
        else:
            false += 1
            misses.append(f"off-topic {text!r} matched {result.best.id} ({result.score:.2f})")
    count, off = len(data["questions"]), len(data["off_topic"])
    return Quality(correct / count, offered / count, false / off, redirected / off, about_chat / off, misses)


@pytest.mark.parametrize(("name", "locale"), EVALUATIONS)
def test_evaluation_sets_are_large_and_not_copied(name, locale, bases):
    data = evaluation(name, locale)
    assert len(data["questions"]) >= 60 and len(data["off_topic"]) >= 20
    assert {item["expected"] for item in data["questions"]} == set(bases[locale].ids) - {OTHER_SERVICES, ABOUT_CHAT}
    own = {normalize(q, locale) for entry in bases[locale] for q in entry.questions}
    own |= {normalize(text, locale) for _entry_id, text in bases[locale].examples}
    copied = [item["text"] for item in data["questions"] if normalize(item["text"], locale) in own]
    assert not copied, f"evaluation questions copied from the phrasings or examples: {copied}"


@pytest.mark.parametrize(("name", "locale"), EVALUATIONS)
def test_matching_quality(name, locale, matchers):
    data = evaluation(name, locale)
    quality = evaluate(matchers[locale], data)
    figures = (
        f"{locale} {name}: top-1 accuracy {quality.accuracy:.1%} over {len(data['questions'])} questions "
        f"(target {TARGET_ACCURACY:.0%}; among the {CANDIDATE_COUNT} closest topics {quality.offered:.1%}); "
        f"off-topic over {len(data['off_topic'])}: false matches {quality.false_matches:.1%} "
        f"(target <= {MAX_FALSE_MATCHES:.0%}), sent to other services {quality.redirected:.1%}, "
        f"answered with what the chat does {quality.about_chat:.1%}"
    )
    print("\n" + figures + "".join(f"\n    miss {miss}" for miss in quality.misses))
    assert quality.false_matches <= FALSE_MATCHES_ABOVE_TARGET.get((name, locale), MAX_FALSE_MATCHES), figures
    assert quality.accuracy >= BELOW_TARGET.get((name, locale), TARGET_ACCURACY), figures


@pytest.mark.parametrize(
    ("locale", "text"),
    [("en", "hi"), ("en", "ok thanks lol"), ("en", "how's your day going?"), ("ru", "привет, как дела"),
     ("ru", "ок"), ("zh_CN", "在吗"), ("zh_CN", "哈哈哈")],
)
def test_small_talk_offers_no_topic(matchers, locale, text):
    result = matchers[locale].match(text)
    assert result.best is None and result.small_talk


@pytest.mark.parametrize(
    ("locale", "text"),
    [("en", "what's the weather like"), ("ru", "какая сегодня погода"), ("zh_CN", "今天天气怎么样"),
     ("en", "+86 138 0013 8000"), ("zh_CN", "1500")],
)
def test_a_message_with_words_or_numbers_of_its_own_is_no_small_talk(matchers, locale, text):
    result = matchers[locale].match(text)
    assert result.best is None and not result.small_talk


@pytest.mark.parametrize(
    ("locale", "thanks", "question", "expected"),
    [
        ("en", "thanks for the info", "thanks for the info, and who can see my data?", "privacy"),
        ("ru", "ясно, спасибо за информацию", "спасибо за информацию, а кто видит мои данные?", "privacy"),
        ("zh_CN", "谢谢你的回复", "谢谢你的回复，我的个人信息安全吗", "privacy"),
    ],
)
def test_thanks_for_an_answer_picks_no_topic(matchers, locale, thanks, question, expected):
    assert matchers[locale].match(thanks).best is None
    assert matchers[locale].match(question).best.id == expected


def test_a_chinese_word_glued_from_known_parts_is_read_as_them(matchers):
    # jieba cuts "爸妈" (mum and dad) as one word the knowledge base never uses: 爸 + 妈
    assert matchers["zh_CN"].scores("会通知我爸妈吗")[0][0].id == "family_contact"


@pytest.mark.parametrize(
    ("locale", "text"),
    [("en", "am I talking to a bot?"), ("ru", "ты робот?"), ("zh_CN", "你是机器人吗")],
)
def test_asking_what_the_chat_is_is_answered(matchers, locale, text):
    assert matchers[locale].match(text).best.id == "about_chat"


def test_examples_with_an_unknown_topic_or_twice_are_reported(tmp_path):
    directory = copy_faq(tmp_path)
    (directory / "examples" / "ru.toml").write_text(
        '[examples]\nno_such_topic = ["где деньги"]\nprivacy = ["Кто видит мои данные?", "кто видит мои данные"]\n',
        encoding="utf-8",
    )
    with pytest.raises(FaqError) as caught:
        load_knowledge_base(directory)
    problems = caught.value.problems
    assert "examples/ru.toml: examples.no_such_topic: no entry has this id" in problems, problems
    assert any("examples/ru.toml: examples.privacy:" in p and "appears twice" in p for p in problems), problems


def test_examples_teach_the_classifier(bases):
    question = "remind me what i owe on the plan for june pls"
    without = Matcher(replace(bases["en"], examples=())).match(question)
    assert bases["en"].examples and Matcher(bases["en"]).match(question).best.id == "next_installment"
    assert without.best is None or without.best.id != "next_installment"


def test_weak_words_never_answer_alone(matchers):
    assert matchers["en"].match("how r u today").best is None
    assert matchers["en"].match("what if I pay it all off today").best.id == "pay_in_full_today"
    assert matchers["ru"].match("привет, как дела").best is None


def test_a_long_message_is_answered_on_strong_evidence(matchers):
    text = "The amount went up again from 1,240 to 1,310 and I haven't spent anything. Where is that coming from?"
    result = matchers["en"].match(text)
    assert result.score < matchers["en"].threshold
    assert result.best is not None and result.best.id == "balance_grew"
