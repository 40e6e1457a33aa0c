"""Privacy by construction: after every journey, with DEBUG logs, no table and no log line holds a
cardholder's phone, birth date or name in any form the bot accepts.

The accounts table is left out of the search: it is the bank's own record of these very data.
"""

from __future__ import annotations

import io
import json
import logging
import re
import unicodedata
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import select

from bot.clock import ManualClock
from bot.db.models import Base, Case, FsmRecord, VerificationLock
from bot.domain.dates import month_words, parse_birth_date
from bot.domain.errors import InvalidDate, InvalidPhone
from bot.domain.masking import mask_text
from bot.domain.phones import FORMATTING, normalize_phone
from bot.logs import masked_handler
from bot.services.accounts import COLUMNS, import_accounts
from bot.settings import load_settings
from bot.telegram_fake import ChatClient, FakeTelegram
from tests.conftest import BOT_TOKEN, BotHarness, make_account

pytestmark = pytest.mark.database

DESK = -1001234567890
AGENT = 501
NOW = datetime(2026, 6, 1, 9, 30, tzinfo=timezone.utc)
BORN = date(1961, 2, 2)
FULL_WIDTH = {code: code + 0xFEE0 for code in range(0x21, 0x7F)} | {0x20: 0x3000}

HOLDER = {
    "account_id": "PRIV-1", "full_name": "Zhang Mingyu", "phone": "+8613912345678", "birth_date": "1961-02-02",
    "card_last4": "2468", "currency": "CNY", "statement_balance": "15000.00", "overdue_amount": "12345.60",
    "minimum_due": "1500.00", "days_past_due": "45", "late_fee": "75.00", "daily_interest_rate": "0.0005",
    "locale": "en", "timezone": "Asia/Shanghai",
}
STRANGER = "+79161234567"
"""A phone that is not on file: tried, failed, locked out, and still not kept."""


def birth_date_forms(born: date) -> list[str]:
    """Every layout of `born` that `parse_birth_date` accepts in some locale, with each month word it knows."""
    names, stems = month_words()
    words = {word for word in names if _reads_as_month(word, born)}
    words |= {word[:length] for word in set(words) for length in range(3, len(word))}
    words |= {stem + ending for stem in stems for ending in ("", "е", "у") if _reads_as_month(stem + ending, born)}
    words = {word for word in words if _reads_as_month(word, born)}
    y, m, d = str(born.year), born.month, born.day
    th = "th" if d in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")
    layouts = {
        f"{y}-{m:02d}-{d:02d}", f"{y}/{m}/{d}", f"{y}.{m:02d}.{d:02d}", f"{y} - {m} - {d}",
        f"{y}年{m}月{d}日", f"{y}年{m}月{d}号", f"{y} 年 {m} 月 {d}",
        f"{d:02d}.{m:02d}.{y}", f"{d}.{m}.{y}", f"{m}/{d}/{y}", f"{m:02d}/{d:02d}/{y}", f"{d}-{m}-{y}",
    }
    for word in words:
        for case in (word, word.title(), word.upper()):
            layouts |= {
                f"{d} {case} {y}", f"{d}{th} of {case} {y}", f"{d}-{case}-{y}", f"{d:02d}.{case}.{y}",
                f"{y} {case} {d}", f"{y}-{case}-{d:02d}", f"{y}, {case}, {d}",
                f"{case} {d}, {y}", f"{case} {d}{th} {y}", f"{d} {case} {y} г.", f"{d} {case} {y} года",
            }
    layouts |= {form.translate(FULL_WIDTH) for form in layouts}
    return sorted(form for form in layouts if _accepted(form) == born)


def _reads_as_month(word: str, born: date) -> bool:
    return _accepted(f"{born.day} {word} {born.year}") == born


def _accepted(text: str) -> date | None:
    for locale in ("en", "ru", "zh_CN"):
        try:
            return parse_birth_date(text, locale, NOW.date())
        except InvalidDate:
            continue
    return None


def phone_forms(e164: str) -> list[str]:
    """`e164` written the ways people write phones, each one `normalize_phone` reads as `e164`."""
    country, rest = e164[1:3], e164[3:]
    groups = [rest[:3], rest[3:7], rest[7:]]
    forms = {e164, e164[1:], "00" + e164[1:]}
    for separator in (" ", "-", ".", "/", "\u2010", " - "):
        forms.add(f"+{country}{separator}{separator.join(groups)}")
        forms.add(f"(+{country}) {separator.join(groups)}")
        forms.add(f"+{country} ({groups[0]}) {groups[1]}{separator}{groups[2]}")
    forms |= {form.translate(FULL_WIDTH) for form in forms}
    return sorted(form for form in forms if _normalized(form) == e164)


