"""The bank's policy file (TOML): loaded once, validated, each mistake reported with its key.

Besides the bank's contact details the policy holds the collection rules the calculator applies:
stages by days past due, installment terms (self-service and agent-only), fee and interest rates by
term, the minimum installment per currency, the longest promise-to-pay delay, the late-fee waiver
and how long an offer stays valid. Rates are fractions (0.0075 is 0.75 %); amounts are in whole
currency units.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import date, time, timedelta
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.domain.calculator import (
    AMORTIZING,
    FLAT,
    MAX_APR,
    MAX_FLAT_MONTHLY_RATE,
    MAX_MONTHS,
    MAX_PROMISE_DAYS,
    currency_exponent,
    is_known_currency,
)
from bot.domain.errors import CalculationError, ProblemsError
from bot.languages import SUPPORTED_LOCALES, language
from bot.domain.jurisdiction import (
    BUREAU_RULES,
    REMAINDERS,
    ROUNDINGS,
    BureauRule,
    ContactRules,
    HardshipTerms,
    Hours,
    Jurisdiction,
    LegalRules,
    PlanConventions,
    Threshold,
)

CONSEQUENCES = ("credit_bureau", "late_fees", "interest", "card_suspended", "legal_action")
WAIVER_CONDITIONS = ("pay_in_full", "first_installment")
MAX_OFFER_MINUTES = 7 * 24 * 60
MAX_WAIVER_DAYS = 90
_SECTIONS = (
    "version", "bank", "stages", "terms", "fees", "minimum_installment", "promise_to_pay",
    "late_fee_waiver", "offers", "minimum_payment", "disclosures", "handoff",
    "jurisdiction_by_currency", "jurisdictions",
)
HANDOFF_REASONS = ("person", "hardship", "dispute", "complaint", "anger")
DISCLOSURE_MOMENTS = ("first_contact", "balance")
DISCLOSURE_LOCALES = SUPPORTED_LOCALES
"""Every text the policy holds is written in each of the bot's languages."""


class PolicyError(ProblemsError):
    """The policy file is invalid; `problems` lists each mistake as `key: reason`."""

    what = "policy"


@dataclass(frozen=True)
class BankContact:
    name: str
    phone: str
    website: str
    hours_start: time
    hours_end: time
    timezone: str


@dataclass(frozen=True)
class Consequences:
    """What applies to an account while it is in a stage."""

    credit_bureau: bool
    late_fees: bool
    interest: bool
    card_suspended: bool
    legal_action: bool

    def active(self) -> tuple[str, ...]:
        """Names of the consequences that apply, in the policy's order."""
        return tuple(name for name in CONSEQUENCES if getattr(self, name))


@dataclass(frozen=True)
class Stage:
    name: str
    min_dpd: int
    max_dpd: int | None  # None: open-ended (the last stage)
    consequences: Consequences

    def contains(self, dpd: int) -> bool:
        return dpd >= self.min_dpd and (self.max_dpd is None or dpd <= self.max_dpd)


@dataclass(frozen=True)
class Terms:
    """Installment terms in months: what the bot may offer, and the longer ones only an agent may."""

    self_service: tuple[int, ...]
    agent_only: tuple[int, ...]
    self_service_method: str  # "flat" or "amortizing"

    def offered(self, agent: bool = False) -> tuple[int, ...]:
        """Terms open to the bot (agent=False) or to an agent (all of them), shortest first."""
        return tuple(sorted(self.self_service + self.agent_only)) if agent else self.self_service


@dataclass(frozen=True)
class Fees:
    flat_monthly: Mapping[int, Decimal]  # term in months -> fee per month, fraction of the principal
    amortizing_apr: Mapping[int, Decimal]  # term in months -> nominal annual rate, fraction


@dataclass(frozen=True)
class MinimumInstallment:
    by_currency: Mapping[str, Decimal]  # ISO code -> smallest monthly payment, in currency units
    default_share: Decimal  # other currencies: smallest payment as a share of the plan's amount

    def for_plan(self, currency: str, principal: Decimal) -> Decimal:
        """The smallest monthly payment allowed for a plan of `principal` in `currency`."""
        fixed = self.by_currency.get(currency)
        if fixed is not None:
            return fixed
        exponent = Decimal(1).scaleb(-currency_exponent(currency))
        return (principal * self.default_share).quantize(exponent, rounding=ROUND_CEILING)


@dataclass(frozen=True)
class LateFeeWaiver:
    allowed: bool
    condition: str | None  # "pay_in_full" or "first_installment"; None when not allowed
    within_days: int | None


@dataclass(frozen=True)
class Disclosure:
    """A text the law or the bank requires, shown to cardholders of the given jurisdictions."""

    jurisdictions: frozenset[str]
    when: str  # "first_contact": once, right after verification; "balance": with every balance
    texts: Mapping[str, str]  # locale -> text

    def applies(self, jurisdiction: str, when: str) -> bool:
        return self.when == when and jurisdiction in self.jurisdictions


