"""Generated updates of every kind, in every conversation state, through the real bot over HTTP.

Each example puts a fresh cardholder (with an account of their own) into one state by a scripted
prefix, then sends a generated sequence: text with control characters, bidi marks and zero-width
characters, 4,096 characters of emoji or Chinese, unknown commands, other people's contacts,
photos, stickers, documents, voice, edits, button presses with forged data, messages in groups
and in the agents' group, the bot blocked and unblocked. Whatever arrives:

* no ERROR is logged and no update ends in the generic apology;
* every update in the private chat is answered: the bot calls Telegram for that chat (a reply, an
  edit, an answered button; a call refused because the person blocked the bot counts), or relays
  it to the agents while a case is open. Deliberately silent: groups other than the agents' (the
  bot talks only in private chats), the agents' group to someone who is not an agent, and
  `my_chat_member` (the bot does not ask for it, so Telegram does not deliver it);
* when the sequence is garbage for the state it lands in, nothing in the database changed but the
  audit (`audit_events`), the background jobs' leases (`job_leases`), the chat's `last_seen_at`, the offers a shown menu records for this
  chat's own account, and, for a chat the bot has never seen, the chat itself being registered
  and asked for the phone (an unverified chat with no state is waiting for the phone as much as
  one asked for it, so None and `Verification:sharing_phone` are the same step). An input is meaningful, not garbage, when the bot is meant to act on
  it: a known command, the person's own readable phone, a date, amount or monthly budget the
  step can read, words asking for a person, a photo or document from a verified chat (a payment
  proof), anything said while a case is open (relayed to the agents), a button the bot did show.
  Examples holding a meaningful input are checked for the first two properties only.

The bot and the fake run once for the module; each example costs a few HTTP round trips.
FUZZ_EXAMPLES sets how many examples each of the two properties runs (default 50, about 20 s in
all; 400 took 140 s); FUZZ_DATABASE=postgresql runs them on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bot.clock import ManualClock
from bot.db import create_engine, create_session_factory
from bot.db.models import AuditEvent, Base, Case, Offer
from bot.db.unit_of_work import unit_of_work
from bot.domain.amounts import InvalidAmount, monthly_budget, parse_amount
from bot.domain.dates import parse_birth_date, parse_date
from bot.domain.errors import InvalidDate, InvalidPhone
from bot.domain.phones import normalize_phone
from bot.i18n import create_i18n, locale_for_language_code
from bot.services.audit import AuditTrail
from bot.settings import SUPPORTED_LOCALES, load_settings
from bot.telegram_fake import FakeTelegram, UserMessage
from tests.conftest import BOT_TOKEN, POSTGRES_URL, BotHarness, make_account, prepare_database

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
FUZZ_DATABASE = os.environ.get("FUZZ_DATABASE", "sqlite")
"""`postgresql` runs the bot on a fresh database of the local PostgreSQL server instead."""
DESK = -1009000000001
AGENT = 601
GROUP = -1009000000002
STRANGER = 602
BIRTH_DATE = "1985-03-07"
WAIT = 30.0

STATES = (
    "new",
    "sharing_phone",
    "typing_birth_date",
    "locked",
    "verified",
    "plans",
    "budget",
    "promise_date",
    "promise_amount",
    "handoff_waiting",
    "handoff_claimed",
)
VERIFIED = frozenset({"verified", "plans", "budget", "promise_date", "promise_amount", "handoff_waiting", "handoff_claimed"})
CASE_OPEN = frozenset({"locked", "handoff_waiting", "handoff_claimed"})
KNOWN_COMMANDS = (
    "start", "balance", "plans", "myplan", "help", "language", "cancel", "stop", "agent", "faq", "queue", "note", "offer",
    "resolve",
)

# -- what a person can send -------------------------------------------------------------------------

ODD = (
    "\u202e\u202d\u202a\u202b\u202c\u200e\u200f\u2066\u2067\u2068\u2069\u061c"  # bidi
    "\u200b\u200c\u200d\u2060\ufeff\u00ad"  # zero width
    "\x00\x01\x07\x08\x0b\x0c\x1b\x7f\u0085\u2028\u2029\ufffd\ufffc"  # control and odd
    "\u0301\u0489\u20e3\ufe0f"  # combining
)
ODD_CHARS = st.sampled_from(list(ODD))
EMOJI = st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)
CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
WORDS = st.sampled_from(
    ["pay", "1500", "1,500.50", "a month", "в месяц", "每月", "tomorrow", "31.02.2024", "0", "-1", "1e9", "NaN", "<b>", "&amp;",
     "</i>", "{name}", "%s", "\\", "'", "\"", "@repay_bot", "#1", "😀", "我", "я", "💳 Balance", "🧾"]
)


def _visible(text: str) -> bool:
    return bool(text.strip())


texts = st.one_of(
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=60),
    st.text(st.one_of(ODD_CHARS, st.characters(codec="utf-8")), min_size=1, max_size=40),
    st.lists(st.one_of(WORDS, st.text(ODD_CHARS, min_size=1, max_size=3), st.text(CJK, min_size=1, max_size=4)), min_size=1, max_size=8).map(" ".join),
    st.builds(lambda char, count: char * count, st.one_of(EMOJI, CJK, ODD_CHARS, st.just("a")), st.sampled_from([1000, 1001, 4096])),
    st.builds(lambda chars: (chars * 4096)[:4096], st.text(EMOJI, min_size=2, max_size=5)),
).filter(_visible)

command_names = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789_"), min_size=1, max_size=20)
garbage_commands = st.one_of(
    command_names.filter(lambda name: name not in KNOWN_COMMANDS).map(lambda name: f"/{name}"),
    st.sampled_from(KNOWN_COMMANDS).map(lambda name: f"/{name}@other_bot"),
    st.sampled_from(KNOWN_COMMANDS).map(lambda name: f"/{name.upper()}"),
    st.builds(lambda name, tail: f"/{name} {tail}", command_names.filter(lambda name: name not in KNOWN_COMMANDS), texts),
    st.just("/"),
)
phones = st.one_of(
    st.text(st.sampled_from("+0123456789 -()"), min_size=1, max_size=20),
    st.text(min_size=1, max_size=20),
    st.just("+8613800138000"),
)
callback_data = st.one_of(
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=20).filter(lambda data: 1 <= len(data.encode()) <= 64),
    st.builds(
        lambda prefix, parts: ":".join([prefix, *parts])[:64],
        st.sampled_from(["offer", "plans", "ptp", "ptpa", "lang", "rate", "case", "prop", "faq", "faqok", "person"]),
        st.lists(
            st.one_of(
                st.integers(-(10**20), 10**20).map(str),
                st.integers(0, 40).map(str),
                st.sampled_from(["view", "accept", "replace", "menu", "budget", "promise", "waiver", "claim", "resolve", "approve",
                                 "xx", "", "minimum", "overdue", "all", "1", "0", "true", "maybe", "en", "de", "zh_CN"]),
                st.text(max_size=6),
            ),
            max_size=3,
        ),
    ).filter(lambda data: 1 <= len(data.encode()) <= 64),
)

hostile_numbers = st.one_of(
    st.integers(0, 50),
    st.sampled_from([-1, 2**31, 2**63 - 1, 2**63, 2**64, 10**20, -(10**20)]),
    st.integers(-(2**70), 2**70),
).map(str)
shaped_callback_data = st.one_of(  # the bot's own button shapes, with values it never put there
    st.builds("offer:{}:{}".format, st.sampled_from(["view", "accept", "replace", "xx"]), hostile_numbers),
    st.builds("ptp:{}".format, hostile_numbers),
    st.builds("rate:{}:{}".format, hostile_numbers, hostile_numbers),
    st.builds("case:{}:{}".format, st.sampled_from(["claim", "resolve"]), hostile_numbers),
    st.builds("prop:{}:{}".format, st.sampled_from(["approve", "change", "decline"]), hostile_numbers),
    st.builds("faqok:{}:{}".format, st.text(st.sampled_from("abc_-:0"), max_size=8), st.sampled_from(["1", "0", "true", "no", "2"])),
)

events = st.one_of(
    st.tuples(st.just("text"), texts),
    st.tuples(st.just("text"), garbage_commands),
    st.tuples(st.just("contact"), phones, st.sampled_from(["other", "nobody", "own"])),
    st.tuples(st.just("photo"), st.one_of(st.none(), texts.map(lambda text: text[:1024]))),
    st.tuples(st.just("sticker"), st.one_of(EMOJI, st.just("👍"))),
    st.tuples(st.just("document"), st.sampled_from(["statement.pdf", "", "‮fdp.exe", "a" * 200, "收据.jpg"]), st.one_of(st.none(), texts.map(lambda text: text[:1024]))),
    st.tuples(st.just("voice"), st.integers(0, 3600)),
    st.tuples(st.just("edit"), texts),
    st.tuples(st.just("press"), callback_data),
    st.tuples(st.just("press"), shaped_callback_data),
    st.tuples(st.just("group"), texts),
    st.tuples(st.just("desk"), texts),
    st.tuples(st.just("block"), st.booleans()),
)
meaningful_events = st.one_of(
    st.tuples(st.just("text"), st.sampled_from(KNOWN_COMMANDS).map(lambda name: f"/{name}")),
    st.tuples(st.just("contact"), st.just("own-account"), st.just("own")),
    st.tuples(st.just("tap"), st.integers(0, 20)),
)
mixed_events = st.one_of(events, meaningful_events)
languages = st.sampled_from(["en", "ru", "zh-hans", None, "de"])


# -- the bot, running for the whole module --------------------------------------------------------


@dataclass
class Fuzzer:
    """The fake and the bot in one event loop of their own, kept across examples."""

    runner: asyncio.Runner
    fake: FakeTelegram
    harness: BotHarness
    errors: list[logging.LogRecord] = field(default_factory=list)
    apologies: tuple[str, ...] = ()
    updates: int = 0
    examples: int = 0
    strong: int = 0
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def run(self, work: Awaitable[Any]) -> Any:
        return self.runner.run(work)  # type: ignore[arg-type]


class Errors(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzer]:
    runner = asyncio.Runner()
    fake = FakeTelegram()
    runner.run(fake.start())
    if FUZZ_DATABASE == "postgresql":
        database_url = runner.run(postgres_database("create"))
    else:
        database_url = f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('fuzz')) / 'bot.sqlite3'}"
    runner.run(prepare_database(database_url))
    settings_ = load_settings(
        _env_file=None,
        bot_token=BOT_TOKEN,
        telegram_api_url=fake.base_url,
        database_url=database_url,
        agent_chat_id=DESK,
        agent_ids=str(AGENT),
        flood_burst=10_000,  # the throttle has tests of its own; here every update must reach the bot
    )
    fake.add_forum_group(DESK)
    fake.add_forum_group(GROUP, title="Somewhere else")
    fake.add_user(AGENT, first_name="Agent")
    fake.add_user(STRANGER, first_name="Stranger")
    harness = BotHarness(fake, settings_, ManualClock())
    runner.run(harness.start())
    i18n = create_i18n("en")
    apologies = []
    for locale in SUPPORTED_LOCALES:
        with i18n.context(), i18n.use_locale(locale):
            apologies.append(i18n.gettext("Sorry, something went wrong on our side. Please try again in a moment."))
    found = Fuzzer(runner, fake, harness, apologies=tuple(apologies))
    handler = Errors(found.errors)
    logging.getLogger().addHandler(handler)
    try:
        yield found
    finally:
        logging.getLogger().removeHandler(handler)
        runner.run(harness.stop())
        runner.run(fake.stop())
        if FUZZ_DATABASE == "postgresql":
            runner.run(postgres_database("drop"))
        runner.close()
        print(f"\nfuzz: {found.examples} examples, {found.updates} generated updates, {found.strong} checked for no change")


FUZZ_POSTGRES_NAME = f"fuzz_{os.getpid()}"


async def postgres_database(action: str) -> str:
    """Create (or drop) this run's database on the local PostgreSQL server; its URL."""
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        if action == "create":
            await connection.execute(f'CREATE DATABASE "{FUZZ_POSTGRES_NAME}"')
        else:
            await connection.execute(f'DROP DATABASE IF EXISTS "{FUZZ_POSTGRES_NAME}" WITH (FORCE)')
    finally:
        await connection.close()
    return POSTGRES_URL.rsplit("/", 1)[0] + f"/{FUZZ_POSTGRES_NAME}"