def _normalized(text: str) -> str | None:
    try:
        return normalize_phone(text)
    except InvalidPhone:
        return None


DATES = birth_date_forms(BORN)
PHONES = phone_forms(HOLDER["phone"])
STRANGER_PHONES = phone_forms(STRANGER)


def test_the_forms_are_the_ones_the_issue_names() -> None:
    for typed in ("1961 February 2", "2nd of February 1961", "2-feb-1961", "１９６１－０２－０２", "2 февраля 1961"):
        assert typed in DATES, typed
    assert "+86/139/1234/5678" in PHONES and "＋８６\u3000１３９\u3000１２３４\u3000５６７８" in PHONES
    assert len(DATES) > 200 and len(PHONES) > 20


def test_every_accepted_form_is_masked_in_free_text() -> None:
    shown = [
        masked
        for typed in DATES + PHONES + STRANGER_PHONES
        if re.search(r"1961|1234", masked := unicodedata.normalize("NFKC", mask_text(f"hi, it is {typed}, thanks")))
    ]
    assert not shown, shown[:10]


@pytest.fixture
async def bank(fake: FakeTelegram, database_url: str, tmp_path: Path) -> Iterator[BotHarness]:
    settings = load_settings(
        _env_file=None, bot_token=BOT_TOKEN, telegram_api_url=fake.base_url, database_url=database_url,
        agent_chat_id=DESK, agent_ids=str(AGENT), privacy_key_file=tmp_path / "privacy.key",
    )
    fake.add_forum_group(DESK)
    fake.add_user(AGENT, first_name="Agent")
    harness = BotHarness(fake, settings, ManualClock(NOW))
    await harness.start()
    yield harness
    await harness.stop()


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """Every record of every logger at DEBUG, through the bot's own handler."""
    output = io.StringIO()
    handler = masked_handler(output)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield output
    root.removeHandler(handler)
    root.setLevel(level)


def holder(bank: BotHarness) -> ChatClient:
    first, last = HOLDER["full_name"].split()
    client = bank.cardholder(language_code="en", phone=HOLDER["phone"])
    bank.fake.add_user(client.user_id, first_name=first, last_name=last, language_code="en")
    return client


async def verify(client: ChatClient, phone: str, typed: str) -> str:
    await client.send("/start")
    await client.share_contact(phone, first_name=HOLDER["full_name"])
    return (await client.send(typed))[-1].text