@dataclass(frozen=True)
class Handoff:
    """When the bot passes a chat to a person, and how long a waiting case may wait unnoticed."""

    reannounce_minutes: int
    keywords: Mapping[str, Mapping[str, tuple[str, ...]]]  # locale -> reason -> words, lower case

    def reason_in(self, text: str, locale: str) -> str | None:
        """The first handoff reason whose words appear in `text` (case- and width-insensitive).

        A word must start a word of the text ("died" is not in "studied"); Chinese has no spaces
        between words, so there a phrase may stand anywhere.
        """
        folded = fold(text)
        for reason, words in self.keywords.get(locale, {}).items():
            if not language(locale).spaced_words:
                if any(word in folded for word in words):
                    return reason
            elif _starts_of_words(tuple(words)).search(folded):
                return reason
        return None


def fold(text: str) -> str:
    """Case, width and apostrophes folded: "Didn’t", "didn't" and "DIDNT" read alike."""
    return unicodedata.normalize("NFKC", text).casefold().replace("'", "").replace("\u2019", "")


@lru_cache(maxsize=64)
def _starts_of_words(words: tuple[str, ...]) -> re.Pattern[str]:
    """Any of `words` at the start of a word: one pass over the text for all of a reason's words.

    Grouped by first character, and the start of a word checked after it (``h(?<!\\w.)uman``), so
    that the search skips to the characters a word can start with instead of trying every position.
    """
    rests: dict[str, list[str]] = {}
    for word in words:
        rests.setdefault(word[0], []).append(re.escape(word[1:]))
    return re.compile(
        "|".join(rf"{re.escape(first)}(?<!\w.)(?:{'|'.join(rest)})" for first, rest in rests.items()), re.DOTALL
    )


@dataclass(frozen=True)
class Policy:
    version: str
    bank: BankContact
    stages: tuple[Stage, ...]
    terms: Terms
    fees: Fees
    minimum_installment: MinimumInstallment
    promise_max_days: int
    late_fee_waiver: LateFeeWaiver
    offer_expiry_minutes: int
    minimum_payment_share: Decimal  # the statement minimum as a share of the balance
    jurisdictions: Mapping[str, Jurisdiction]
    jurisdiction_by_currency: Mapping[str, str]
    """ISO currency -> the code of the jurisdiction of its accounts when the file names none;
    "default" for any other currency."""
    disclosures: tuple[Disclosure, ...] = ()
    handoff: Handoff = Handoff(reannounce_minutes=15, keywords={})
    jurisdiction: Jurisdiction | None = None
    """The pack this policy is the view of (`for_account`); None for the bank's own policy."""
    _views: dict[str, Policy] = field(default_factory=dict, compare=False, repr=False)

    def pack_for(self, code: str | None, currency: str) -> Jurisdiction:
        """The jurisdiction of an account: the one it names, else its currency's default."""
        if code is not None and code in self.jurisdictions:
            return self.jurisdictions[code]
        chosen = self.jurisdiction_by_currency.get(currency) or self.jurisdiction_by_currency["default"]
        return self.jurisdictions[chosen]

    def for_account(self, account: Any) -> Policy:
        """The policy as it applies to `account` (anything with `currency` and `jurisdiction`):
        its pack's terms, rates and rules in place of the bank's defaults."""
        pack = self.pack_for(getattr(account, "jurisdiction", None), account.currency)
        return self.for_jurisdiction(pack.code)

    def for_jurisdiction(self, code: str) -> Policy:
        view = self._views.get(code)
        if view is None:
            raise KeyError(f"no jurisdiction {code!r} in the policy")
        return view

    @property
    def rules(self) -> Jurisdiction:
        """The pack in force: this view's, or (for the bank's own policy) the default one."""
        return self.jurisdiction or self.jurisdictions[self.jurisdiction_by_currency["default"]]

    @property
    def credit_record_years(self) -> int:
        return self.rules.credit_bureau.years

    def disclosures_for(self, account: Any, when: str) -> tuple[Disclosure, ...]:
        """What must be shown to `account` (anything with `currency` and `jurisdiction`) `when`."""
        code = self.pack_for(getattr(account, "jurisdiction", None), account.currency).code
        return tuple(item for item in self.disclosures if item.applies(code, when))

    def stage_for(self, dpd: int) -> Stage | None:
        """The stage of an account `dpd` days past due; None when it is not overdue (dpd <= 0)."""
        for stage in self.stages:
            if stage.contains(dpd):
                return stage
        return None

    def plan_terms(self, months: int, agent: bool = False) -> tuple[str, Decimal]:
        """(method, rate) the policy sets for a term: the flat monthly fee rate or the APR.

        Raises CalculationError when the term is not offered (to the bot, or to an agent).
        """
        if months in self.terms.self_service:
            if self.terms.self_service_method == FLAT:
                return FLAT, self.fees.flat_monthly[months]
            return AMORTIZING, self.fees.amortizing_apr[months]
        if months in self.terms.agent_only:
            if agent:
                return AMORTIZING, self.fees.amortizing_apr[months]
            raise CalculationError(
                f"{months} months is a term only an agent may offer; self-service terms: "
                f"{_join(self.terms.self_service)} months"
            )
        raise CalculationError(
            f"{months} months is not a term the policy offers; terms: {_join(self.terms.offered(agent=True))} months"
        )