# -- one example ----------------------------------------------------------------------------------


@dataclass
class Chat:
    user_id: int
    phone: str
    locale: str
    state: str
    account_pk: int


async def until_handled(fuzzer: Fuzzer, update_id: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    fake, harness = fuzzer.fake, fuzzer.harness
    while not (harness.handled(update_id) or fake.was_dropped(update_id)):
        if loop.time() > deadline:
            raise AssertionError(f"update {update_id} was not handled within {WAIT}s")
        try:
            await asyncio.wait_for(fake.change_event().wait(), 0.01)
        except TimeoutError:
            pass


async def act(fuzzer: Fuzzer, action: Callable[[], Any]) -> int:
    action()
    update_id = fuzzer.fake.last_update_id
    await until_handled(fuzzer, update_id)
    return update_id


def buttons(fake: FakeTelegram, chat_id: int) -> list[tuple[int, str]]:
    """(message id, callback data) of every button in the chat, newest message first."""
    found = []
    for message in reversed(fake.bot_messages(chat_id)):
        if message.deleted:
            continue
        for row in (fake.stored_message(chat_id, message.message_id).reply_markup or {}).get("inline_keyboard", []):
            found += [(message.message_id, button["callback_data"]) for button in row if "callback_data" in button]
    return found


async def press(fuzzer: Fuzzer, chat_id: int, user_id: int, prefix: str) -> None:
    message_id, data = next(found for found in buttons(fuzzer.fake, chat_id) if found[1].startswith(prefix))
    await act(fuzzer, lambda: fuzzer.fake.member_presses(chat_id, user_id, message_id, data))


async def chat_in(fuzzer: Fuzzer, state: str, language: str | None) -> Chat:
    """A new cardholder with an account of their own, brought into `state`."""
    number = next(fuzzer.numbers)
    phone = f"+86139{number:08d}"
    account = make_account(account_id=f"FUZZ-{number}", phone=phone, locale="en", card_last4=f"{number % 10_000:04d}")
    await fuzzer.harness.add_accounts(account)
    fake = fuzzer.fake
    user_id = 2_000_000 + number
    fake.add_user(user_id, first_name="Fuzz", language_code=language)
    chat = Chat(user_id, phone, locale_for_language_code(language, "en"), state, account.id)
    steps: list[Callable[[], Any]] = []
    if state != "new":
        steps.append(lambda: fake.user_sends_text(user_id, "/start"))
    if state not in ("new", "sharing_phone"):
        steps.append(lambda: fake.user_shares_contact(user_id, phone))
    if state == "locked":
        steps += [lambda day=day: fake.user_sends_text(user_id, f"1990-01-{day:02d}") for day in (1, 2, 3)]
    elif state in VERIFIED:
        steps.append(lambda: fake.user_sends_text(user_id, BIRTH_DATE))
    if state in ("plans", "budget", "promise_date", "promise_amount"):
        steps.append(lambda: fake.user_sends_text(user_id, "/plans"))
    if state in ("handoff_waiting", "handoff_claimed"):
        steps.append(lambda: fake.user_sends_text(user_id, "/agent"))
    for step in steps:
        await act(fuzzer, step)
    if state == "budget":
        await press(fuzzer, user_id, user_id, "plans:budget")
    if state in ("promise_date", "promise_amount"):
        await press(fuzzer, user_id, user_id, "plans:promise")
    if state == "promise_amount":
        await press(fuzzer, user_id, user_id, "ptp:")
    if state == "handoff_claimed":
        case = await own_case(fuzzer, user_id)
        assert case is not None
        claim = next(found for found in buttons(fake, DESK) if found[1] == f"case:claim:{case.id}")
        await act(fuzzer, lambda: fake.member_presses(DESK, AGENT, claim[0], claim[1]))
    return chat


async def own_case(fuzzer: Fuzzer, chat_id: int) -> Case | None:
    async with fuzzer.harness.session_factory() as session:
        return await session.scalar(select(Case).where(Case.chat_id == chat_id).order_by(Case.id.desc()).limit(1))


async def own_offers(fuzzer: Fuzzer, account_pk: int) -> set[int]:
    async with fuzzer.harness.session_factory() as session:
        return set((await session.scalars(select(Offer.id).where(Offer.account_pk == account_pk))).all())


CALLBACK = re.compile(r"^(?P<prefix>[a-z]+)(?::(?P<rest>.*))?$", re.S)


async def meaningful(fuzzer: Fuzzer, chat: Chat, state: str, event: tuple[Any, ...]) -> bool:
    """Whether the bot is meant to act on this event here (see the module's docstring)."""
    kind = event[0]
    policy = fuzzer.harness.app.policy if fuzzer.harness.app else None
    assert policy is not None
    if kind in ("tap", "block", "group", "desk"):
        return kind == "tap"
    if kind == "edit":
        return False
    if state in CASE_OPEN and kind in ("text", "contact", "photo", "sticker", "document", "voice"):
        text = event[1] if kind == "text" else ""
        relayed = state == "handoff_claimed" or not text.startswith("/")  # the agent who owns a case reads all
        return relayed or text.split()[0] in {f"/{name}" for name in KNOWN_COMMANDS}
    if kind == "text":
        text: str = event[1]
        if text.split()[0] in {f"/{name}" for name in KNOWN_COMMANDS}:
            return True
        if text.startswith("/"):
            return False
        if policy.handoff.reason_in(text, chat.locale) is not None:
            return True
        if state == "typing_birth_date":
            return _reads(lambda: parse_birth_date(text, chat.locale, date.today()))
        if state in ("budget", "promise_amount"):
            return _reads(lambda: parse_amount(text, chat.locale))
        if state == "promise_date":
            return _reads(lambda: parse_date(text, chat.locale))
        if state in VERIFIED:
            return monthly_budget(text, chat.locale) is not None
        return False
    if kind == "contact":
        return event[2] == "own" and (event[1] == "own-account" or _reads(lambda: normalize_phone(event[1])))
    if kind in ("photo", "document"):
        return state in VERIFIED
    if kind == "press":
        found = CALLBACK.match(event[1])
        if found is None:
            return False
        prefix, rest = found["prefix"], found["rest"] or ""
        if prefix == "person" or (prefix == "lang" and rest in SUPPORTED_LOCALES):
            return True
        if state not in VERIFIED:
            return False
        if prefix == "plans":
            return True
        if prefix == "ptp" and state == "promise_date":
            return rest.isdigit() and 1 <= int(rest) <= 366
        if prefix == "ptpa" and state == "promise_amount":
            return rest in ("minimum", "overdue")
        if prefix == "offer":
            parts = rest.split(":")
            if len(parts) != 2 or parts[0] not in ("view", "accept", "replace") or not parts[1].isdigit():
                return False
            if state in ("budget", "promise_date", "promise_amount") and 1 <= int(parts[1]) < 2**31:
                return True  # an offer's button leaves the step: the offer, or the current options, are shown
            return int(parts[1]) in await own_offers(fuzzer, chat.account_pk)
        if prefix == "rate":
            case = await own_case(fuzzer, chat.user_id)
            return case is not None and rest.startswith(f"{case.id}:")
    return False


def _reads(parse: Callable[[], Any]) -> bool:
    try:
        parse()
    except (InvalidDate, InvalidAmount, InvalidPhone):
        return False
    return True


async def deliver(fuzzer: Fuzzer, chat: Chat, event: tuple[Any, ...]) -> tuple[int, bool]:
    """Send one event; (its update id, whether the private chat must be answered)."""
    fake, uid = fuzzer.fake, chat.user_id
    kind = event[0]
    own_messages = [
        message for message in fake.chat_history(uid)
        if isinstance(message, UserMessage) and message.kind == "text" and not message.deleted
    ]
    shown = [message for message in fake.bot_messages(uid) if not message.deleted]
    bot_buttons = buttons(fake, uid)
    if kind == "edit" and own_messages:
        target = own_messages[-1].message_id
        return await act(fuzzer, lambda: fake.user_edits_message(uid, target, event[1])), True
    if kind == "press" and shown:
        target = shown[-1].message_id
        return await act(fuzzer, lambda: fake.user_presses(uid, target, event[1], forged=True)), True
    if kind == "tap" and bot_buttons:
        message_id, data = bot_buttons[event[1] % len(bot_buttons)]
        return await act(fuzzer, lambda: fake.user_presses(uid, message_id, data)), True
    if kind in ("edit", "press", "tap"):
        kind, event = "text", ("text", "?")
    if kind == "text":
        return await act(fuzzer, lambda: fake.user_sends_text(uid, event[1])), True
    if kind == "contact":
        phone = chat.phone if event[1] == "own-account" else event[1]
        owner = {"own": uid, "other": uid + 1, "nobody": None}[event[2]]
        return await act(fuzzer, lambda: fake.user_shares_contact(uid, phone, owner)), True
    if kind == "photo":
        return await act(fuzzer, lambda: fake.user_sends_photo(uid, event[1])), True
    if kind == "sticker":
        return await act(fuzzer, lambda: fake.user_sends_sticker(uid, event[1])), True
    if kind == "document":
        return await act(fuzzer, lambda: fake.user_sends_document(uid, event[1] or "file", caption=event[2])), True
    if kind == "voice":
        return await act(fuzzer, lambda: fake.user_sends_voice(uid, event[1])), True
    if kind == "group":
        return await act(fuzzer, lambda: fake.member_sends_text(GROUP, uid, event[1])), False
    if kind == "desk":
        return await act(fuzzer, lambda: fake.member_sends_text(DESK, STRANGER, event[1])), False
    assert kind == "block"
    return await act(fuzzer, lambda: fake.user_blocks_bot(uid, event[1])), False


Snapshot = dict[str, list[tuple[Any, ...]]]


async def snapshot(fuzzer: Fuzzer) -> Snapshot:
    """Every row of every table but the audit and the background jobs' leases (renewed beside the
    updates), without the chats' `last_seen_at`."""
    tables: Snapshot = {}
    async with fuzzer.harness.session_factory() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in ("audit_events", "job_leases"):
                continue
            columns = [column for column in table.c if (table.name, column.name) != ("chats", "last_seen_at")]
            rows = (await session.execute(select(*columns))).all()
            tables[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return tables


def changes(before: Snapshot, after: Snapshot, chat: Chat) -> dict[str, Any]:
    """What changed beyond what the module's docstring allows."""
    found: dict[str, Any] = {}
    for name, rows in after.items():
        old, new = {_same_step(name, row, chat) for row in before[name]}, {_same_step(name, row, chat) for row in rows}
        gone, added = old - new, new - old
        if name == "offers":
            account_pk, chat_id = _column(name, "account_pk"), _column(name, "chat_id")
            added = {row for row in added if (row[account_pk], row[chat_id]) != (chat.account_pk, chat.user_id)}
        if chat.state == "new":
            added = {row for row in added if not _first_contact(name, row, chat)}
        if gone or added:
            found[name] = {"gone": sorted(gone, key=repr), "added": sorted(added, key=repr)}
    return found


UNVERIFIED = frozenset({"new", "sharing_phone", "locked"})


def _same_step(table: str, row: tuple[Any, ...], chat: Chat) -> tuple[Any, ...]:
    """An unverified chat with no state is waiting for the phone, as one that was asked for it."""
    if chat.state in UNVERIFIED and table == "fsm_records" and _belongs(table, row, chat) and row[1] is None:
        return (row[0], "Verification:sharing_phone", *row[2:])
    return row


def _column(table: str, name: str) -> int:
    columns = [column.name for column in Base.metadata.tables[table].c if (table, column.name) != ("chats", "last_seen_at")]
    return columns.index(name)


def _belongs(table: str, row: tuple[Any, ...], chat: Chat) -> bool:
    if table == "chats":
        return bool(row[_column(table, "chat_id")] == chat.user_id)
    if table == "fsm_records":
        return f":{chat.user_id}:{chat.user_id}:" in str(row[_column(table, "key")])
    return False


def _first_contact(table: str, row: tuple[Any, ...], chat: Chat) -> bool:
    """The row a chat's first update writes: the chat, or its state of waiting for the phone."""
    if not _belongs(table, row, chat):
        return False
    if table == "chats":
        return all(row[_column(table, name)] is None for name in ("locale", "account_pk", "verified_at", "opted_out_at"))
    return row[_column(table, "state")] in (None, "Verification:sharing_phone") and row[_column(table, "data")] == "{}"


async def example(fuzzer: Fuzzer, state: str, language: str | None, sequence: list[tuple[Any, ...]]) -> None:
    fake = fuzzer.fake
    errors_before = len(fuzzer.errors)
    chat = await chat_in(fuzzer, state, language)
    if state in CASE_OPEN:
        assert await own_case(fuzzer, chat.user_id) is not None
    garbage = True
    before = await snapshot(fuzzer)
    for event in sequence:
        garbage = garbage and not await meaningful(fuzzer, chat, state, event)
        start = len(fake.events)
        update_id, must_answer = await deliver(fuzzer, chat, event)
        fuzzer.updates += 1
        touched = {call.chat_id for call in fake.events[start:] if call.method != "getUpdates"}
        if must_answer:
            answered = chat.user_id in touched or (state in CASE_OPEN and DESK in touched)
            assert answered, f"update {update_id} ({event!r:.200}) in state {state} got no answer"
        elif event[0] == "group":
            assert GROUP not in touched, "the bot spoke in a group it does not serve"
    new_errors = [record.getMessage() for record in fuzzer.errors[errors_before:]]
    assert new_errors == [], new_errors
    said = [message.text for message in fake.bot_messages(chat.user_id)]
    assert not [text for text in said if any(apology in text for apology in fuzzer.apologies)]
    fuzzer.examples += 1
    if garbage:
        fuzzer.strong += 1
        unexpected = changes(before, await snapshot(fuzzer), chat)
        assert unexpected == {}, f"garbage changed the database in state {state}: {unexpected!r:.2000}"


FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_garbage_in_every_state_is_answered_and_changes_nothing_but_the_audit(fuzzer: Fuzzer) -> None:
    @FUZZ
    @given(st.sampled_from(STATES), languages, st.lists(events, min_size=1, max_size=5))
    def garbage(state: str, language: str | None, sequence: list[tuple[Any, ...]]) -> None:
        fuzzer.run(example(fuzzer, state, language, sequence))

    garbage()


def test_garbage_mixed_with_real_steps_never_fails_and_is_always_answered(fuzzer: Fuzzer) -> None:
    @FUZZ
    @given(st.sampled_from(STATES), languages, st.lists(mixed_events, min_size=1, max_size=8))
    def mixed(state: str, language: str | None, sequence: list[tuple[Any, ...]]) -> None:
        fuzzer.run(example(fuzzer, state, language, sequence))

    mixed()


# -- what the fuzzer found ----------------------------------------------------------------------


async def replies_to(fuzzer: Fuzzer, chat: Chat, event: tuple[Any, ...]) -> list[str]:
    before = {message.message_id for message in fuzzer.fake.bot_messages(chat.user_id)}
    await deliver(fuzzer, chat, event)
    return [message.text for message in fuzzer.fake.bot_messages(chat.user_id) if message.message_id not in before]


def test_a_person_who_blocks_the_bot_while_it_answers_is_no_error_and_gets_no_apology(fuzzer: Fuzzer) -> None:
    async def run() -> None:
        chat = await chat_in(fuzzer, "verified", "en")
        errors = len(fuzzer.errors)
        start = len(fuzzer.fake.events)
        await deliver(fuzzer, chat, ("block", True))
        await deliver(fuzzer, chat, ("text", "hello?"))
        sends = [call for call in fuzzer.fake.events[start:] if call.method == "sendMessage" and call.chat_id == chat.user_id]
        assert [call.ok for call in sends] == [False], "one answer tried, refused, and no apology after it"
        assert [record.getMessage() for record in fuzzer.errors[errors:]] == []

    fuzzer.run(run())


def test_a_forged_promise_amount_button_is_refused_and_the_step_stays(fuzzer: Fuzzer) -> None:
    async def run() -> None:
        chat = await chat_in(fuzzer, "promise_amount", "en")
        before = await snapshot(fuzzer)
        query = fuzzer.fake.user_presses(chat.user_id, fuzzer.fake.bot_messages(chat.user_id)[-1].message_id, "ptpa:", forged=True)
        await until_handled(fuzzer, fuzzer.fake.last_update_id)
        assert fuzzer.fake.callback_answer(query) == {"text": "This button is no longer active.", "show_alert": False, "url": None}
        assert changes(before, await snapshot(fuzzer), chat) == {}

    fuzzer.run(run())


def test_a_command_for_another_bot_is_an_unknown_command_not_a_request_for_a_person(fuzzer: Fuzzer) -> None:
    async def run() -> None:
        chat = await chat_in(fuzzer, "verified", "en")
        said = await replies_to(fuzzer, chat, ("text", "/agent@other_bot"))
        assert len(said) == 1 and "I don't know the command /agent@other_bot" in said[0]
        assert await own_case(fuzzer, chat.user_id) is None

    fuzzer.run(run())


def test_a_huge_number_in_a_button_is_an_inactive_button(fuzzer: Fuzzer) -> None:
    async def run() -> None:
        for state, data in (
            ("verified", "offer:view:9223372036854775808"),
            ("verified", "offer:accept:2147483648"),
            ("handoff_waiting", "rate:2147483648:5"),
            ("promise_date", "ptp:100000000000000000000"),
        ):
            chat = await chat_in(fuzzer, state, "en")
            errors = len(fuzzer.errors)
            before = await snapshot(fuzzer)
            query = fuzzer.fake.user_presses(chat.user_id, fuzzer.fake.bot_messages(chat.user_id)[-1].message_id, data, forged=True)
            await until_handled(fuzzer, fuzzer.fake.last_update_id)
            assert [record.getMessage() for record in fuzzer.errors[errors:]] == []
            assert (fuzzer.fake.callback_answer(query) or {}).get("text") == "This button is no longer active."
            assert changes(before, await snapshot(fuzzer), chat) == {}

    fuzzer.run(run())


async def test_a_nul_character_people_send_is_kept_as_a_replacement_character_on_postgresql(postgres_url: str) -> None:
    """PostgreSQL's text cannot hold U+0000; the audit (and a case's events) keep U+FFFD."""
    engine = create_engine(postgres_url)
    session_factory = create_session_factory(engine)
    try:
        async with unit_of_work(session_factory) as unit:
            AuditTrail(unit, ManualClock()).record("in", "text", 1, "pay\x00me")
        async with session_factory() as session:
            payload = await session.scalar(select(AuditEvent.payload))
    finally:
        await engine.dispose()
    assert payload == "pay\ufffdme"


def test_feedback_on_a_message_without_its_buttons_is_an_inactive_button(fuzzer: Fuzzer) -> None:
    """A second tap on «Yes, this helped» (the first took the buttons away), or forged feedback."""
    async def run() -> None:
        chat = await chat_in(fuzzer, "verified", "en")
        fake = fuzzer.fake
        await act(fuzzer, lambda: fake.user_sends_text(chat.user_id, "how is interest calculated?"))
        message_id, data = next(found for found in buttons(fake, chat.user_id) if found[1].startswith("faqok:"))
        errors = len(fuzzer.errors)
        answers = []
        for _tap in range(2):
            answers.append(fake.user_presses(chat.user_id, message_id, data, forged=True))
            await until_handled(fuzzer, fake.last_update_id)
        forged = fake.user_presses(chat.user_id, fake.bot_messages(chat.user_id)[0].message_id, data, forged=True)
        await until_handled(fuzzer, fake.last_update_id)
        texts = [(fake.callback_answer(query) or {}).get("text") for query in (*answers, forged)]
        assert texts == ["Thank you!", "This button is no longer active.", "This button is no longer active."]
        assert [record.getMessage() for record in fuzzer.errors[errors:]] == []

    fuzzer.run(run())


def test_an_amount_finer_than_the_currency_is_asked_again(fuzzer: Fuzzer) -> None:
    async def run() -> None:
        for state, text in (("budget", "0.001"), ("promise_amount", "1500.005"), ("verified", "I can pay 100.001 a month")):
            chat = await chat_in(fuzzer, state, "en")
            errors = len(fuzzer.errors)
            before = await snapshot(fuzzer)
            said = await replies_to(fuzzer, chat, ("text", text))
            assert [record.getMessage() for record in fuzzer.errors[errors:]] == []
            assert len(said) == 1 and not any(apology in said[0] for apology in fuzzer.apologies)
            assert changes(before, await snapshot(fuzzer), chat) == {}

    fuzzer.run(run())