async def test_no_table_and_no_log_line_holds_what_the_cardholder_is(
    bank: BotHarness, debug_log: io.StringIO, tmp_path: Path
) -> None:
    source = tmp_path / "accounts.csv"
    source.write_text(",".join(COLUMNS) + "\n" + ",".join(HOLDER[column] for column in COLUMNS) + "\n", encoding="utf-8")
    report = await import_accounts(bank.session_factory, source, now=NOW)
    assert report.inserted == 1

    # Verification with every accepted form of the phone and a spread of birth-date forms, a mismatch first.
    typed_dates = ["1961 February 2", "2nd of February 1961", "2-feb-1961", "１９６１－０２－０２", *DATES[:: len(DATES) // 30]]
    for number, phone in enumerate(PHONES):
        client = holder(bank)
        typed = typed_dates[number % len(typed_dates)]
        if number == 0:
            await client.send("/start")
            await client.share_contact(phone, first_name=HOLDER["full_name"])
            unread = await client.send("2 2 1961")  # not a form the bot reads, nor one masking finds
            assert "couldn't read that" in unread[-1].text
            mismatch = await client.send("1962-03-04")
            assert "do not match" in mismatch[-1].text
            assert "you are verified" in (await client.send(typed))[-1].text
        else:
            if number == 1:  # the bot logs why it could not delete the message: Telegram's words
                bank.fake.fail_next("deleteMessage", 400, f"Bad Request: message {typed} from {phone} not found")
            assert "you are verified" in await verify(client, phone, typed), typed

    # A phone not on file, tried until it is locked out, and a verification left half-way.
    stranger = holder(bank)
    await stranger.send("/start")
    await stranger.share_contact(STRANGER_PHONES[0])
    for attempt in range(3):
        await stranger.send(f"0{attempt + 1}.02.1961")
    half_way = holder(bank)
    await half_way.send("/start")
    await half_way.share_contact(PHONES[1], first_name=HOLDER["full_name"])

    # Self-service: a plan chosen and accepted.
    client = holder(bank)
    await verify(client, PHONES[0], "2 February 1961")
    await client.press("Ways to pay")
    await client.press("12 months")
    accepted = await client.press("Accept")
    assert "Done: your arrangement is recorded." in accepted[-1].text

    # A handoff: the trigger, relays both ways and a note all carry the phone and the birth date.
    await client.send("I lost my job and can't pay, call me on +86 139 1234 5678, born 2nd of February 1961")
    async with bank.session_factory() as session:
        case = await session.scalar(select(Case).where(Case.reason == "hardship"))
    assert case is not None and case.card_message_id is not None
    agent = ChatClient(bank.fake, AGENT, chat_id=DESK, message_thread_id=case.topic_id, handled=bank.handled)
    await agent.press_on(case.card_message_id, "Claim", expect_reply=False)
    await client.send("my number is 8613912345678 and my date of birth 1961 February 2", expect_reply=False)
    await agent.send("We have +86/139/1234/5678 and 2-feb-1961 on file.", expect_reply=False)
    await agent.send("/note confirmed ＋８６ １３９ １２３４ ５６７８ born １９６１－０２－０２", expect_reply=False)
    assert any("2-feb-1961" in message.text for message in client.messages), "the relay did happen"

    # A failure while answering: the error text holds the phone and the birth date, and is logged.
    bank.fake.fail_next("sendMessage", 400, "Bad Request: no chat for +8613912345678 born 1961-02-02")
    apology = await holder(bank).send("/start")
    assert "something went wrong" in apology[-1].text

    log = debug_log.getvalue()
    stored = await every_table_but_accounts(bank)
    assert (leaks(log), leaks(stored)) == ([], []), "neither the log nor the database holds any of it"
    assert "Traceback" in log and "could not delete" in log, "the failures were logged, masked"
    assert "[birth date]" in stored and "+86 *** **** 5678" in stored, "the steps were recorded, masked"

    async with bank.session_factory() as session:
        locks = (await session.scalars(select(VerificationLock))).all()
        pending = (await session.scalars(select(FsmRecord).where(FsmRecord.data.contains("phone_hash")))).all()
    assert len(locks) == 2 and all(re.fullmatch(r"[0-9a-f]{64}", lock.phone_hash) for lock in locks)
    assert pending, "the verification left half-way keeps its claim, as a hash"


def leaks(text: str) -> list[str]:
    """Which of the cardholder's data `text` holds, in any form the bot accepts."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    compact = re.sub(f"[{FORMATTING}+]", "", folded)
    found = [form for form in DATES + PHONES + STRANGER_PHONES if unicodedata.normalize("NFKC", form).casefold() in folded]
    found += [value for value in ("1961", "19610202") if re.search(rf"(?<!\d){value}(?!\d)", folded)]
    found += [digits for digits in ("8613912345678", "13912345678", "79161234567", "9161234567") if digits in compact]
    found += [part for part in HOLDER["full_name"].casefold().split() if part in folded]
    return found


async def every_table_but_accounts(bank: BotHarness) -> str:
    """Every row of every table but the bank's accounts, as text."""
    rows: list[str] = []
    async with bank.session_factory() as session:
        for table in Base.metadata.sorted_tables:
            if table.name == "accounts":
                continue
            rows += [f"{table.name}: {tuple(row)}" for row in (await session.execute(select(table))).all()]
    return "\n".join(rows)


async def test_a_verification_an_older_version_left_half_way_forgets_the_phone(harness: BotHarness) -> None:
    await harness.add_accounts(make_account())
    cardholder = harness.cardholder()
    await cardholder.send("/start")
    await cardholder.share_contact("+8613800138000")
    assert harness.app is not None
    storage = harness.app.dispatcher.storage  # the SQL records, or Redis under TEST_BACKEND=postgres
    key = StorageKey(bot_id=harness.app.bot.id, chat_id=cardholder.chat_id, user_id=cardholder.user_id)
    await storage.set_data(key, {"phone": "+8613800138000"})

    again = await cardholder.send("1985-03-07")

    assert "Share my phone number" in again[-1].text
    kept = await storage.get_data(key)
    assert "13800138000" not in json.dumps(kept)
    await cardholder.share_contact("+8613800138000")
    assert "you are verified" in (await cardholder.send("1985-03-07"))[-1].text