def _join(values: tuple[int, ...]) -> str:
    return ", ".join(str(value) for value in values)


class _Reader:
    """Reads typed values out of the parsed TOML and collects every problem instead of stopping."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.problems: list[str] = []

    def problem(self, key: str, reason: str) -> None:
        self.problems.append(f"{key}: {reason}")

    def get(self, key: str, kind: type, default: Any = None) -> Any:
        node: Any = self.raw
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                if default is not None:
                    return default
                self.problems.append(f"{key}: missing")
                return None
            node = node[part]
        return self.check(key, node, kind)

    def node(self, key: str) -> Any:
        """The raw value at a dotted key, or None."""
        node: Any = self.raw
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def check(self, key: str, value: Any, kind: type) -> Any:
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            self.problems.append(f"{key}: must be a {_KIND_NAMES.get(kind, kind.__name__)}")
            return None
        return value

    def integer(self, key: str, value: Any, low: int, high: int) -> int | None:
        value = self.check(key, value, int)
        if value is None:
            return None
        if not low <= value <= high:
            self.problem(key, f"{value} is out of range ({low} to {high})")
            return None
        return value

    def decimal(self, key: str, value: Any, low: Decimal, high: Decimal, *, unit: str = "") -> Decimal | None:
        """A number (TOML float or integer, or a string such as "0.0075") within [low, high]."""
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
            self.problem(key, "must be a number")
            return None
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            self.problem(key, f"{value!r} is not a number")
            return None
        if not number.is_finite() or not low <= number <= high:
            self.problem(key, f"{value} is out of range ({low} to {high}{unit})")
            return None
        return number

    def table(self, key: str, value: Any) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.problem(key, "must be a table")
            return None
        return value

    def unknown_keys(self, prefix: str, node: Any, known: tuple[str, ...]) -> None:
        if isinstance(node, dict):
            for name in node:
                if name not in known:
                    self.problem(f"{prefix}{name}", f"unknown key (expected one of {', '.join(known)})")

    def clock_time(self, key: str) -> time | None:
        value = self.get(key, str)
        if value is None:
            return None
        try:
            return time.fromisoformat(value)
        except ValueError:
            self.problems.append(f"{key}: must be a time such as 09:00")
            return None

    def zone(self, key: str) -> str | None:
        value = self.get(key, str)
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            self.problems.append(f"{key}: unknown time zone {value!r}")
            return None
        return value


_KIND_NAMES = {int: "whole number", str: "string", bool: "boolean (true or false)", list: "list", dict: "table"}


def _stages(reader: _Reader) -> tuple[Stage, ...]:
    raw = reader.get("stages", list)
    if raw is None:
        return ()
    if not raw:
        reader.problem("stages", "at least one stage is needed")
        return ()
    stages: list[Stage | None] = []
    names: dict[str, int] = {}
    for index, node in enumerate(raw):
        key = f"stages[{index}]"
        if reader.table(key, node) is None:
            stages.append(None)
            continue
        reader.unknown_keys(f"{key}.", node, ("name", "min_dpd", "max_dpd", "consequences"))
        name = reader.check(f"{key}.name", node.get("name"), str) if "name" in node else None
        if "name" not in node:
            reader.problem(f"{key}.name", "missing")
        elif name is not None:
            if not name.strip():
                reader.problem(f"{key}.name", "must not be empty")
            elif name in names:
                reader.problem(f"{key}.name", f"{name!r} is already used by stages[{names[name]}]")
            else:
                names[name] = index
        min_dpd = max_dpd = None
        if "min_dpd" not in node:
            reader.problem(f"{key}.min_dpd", "missing")
        else:
            min_dpd = reader.integer(f"{key}.min_dpd", node["min_dpd"], 1, 100_000)
        if "max_dpd" in node:
            max_dpd = reader.integer(f"{key}.max_dpd", node["max_dpd"], 1, 100_000)
            if max_dpd is not None and min_dpd is not None and max_dpd < min_dpd:
                reader.problem(f"{key}.max_dpd", f"{max_dpd} is before min_dpd {min_dpd}")
                max_dpd = None
        consequences = _consequences(reader, f"{key}.consequences", node.get("consequences"))
        if name is None or min_dpd is None or consequences is None:
            stages.append(None)
            continue
        stages.append(Stage(name=name, min_dpd=min_dpd, max_dpd=max_dpd, consequences=consequences))
    _check_stage_order(reader, raw, stages)
    return tuple(stage for stage in stages if stage is not None)


def _consequences(reader: _Reader, key: str, node: Any) -> Consequences | None:
    if node is None:
        reader.problem(key, "missing")
        return None
    if reader.table(key, node) is None:
        return None
    reader.unknown_keys(f"{key}.", node, CONSEQUENCES)
    flags: dict[str, bool] = {}
    for name in CONSEQUENCES:
        if name not in node:
            reader.problem(f"{key}.{name}", "missing")
            continue
        value = reader.check(f"{key}.{name}", node[name], bool)
        if value is not None:
            flags[name] = value
    return Consequences(**flags) if len(flags) == len(CONSEQUENCES) else None


def _check_stage_order(reader: _Reader, raw: list[Any], stages: list[Stage | None]) -> None:
    """Stages start at 1 DPD, follow each other without gaps or overlaps, and the last is open-ended."""
    last = len(stages) - 1
    for index, stage in enumerate(stages):
        if stage is None:
            continue
        key = f"stages[{index}]"
        if index == 0 and stage.min_dpd != 1:
            reader.problem(f"{key}.min_dpd", f"the first stage must start at 1, not {stage.min_dpd}")
        if index == last and isinstance(raw[index], dict) and "max_dpd" in raw[index]:
            reader.problem(f"{key}.max_dpd", "the last stage must be open-ended (remove max_dpd)")
        if index < last and stage.max_dpd is None and isinstance(raw[index], dict) and "max_dpd" not in raw[index]:
            reader.problem(f"{key}.max_dpd", "missing (only the last stage may be open-ended)")
        previous = stages[index - 1] if index > 0 else None
        if previous is None or previous.max_dpd is None:
            continue
        if stage.min_dpd <= previous.max_dpd:
            reader.problem(
                f"{key}.min_dpd", f"overlaps stages[{index - 1}] (which ends at {previous.max_dpd} DPD)"
            )
        elif stage.min_dpd > previous.max_dpd + 1:
            reader.problem(
                f"{key}.min_dpd",
                f"leaves a gap after stages[{index - 1}]: days {previous.max_dpd + 1} to "
                f"{stage.min_dpd - 1} have no stage",
            )


def _term_list(reader: _Reader, key: str, *, required: bool) -> tuple[int, ...]:
    raw = reader.get(key, list, default=None if required else [])
    if raw is None:
        return ()
    if required and not raw:
        reader.problem(key, "at least one term is needed")
    seen: list[int] = []
    for value in raw:
        if isinstance(value, bool) or not isinstance(value, int):
            reader.problem(key, f"{value!r} is not a whole number of months")
        elif not 1 <= value <= MAX_MONTHS:
            reader.problem(key, f"{value} is out of range (1 to {MAX_MONTHS} months)")
        elif value in seen:
            reader.problem(key, f"{value} appears twice")
        else:
            seen.append(value)
    return tuple(sorted(seen))


def _rate_table(reader: _Reader, key: str, high: Decimal, unit: str) -> dict[int, Decimal]:
    node = reader.get(key, dict, default={})
    if node is None:
        return {}
    rates: dict[int, Decimal] = {}
    for name, value in node.items():
        if not name.isdigit() or not 1 <= int(name) <= MAX_MONTHS:
            reader.problem(f"{key}.{name}", f"not a term in months (1 to {MAX_MONTHS})")
            continue
        rate = reader.decimal(f"{key}.{name}", value, Decimal(0), high, unit=unit)
        if rate is not None:
            rates[int(name)] = rate
    return rates


def _terms_and_fees(
    reader: _Reader, terms_key: str = "terms", fees_key: str = "fees", method: str | None = None
) -> tuple[Terms, Fees]:
    """The terms and rates at `terms_key` and `fees_key` (the bank's, or a pack's own); a pack
    gives its plans' `method` in place of ``terms.self_service_method``."""
    reader.unknown_keys(
        f"{terms_key}.", reader.node(terms_key),
        ("self_service", "agent_only") if terms_key != "terms" else ("self_service", "agent_only", "self_service_method"),
    )
    reader.unknown_keys(f"{fees_key}.", reader.node(fees_key), ("flat_monthly", "amortizing_apr"))
    self_service = _term_list(reader, f"{terms_key}.self_service", required=True)
    agent_only = _term_list(reader, f"{terms_key}.agent_only", required=False)
    for term in agent_only:
        if term in self_service:
            reader.problem(f"{terms_key}.agent_only", f"{term} is also a self-service term")
    agent_only = tuple(term for term in agent_only if term not in self_service)
    if method is None:
        method = reader.get(f"{terms_key}.self_service_method", str, default=FLAT)
        if method not in (FLAT, AMORTIZING, None):
            reader.problem(f"{terms_key}.self_service_method", f"{method!r} is not \"flat\" or \"amortizing\"")
            method = None
    flat = _rate_table(reader, f"{fees_key}.flat_monthly", MAX_FLAT_MONTHLY_RATE, " a month")
    apr = _rate_table(reader, f"{fees_key}.amortizing_apr", MAX_APR, " a year")
    if method == FLAT:
        for term in self_service:
            if term not in flat and not _bad_key(reader, f"{fees_key}.flat_monthly", term):
                reader.problem(f"{terms_key}.self_service", f"{term} has no fee rate in {fees_key}.flat_monthly")
    elif method == AMORTIZING:
        for term in self_service:
            if term not in apr and not _bad_key(reader, f"{fees_key}.amortizing_apr", term):
                reader.problem(f"{terms_key}.self_service", f"{term} has no rate in {fees_key}.amortizing_apr")
    for term in agent_only:
        if term not in apr and not _bad_key(reader, f"{fees_key}.amortizing_apr", term):
            reader.problem(f"{terms_key}.agent_only", f"{term} has no rate in {fees_key}.amortizing_apr")
    return (
        Terms(self_service=self_service, agent_only=agent_only, self_service_method=method or FLAT),
        Fees(flat_monthly=flat, amortizing_apr=apr),
    )


def _bad_key(reader: _Reader, key: str, term: int) -> bool:
    """Whether the term's rate is present but was already reported as wrong."""
    node = reader.node(key)
    return isinstance(node, dict) and str(term) in node


def _minimum_installment(reader: _Reader) -> MinimumInstallment:
    node = reader.get("minimum_installment", dict)
    amounts: dict[str, Decimal] = {}
    share = None
    if node is not None:
        for name, value in node.items():
            key = f"minimum_installment.{name}"
            if name == "default_share":
                share = reader.decimal(key, value, Decimal(0), Decimal(1))
                if share is not None and share == 0:
                    reader.problem(key, "must be more than 0")
                    share = None
                continue
            if not is_known_currency(name):
                reader.problem(key, f"unknown currency {name!r} (use an ISO 4217 code such as CNY)")
                continue
            amount = reader.decimal(key, value, Decimal(0), Decimal(10) ** 9)
            if amount is None:
                continue
            if amount <= 0:
                reader.problem(key, "must be more than 0")
            elif -amount.normalize().as_tuple().exponent > currency_exponent(name):
                reader.problem(key, f"{value} has more decimals than {name} allows ({currency_exponent(name)})")
            else:
                amounts[name] = amount
        if "default_share" not in node:
            reader.problem("minimum_installment.default_share", "missing")
    return MinimumInstallment(by_currency=amounts, default_share=share or Decimal(1))


def _late_fee_waiver(reader: _Reader) -> LateFeeWaiver:
    reader.unknown_keys("late_fee_waiver.", reader.raw.get("late_fee_waiver"), ("allowed", "condition", "within_days"))
    allowed = reader.get("late_fee_waiver.allowed", bool)
    if not allowed:
        return LateFeeWaiver(allowed=False, condition=None, within_days=None)
    condition = reader.get("late_fee_waiver.condition", str)
    if condition is not None and condition not in WAIVER_CONDITIONS:
        reader.problem(
            "late_fee_waiver.condition", f"{condition!r} is not one of {', '.join(WAIVER_CONDITIONS)}"
        )
        condition = None
    days = reader.get("late_fee_waiver.within_days", int)
    if days is not None:
        days = reader.integer("late_fee_waiver.within_days", days, 1, MAX_WAIVER_DAYS)
    return LateFeeWaiver(allowed=True, condition=condition, within_days=days)


def _disclosures(reader: _Reader) -> tuple[Disclosure, ...]:
    raw = reader.raw.get("disclosures", [])
    if not isinstance(raw, list):
        reader.problem("disclosures", "must be a list of [[disclosures]] tables")
        return ()
    found: list[Disclosure] = []
    for index, node in enumerate(raw):
        key = f"disclosures[{index}]"
        if reader.table(key, node) is None:
            continue
        reader.unknown_keys(f"{key}.", node, ("jurisdictions", "when", *DISCLOSURE_LOCALES))
        codes = reader.check(f"{key}.jurisdictions", node.get("jurisdictions"), list)
        when = reader.check(f"{key}.when", node.get("when"), str)
        if when is not None and when not in DISCLOSURE_MOMENTS:
            reader.problem(f"{key}.when", f"{when!r} is not one of {', '.join(DISCLOSURE_MOMENTS)}")
        texts = {locale: reader.check(f"{key}.{locale}", node.get(locale), str) for locale in DISCLOSURE_LOCALES}
        for code in codes or []:
            if not isinstance(code, str) or code not in (reader.node("jurisdictions") or {}):
                reader.problem(f"{key}.jurisdictions", f"{code!r} has no [jurisdictions.{code}] pack")
        if codes is not None and when in DISCLOSURE_MOMENTS and all(texts.values()):
            found.append(Disclosure(frozenset(codes), when, texts))
    return tuple(found)


def _handoff(reader: _Reader) -> Handoff:
    node = reader.table("handoff", reader.raw.get("handoff", {}))
    if node is None:
        return Handoff(15, {})
    reader.unknown_keys("handoff.", node, ("reannounce_minutes", "keywords"))
    minutes = reader.integer("handoff.reannounce_minutes", node.get("reannounce_minutes"), 1, 24 * 60) or 15
    keywords: dict[str, dict[str, tuple[str, ...]]] = {}
    by_locale = reader.table("handoff.keywords", node.get("keywords", {})) or {}
    reader.unknown_keys("handoff.keywords.", by_locale, DISCLOSURE_LOCALES)
    for locale, reasons in by_locale.items():
        key = f"handoff.keywords.{locale}"
        if reader.table(key, reasons) is None:
            continue
        reader.unknown_keys(f"{key}.", reasons, HANDOFF_REASONS)
        keywords[locale] = {}
        for reason, words in reasons.items():
            if not isinstance(words, list) or not all(isinstance(word, str) and word.strip() for word in words):
                reader.problem(f"{key}.{reason}", "must be a list of words or phrases")
                continue
            keywords[locale][reason] = tuple(fold(word) for word in words)
    return Handoff(minutes, keywords)


JURISDICTION_CODE = re.compile(r"[A-Z]{2}(-[A-Z0-9]{1,3})?")
_PACK_KEYS = ("name", "retention_years", "contact", "credit_bureau", "legal", "plans", "terms", "fees", "hardship")
_CONTACT_KEYS = (
    "working_days", "days_off", "weekly_days_off", "holidays", "max_per_day", "max_per_week", "max_per_month",
    "opt_out_notice", "reply_window_minutes",
)


def _jurisdictions(reader: _Reader, minimum: MinimumInstallment) -> dict[str, tuple[Jurisdiction, Terms, Fees]]:
    """Every ``[jurisdictions.XX]`` pack, with the terms and rates its accounts are offered."""
    node = reader.get("jurisdictions", dict)
    if not node:
        if node is not None:
            reader.problem("jurisdictions", "at least one jurisdiction is needed")
        return {}
    packs: dict[str, tuple[Jurisdiction, Terms, Fees]] = {}
    for code, raw in node.items():
        key = f"jurisdictions.{code}"
        if not JURISDICTION_CODE.fullmatch(code):
            reader.problem(key, "not a jurisdiction code (ISO 3166-1 alpha-2, such as CN, or a subdivision such as US-CA)")
            continue
        if reader.table(key, raw) is None:
            continue
        reader.unknown_keys(f"{key}.", raw, _PACK_KEYS)
        name = reader.get(f"{key}.name", str)
        retention = reader.get(f"{key}.retention_years", int)
        if retention is not None:
            retention = reader.integer(f"{key}.retention_years", retention, 1, 30)
        contact = _contact_rules(reader, f"{key}.contact")
        bureau = _bureau_rule(reader, f"{key}.credit_bureau")
        legal = _legal_rules(reader, f"{key}.legal")
        plans = _plan_conventions(reader, f"{key}.plans")
        terms, fees = _terms_and_fees(
            reader,
            f"{key}.terms" if "terms" in raw else "terms",
            f"{key}.fees" if "fees" in raw else "fees",
            method=plans.method if plans is not None else FLAT,
        )
        hardship = _hardship_terms(reader, f"{key}.hardship")
        parts = (name, retention, contact, bureau, legal, plans, hardship)
        if any(part is None for part in parts):
            continue
        packs[code] = (
            Jurisdiction(code, name, contact, bureau, legal, plans, hardship, retention),  # type: ignore[arg-type]
            terms,
            fees,
        )
    return packs


def _jurisdiction_by_currency(reader: _Reader, packs: Mapping[str, Any]) -> dict[str, str]:
    node = reader.get("jurisdiction_by_currency", dict)
    if node is None:
        return {}
    chosen: dict[str, str] = {}
    for currency, code in node.items():
        key = f"jurisdiction_by_currency.{currency}"
        if currency != "default" and not is_known_currency(currency):
            reader.problem(key, f"unknown currency {currency!r} (use an ISO 4217 code such as CNY, or default)")
            continue
        if reader.check(key, code, str) is None:
            continue
        if code not in packs and JURISDICTION_CODE.fullmatch(code) and f"jurisdictions.{code}" not in " ".join(reader.problems):
            reader.problem(key, f"{code!r} has no [jurisdictions.{code}] pack")
            continue
        chosen[currency] = code
    if "default" not in node:
        reader.problem("jurisdiction_by_currency.default", "missing (the jurisdiction of accounts in any other currency)")
    return chosen


def _hours(reader: _Reader, key: str) -> Hours | None:
    node = reader.get(key, dict)
    if node is None:
        return None
    reader.unknown_keys(f"{key}.", node, ("start", "end"))
    start, end = reader.clock_time(f"{key}.start"), reader.clock_time(f"{key}.end")
    if start is None or end is None:
        return None
    if end <= start:
        reader.problem(f"{key}.end", f"{end:%H:%M} is not after start {start:%H:%M}")
        return None
    return Hours(start, end)


def _cap(reader: _Reader, key: str) -> int | None | bool:
    """A cap on messages: a number, None for no cap (0), False when it was wrong."""
    value = reader.get(key, int)
    if value is None:
        return False
    value = reader.integer(key, value, 0, 1000)
    return False if value is None else (value or None)


def _contact_rules(reader: _Reader, key: str) -> ContactRules | None:
    node = reader.get(key, dict)
    if node is None:
        return None
    reader.unknown_keys(f"{key}.", node, _CONTACT_KEYS)
    working, off = _hours(reader, f"{key}.working_days"), _hours(reader, f"{key}.days_off")
    weekdays = reader.get(f"{key}.weekly_days_off", list)
    days_off: set[int] = set()
    for value in weekdays or []:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 7:
            reader.problem(f"{key}.weekly_days_off", f"{value!r} is not a weekday (1 = Monday to 7 = Sunday)")
        else:
            days_off.add(value)
    if len(days_off) == 7:
        reader.problem(f"{key}.weekly_days_off", "every day of the week is a day off")
    holidays: set[date] = set()
    for value in reader.get(f"{key}.holidays", list, default=[]) or []:
        try:
            holidays.add(value if isinstance(value, date) else date.fromisoformat(str(value)))
        except ValueError:
            reader.problem(f"{key}.holidays", f"{value!r} is not a date such as 2026-01-01")
    caps = [_cap(reader, f"{key}.max_per_{period}") for period in ("day", "week", "month")]
    notice = reader.get(f"{key}.opt_out_notice", bool)
    window = reader.get(f"{key}.reply_window_minutes", int)
    if window is not None:
        window = reader.integer(f"{key}.reply_window_minutes", window, 0, 24 * 60)
    if working is None or off is None or weekdays is None or False in caps or notice is None or window is None:
        return None
    return ContactRules(
        working, off, frozenset(days_off), frozenset(holidays), *caps, opt_out_notice=notice,  # type: ignore[misc]
        reply_window=timedelta(minutes=window),
    )


def _bureau_rule(reader: _Reader, key: str) -> BureauRule | None:
    node = reader.get(key, dict)
    if node is None:
        return None
    reader.unknown_keys(f"{key}.", node, ("rule", "years", "delinquency_offset_days", "name"))
    rule = reader.get(f"{key}.rule", str)
    if rule is not None and rule not in BUREAU_RULES:
        reader.problem(f"{key}.rule", f"{rule!r} is not one of {', '.join(BUREAU_RULES)}")
        rule = None
    years = reader.get(f"{key}.years", int)
    if years is not None:
        years = reader.integer(f"{key}.years", years, 1, 20)
    offset = reader.get(f"{key}.delinquency_offset_days", int, default=0)
    if offset is not None:
        offset = reader.integer(f"{key}.delinquency_offset_days", offset, 0, 3650)
    names = _texts(reader, f"{key}.name")
    if None in (rule, years, offset, names):
        return None
    return BureauRule(rule, years, offset, names)  # type: ignore[arg-type]


def _texts(reader: _Reader, key: str) -> dict[str, str] | None:
    """A text in each of the bot's languages."""
    node = reader.get(key, dict)
    if node is None:
        return None
    reader.unknown_keys(f"{key}.", node, DISCLOSURE_LOCALES)
    texts = {locale: reader.get(f"{key}.{locale}", str) for locale in DISCLOSURE_LOCALES}
    if not all(texts.values()):
        return None
    return texts  # type: ignore[return-value]


def _threshold(reader: _Reader, key: str) -> Threshold | None | bool:
    """A threshold, None when absent (never said), False when wrong."""
    node = reader.node(key)
    if node is None:
        return None
    if reader.table(key, node) is None:
        return False
    reader.unknown_keys(f"{key}.", node, ("min_days_past_due", "min_overdue"))
    days = reader.get(f"{key}.min_days_past_due", int)
    if days is not None:
        days = reader.integer(f"{key}.min_days_past_due", days, 1, 100_000)
    amounts = reader.get(f"{key}.min_overdue", dict)
    floors: dict[str, Decimal] = {}
    for currency, value in (amounts or {}).items():
        if not is_known_currency(currency):
            reader.problem(f"{key}.min_overdue.{currency}", f"unknown currency {currency!r}")
            continue
        amount = reader.decimal(f"{key}.min_overdue.{currency}", value, Decimal(0), Decimal(10) ** 12)
        if amount is not None:
            floors[currency] = amount
    if days is None or amounts is None:
        return False
    return Threshold(days, floors)


def _legal_rules(reader: _Reader, key: str) -> LegalRules | None:
    node = reader.get(key, dict)
    if node is None:
        return None
    reader.unknown_keys(f"{key}.", node, ("court_action", "criminal_notice"))
    court, criminal = _threshold(reader, f"{key}.court_action"), _threshold(reader, f"{key}.criminal_notice")
    if court is False or criminal is False:
        return None
    return LegalRules(court, criminal)  # type: ignore[arg-type]


def _plan_conventions(reader: _Reader, key: str) -> PlanConventions | None:
    node = reader.get(key, dict)
    if node is None:
        return None
    reader.unknown_keys(f"{key}.", node, ("method", "rounding", "remainder"))
    found = {}
    for name, allowed in (("method", (FLAT, AMORTIZING)), ("rounding", ROUNDINGS), ("remainder", REMAINDERS)):
        value = reader.get(f"{key}.{name}", str)
        if value is not None and value not in allowed:
            reader.problem(f"{key}.{name}", f"{value!r} is not one of {', '.join(allowed)}")
            value = None
        found[name] = value
    if None in found.values():
        return None
    return PlanConventions(**found)


def _hardship_terms(reader: _Reader, key: str) -> HardshipTerms | None:
    node = reader.get(key, dict)
    if node is None:
        return None
    reader.unknown_keys(f"{key}.", node, ("fees_during_plan", "ends_after_days_late", "stops_collection_messages"))
    fees = reader.get(f"{key}.fees_during_plan", bool)
    days = reader.get(f"{key}.ends_after_days_late", int)
    if days is not None:
        days = reader.integer(f"{key}.ends_after_days_late", days, 1, 365)
    stops = reader.get(f"{key}.stops_collection_messages", bool)
    if None in (fees, days, stops):
        return None
    return HardshipTerms(fees, days, stops)  # type: ignore[arg-type]


def parse_policy(raw: dict[str, Any]) -> Policy:
    reader = _Reader(raw)
    reader.unknown_keys("", raw, _SECTIONS)
    version = reader.get("version", str)
    bank = BankContact(
        name=reader.get("bank.name", str),
        phone=reader.get("bank.phone", str),
        website=reader.get("bank.website", str),
        hours_start=reader.clock_time("bank.hours_start"),
        hours_end=reader.clock_time("bank.hours_end"),
        timezone=reader.zone("bank.timezone"),
    )
    stages = _stages(reader)
    terms, fees = _terms_and_fees(reader)
    minimum = _minimum_installment(reader)
    promise_days = reader.get("promise_to_pay.max_days", int)
    if promise_days is not None:
        promise_days = reader.integer("promise_to_pay.max_days", promise_days, 0, MAX_PROMISE_DAYS)
    waiver = _late_fee_waiver(reader)
    expiry = reader.get("offers.expiry_minutes", int)
    if expiry is not None:
        expiry = reader.integer("offers.expiry_minutes", expiry, 1, MAX_OFFER_MINUTES)
    share = reader.get("minimum_payment.share_of_balance", object)
    if share is not None:
        share = reader.decimal("minimum_payment.share_of_balance", share, Decimal("0.01"), Decimal(1))
    disclosures = _disclosures(reader)
    handoff = _handoff(reader)
    packs = _jurisdictions(reader, minimum)
    by_currency = _jurisdiction_by_currency(reader, packs)
    if reader.problems:
        raise PolicyError(list(dict.fromkeys(reader.problems)))
    policy = Policy(
        version=version,
        bank=bank,
        stages=stages,
        terms=terms,
        fees=fees,
        minimum_installment=minimum,
        promise_max_days=promise_days,
        late_fee_waiver=waiver,
        offer_expiry_minutes=expiry,
        minimum_payment_share=share,
        jurisdictions={code: pack for code, (pack, _, _) in packs.items()},
        jurisdiction_by_currency=by_currency,
        disclosures=disclosures,
        handoff=handoff,
    )
    for code, (pack, pack_terms, pack_fees) in packs.items():
        policy._views[code] = replace(policy, terms=pack_terms, fees=pack_fees, jurisdiction=pack, _views=policy._views)
    return policy


def load_policy(path: Path) -> Policy:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except OSError as error:
        raise PolicyError([f"{path}: cannot be read ({error.strerror})"]) from None
    except tomllib.TOMLDecodeError as error:
        raise PolicyError([f"{path}: not valid TOML ({error})"]) from None
    return parse_policy(raw)
