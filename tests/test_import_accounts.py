"""Importing the bank's CSV export into a real database (SQLite file; PostgreSQL when reachable)."""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sqlalchemy.dialects.postgresql import asyncpg as postgresql_driver
from sqlalchemy.dialects.sqlite import aiosqlite as sqlite_driver

from bot import cli
from bot.db.engine import create_engine, create_session_factory
from bot.db.models import Account
from bot.domain.errors import ImportFileError
from bot.services import accounts as accounts_module
from bot.services.accounts import (
    COLUMNS, OPTIONAL_COLUMNS, ImportReport, RowError, import_accounts, validate_account_row,
)
from bot.services.demo import DEMO_ACCOUNTS, load_demo_data
from bot.settings import load_settings
from tests.conftest import prepare_database

pytestmark = pytest.mark.database

NOW = datetime(2025, 6, 1, 9, 30, tzinfo=timezone.utc)
WITH_JURISDICTION = (*COLUMNS, "jurisdiction")
PACKS = ("CN", "RU", "US")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")

Factory = async_sessionmaker[AsyncSession]


def row(**overrides: str) -> dict[str, str]:
    values = {
        "account_id": "ACC-1",
        "full_name": "Li Wei",
        "phone": "+86 138 0013 8000",
        "birth_date": "1985-03-07",
        "card_last4": "4321",
        "currency": "CNY",
        "statement_balance": "15000",
        "overdue_amount": "12345.6",
        "minimum_due": "1500.00",
        "days_past_due": "45",
        "late_fee": "75",
        "daily_interest_rate": "0.0005",
        "locale": "zh_CN",
        "timezone": "Asia/Shanghai",
    }
    values.update(overrides)
    return values


def write_csv(path: Path, rows: list[dict[str, str]], *, columns: tuple[str, ...] = COLUMNS, bom: bool = False) -> Path:
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


async def _sqlite(tmp_path: Path) -> AsyncIterator[Factory]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'accounts.sqlite3'}"
    await prepare_database(url)
    engine = create_engine(url)
    yield create_session_factory(engine)
    await engine.dispose()


async def _postgres() -> AsyncIterator[Factory]:
    asyncpg = pytest.importorskip("asyncpg")
    admin_dsn = POSTGRES_URL.replace("postgresql+asyncpg", "postgresql")
    try:
        admin = await asyncpg.connect(admin_dsn, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        pytest.skip(f"PostgreSQL is not reachable at {admin_dsn}: {error}")
    name = f"t_import_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    await prepare_database(url)
    engine = create_engine(url)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()
        admin = await asyncpg.connect(admin_dsn, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Factory]:
    """A fresh SQLite file."""
    async for factory in _sqlite(tmp_path):
        yield factory


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    """The same test on a SQLite file and on a fresh PostgreSQL database."""
    source = _sqlite(tmp_path) if request.param == "sqlite" else _postgres()
    async for factory in source:
        yield factory


async def accounts(factory: Factory) -> dict[str, Account]:
    async with factory() as session:
        result = await session.scalars(select(Account).order_by(Account.account_id))
        return {account.account_id: account for account in result}


async def count(factory: Factory) -> int:
    async with factory() as session:
        return int(await session.scalar(select(func.count()).select_from(Account)) or 0)


# --------------------------------------------------------------------------- good files


async def test_good_file(any_db: Factory, tmp_path: Path) -> None:
    columns = ("timezone", "note", *reversed(COLUMNS[:-1]))  # any order, an extra column
    source = write_csv(
        tmp_path / "accounts.csv",
        [
            row(note="ignored"),
            row(
                account_id="ACC-2", full_name="  Ivan   Petrov ", phone="+7 (912) 345-67-89", currency="rub",
                statement_balance="154300.5", overdue_amount="42000", minimum_due="7715.00", days_past_due="20",
                late_fee="0", daily_interest_rate="0.00060", locale="RU", timezone="Europe/Moscow",
            ),
            row(
                account_id="ACC-3", phone="14155550132", currency="JPY", statement_balance="380000",
                overdue_amount="95000.00", minimum_due="19000", late_fee="1000", locale="zh-cn",
                timezone="asia/tokyo", daily_interest_rate="0",
            ),
        ],
        columns=columns,
    )

    report = await import_accounts(any_db, source, now=NOW)

    assert report.errors == []
    assert (report.inserted, report.updated, report.unchanged, report.rejected) == (3, 0, 0, 0)
    stored = await accounts(any_db)
    assert sorted(stored) == ["ACC-1", "ACC-2", "ACC-3"]
    first, second, third = stored["ACC-1"], stored["ACC-2"], stored["ACC-3"]
    assert first.phone == "+8613800138000"
    assert first.birth_date == date(1985, 3, 7)
    assert first.overdue_amount == Decimal("12345.60")
    assert first.statement_balance == Decimal("15000.00")
    assert first.daily_interest_rate == Decimal("0.0005")
    assert first.locale == "zh_CN" and first.timezone == "Asia/Shanghai"
    assert first.balance_version == 1
    assert first.updated_at == NOW
    assert second.full_name == "Ivan Petrov"
    assert second.phone == "+79123456789"
    assert second.currency == "RUB" and second.locale == "ru"
    assert second.statement_balance == Decimal("154300.50")
    assert second.late_fee == Decimal("0")
    assert third.currency == "JPY" and third.overdue_amount == Decimal("95000")
    assert third.locale == "zh_CN" and third.timezone == "Asia/Tokyo"
    assert third.daily_interest_rate == Decimal("0")
    for account in stored.values():
        assert isinstance(account.statement_balance, Decimal)


async def test_amounts_are_stored_quantized_to_the_minor_unit(db: Factory, tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "a.csv",
        [row(overdue_amount="12345.6"), row(account_id="ACC-JP", currency="JPY", statement_balance="1500.00",
                                            overdue_amount="700", minimum_due="70", late_fee="0")],
    )
    await import_accounts(db, source, now=NOW)
    async with db() as session:
        raw = dict((await session.execute(text("SELECT account_id, overdue_amount FROM accounts"))).all())
        raw_jp = await session.scalar(text("SELECT statement_balance FROM accounts WHERE account_id = 'ACC-JP'"))
    assert raw == {"ACC-1": "12345.60", "ACC-JP": "700"}
    assert raw_jp == "1500"


async def test_file_with_bom(db: Factory, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "bom.csv", [row(), row(account_id="ACC-2")], bom=True)
    assert source.read_bytes().startswith(b"\xef\xbb\xbf")

    report = await import_accounts(db, source, now=NOW)

    assert report.errors == []
    assert report.inserted == 2
    assert sorted(await accounts(db)) == ["ACC-1", "ACC-2"]


async def test_blank_lines_are_skipped_and_counted_in_line_numbers(db: Factory, tmp_path: Path) -> None:
    source = tmp_path / "blank.csv"
    good = ",".join(row().values())
    source.write_text(",".join(COLUMNS) + "\n\n" + good + "\n\n" + good.replace("ACC-1", "ACC-2").replace("4321", "43x1") + "\n")

    report = await import_accounts(db, source, now=NOW)

    assert report.inserted == 1
    assert report.errors == [RowError(5, "card_last4", "must be exactly 4 digits")]


# --------------------------------------------------------------------------- bad rows


@pytest.mark.parametrize(
    ("overrides", "column", "reason"),
    [
        ({"account_id": ""}, "account_id", "empty"),
        ({"account_id": "X" * 65}, "account_id", "longer than 64"),
        ({"full_name": "  "}, "full_name", "empty"),
        ({"phone": "not a phone"}, "phone", "not a phone number"),
        ({"phone": "+86 138"}, "phone", "too short"),
        ({"phone": "+7 000 000 00 00"}, "phone", "impossible"),
        ({"birth_date": "07.03.1985"}, "birth_date", "YYYY-MM-DD"),
        ({"birth_date": "1985-02-31"}, "birth_date", "no such date"),
        ({"birth_date": "2030-01-01"}, "birth_date", "future"),
        ({"birth_date": "1899-12-31"}, "birth_date", "before 1900"),
        ({"birth_date": "2015-01-01"}, "birth_date", "at least 14"),
        ({"card_last4": "123"}, "card_last4", "exactly 4 digits"),
        ({"card_last4": "12345"}, "card_last4", "exactly 4 digits"),
        ({"card_last4": "12a4"}, "card_last4", "exactly 4 digits"),
        ({"currency": "XYZ"}, "currency", "ISO 4217"),
        ({"currency": ""}, "currency", "empty"),
        ({"statement_balance": "-1"}, "statement_balance", "negative"),
        ({"statement_balance": "abc"}, "statement_balance", "not a number"),
        ({"statement_balance": "1,000.00"}, "statement_balance", "not a number"),
        ({"statement_balance": "1e3"}, "statement_balance", "not a number"),
        ({"statement_balance": "NaN"}, "statement_balance", "not a number"),
        ({"overdue_amount": "10.505"}, "overdue_amount", "more than 2 digits"),
        ({"currency": "JPY", "overdue_amount": "12345", "minimum_due": "100.5"}, "minimum_due", "no fractional unit"),
        ({"minimum_due": ""}, "minimum_due", "empty"),
        ({"late_fee": "-0.01"}, "late_fee", "negative"),
        ({"days_past_due": "-3"}, "days_past_due", "negative"),
        ({"days_past_due": "4.5"}, "days_past_due", "whole number"),
        ({"daily_interest_rate": "0.01"}, "daily_interest_rate", "below 0.01"),
        ({"daily_interest_rate": "-0.0001"}, "daily_interest_rate", "negative"),
        ({"daily_interest_rate": "5%"}, "daily_interest_rate", "not a number"),
        ({"locale": "de"}, "locale", "not one of en, zh_CN, ru"),
        ({"timezone": "Mars/Olympus"}, "timezone", "IANA"),
        ({"timezone": "+03:00"}, "timezone", "IANA"),
    ],
)
async def test_bad_row_is_reported_and_skipped(
    db: Factory, tmp_path: Path, overrides: dict[str, str], column: str, reason: str
) -> None:
    source = write_csv(
        tmp_path / "bad.csv",
        [row(account_id="GOOD-1"), row(**{"account_id": "BAD", **overrides}), row(account_id="GOOD-2")],
    )

    report = await import_accounts(db, source, now=NOW)

    assert [(error.line, error.column) for error in report.errors] == [(3, column)]
    assert reason in report.errors[0].reason
    assert report.inserted == 2 and report.rejected == 1
    assert sorted(await accounts(db)) == ["GOOD-1", "GOOD-2"]


async def test_every_problem_of_a_row_is_reported_with_its_line(any_db: Factory, tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "bad.csv",
        [
            row(account_id="GOOD-1", full_name="Li\nWei"),  # a quoted line break: lines 2-3
            row(account_id="BAD-1", phone="12", card_last4="", locale="fr"),  # line 4
            row(account_id="GOOD-2"),  # line 5
            row(account_id="GOOD-1"),  # line 6: duplicate
            row(account_id="BAD-2", currency="JPY", statement_balance="1.5", timezone="Nowhere"),  # line 7
        ],
    )

    report = await import_accounts(any_db, source, now=NOW)

    assert [(error.line, error.column) for error in report.errors] == [
        (4, "phone"),
        (4, "card_last4"),
        (4, "locale"),
        (6, "account_id"),
        (7, "statement_balance"),
        (7, "overdue_amount"),  # 12345.6 means nothing in yen either
        (7, "timezone"),
    ]
    assert report.errors[3].reason == "duplicate of line 2"
    assert (report.inserted, report.rejected) == (2, 3)
    stored = await accounts(any_db)
    assert sorted(stored) == ["GOOD-1", "GOOD-2"]
    assert stored["GOOD-1"].full_name == "Li Wei"


async def test_row_with_wrong_number_of_fields(db: Factory, tmp_path: Path) -> None:
    source = tmp_path / "fields.csv"
    good = ",".join(row().values())
    source.write_text(f"{','.join(COLUMNS)}\n{good}\nACC-2,Li Wei,+8613800138000\n{good.replace('ACC-1', 'ACC-3')},extra\n")

    report = await import_accounts(db, source, now=NOW)

    assert report.errors == [
        RowError(3, "row", "has 3 fields where the header has 14"),
        RowError(4, "row", "has 15 fields where the header has 14"),
    ]
    assert report.inserted == 1


async def test_duplicate_account_id_names_the_earlier_line(db: Factory, tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "dup.csv",
        [row(), row(account_id="ACC-2"), row(overdue_amount="1.00"), row(account_id=" ACC-2 ")],
    )

    report = await import_accounts(db, source, now=NOW)

    assert report.errors == [
        RowError(4, "account_id", "duplicate of line 2"),
        RowError(5, "account_id", "duplicate of line 3"),
    ]
    stored = await accounts(db)
    assert len(stored) == 2
    assert stored["ACC-1"].overdue_amount == Decimal("12345.60")  # the first occurrence wins


# --------------------------------------------------------------------------- unusable files


async def test_missing_columns_name_them(db: Factory, tmp_path: Path) -> None:
    columns = tuple(c for c in COLUMNS if c not in ("phone", "late_fee"))
    source = write_csv(tmp_path / "missing.csv", [row()], columns=columns)

    with pytest.raises(ImportFileError, match="phone, late_fee"):
        await import_accounts(db, source, now=NOW)
    assert await count(db) == 0


async def test_empty_file(db: Factory, tmp_path: Path) -> None:
    source = tmp_path / "empty.csv"
    source.write_bytes(b"")
    with pytest.raises(ImportFileError, match="empty"):
        await import_accounts(db, source, now=NOW)


async def test_missing_file(db: Factory, tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="cannot read"):
        await import_accounts(db, tmp_path / "nope.csv", now=NOW)


async def test_non_utf8_file_writes_nothing(db: Factory, tmp_path: Path) -> None:
    good = [row(account_id=f"ACC-{n}") for n in range(2500)]  # more than one batch before the bad bytes
    source = write_csv(tmp_path / "latin1.csv", good)
    with source.open("ab") as handle:
        handle.write(",".join(row(account_id="ACC-X", full_name="Jos\xe9").values()).encode("latin-1") + b"\n")

    with pytest.raises(ImportFileError, match="line 2502: the file is not UTF-8"):
        await import_accounts(db, source, now=NOW)
    assert await count(db) == 0


# --------------------------------------------------------------------------- re-import


async def test_reimport_updates_without_duplicates(any_db: Factory, tmp_path: Path) -> None:
    rows = [row(account_id="A"), row(account_id="B"), row(account_id="C"), row(account_id="D")]
    first = await import_accounts(any_db, write_csv(tmp_path / "1.csv", rows), now=NOW)
    assert (first.inserted, first.updated, first.unchanged) == (4, 0, 0)

    # the same figures written differently compare equal
    same = [{**r, "overdue_amount": "12345.60", "statement_balance": "15000.0", "phone": "008613800138000"} for r in rows]
    later = NOW + timedelta(days=1)
    again = await import_accounts(any_db, write_csv(tmp_path / "2.csv", same), now=later)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 4)
    stored = await accounts(any_db)
    assert {a.balance_version for a in stored.values()} == {1}
    assert {a.updated_at for a in stored.values()} == {NOW}

    changed = [
        row(account_id="A", full_name="Li Wei Jr", phone="+79123456789", locale="ru"),  # not a balance field
        row(account_id="B", overdue_amount="12000.00", days_past_due="46"),  # balance change
        row(account_id="C", daily_interest_rate="0.0006"),  # balance change
        row(account_id="D"),
        row(account_id="E"),
    ]
    third = await import_accounts(any_db, write_csv(tmp_path / "3.csv", changed), now=later)
    assert (third.inserted, third.updated, third.unchanged) == (1, 3, 1)

    stored = await accounts(any_db)
    assert await count(any_db) == 5
    assert {key: a.balance_version for key, a in stored.items()} == {"A": 1, "B": 2, "C": 2, "D": 1, "E": 1}
    assert stored["A"].full_name == "Li Wei Jr" and stored["A"].phone == "+79123456789"
    assert stored["B"].overdue_amount == Decimal("12000") and stored["B"].days_past_due == 46
    assert stored["C"].daily_interest_rate == Decimal("0.0006")
    assert stored["A"].updated_at == later and stored["D"].updated_at == NOW

    fourth = await import_accounts(any_db, write_csv(tmp_path / "4.csv", [row(account_id="B", late_fee="80")]), now=later)
    assert fourth.updated == 1
    assert (await accounts(any_db))["B"].balance_version == 3


async def test_many_rows_in_several_batches(any_db: Factory, tmp_path: Path) -> None:
    rows = [row(account_id=f"ACC-{n:05d}", card_last4=f"{n % 10000:04d}") for n in range(4500)]
    report = await import_accounts(any_db, write_csv(tmp_path / "many.csv", rows), now=NOW)
    assert (report.inserted, report.errors) == (4500, [])
    rows[4499]["overdue_amount"] = "1.00"
    report = await import_accounts(any_db, write_csv(tmp_path / "many2.csv", rows), now=NOW)
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 4499)
    assert await count(any_db) == 4500


# --------------------------------------------------------------------------- jurisdiction


async def jurisdictions_of(factory: Factory) -> dict[str, str | None]:
    return {key: account.jurisdiction for key, account in (await accounts(factory)).items()}


async def test_the_jurisdiction_column_is_normalized_and_blank_is_none(any_db: Factory, tmp_path: Path) -> None:
    columns = ("jurisdiction", *COLUMNS)  # anywhere in the header
    source = write_csv(
        tmp_path / "j.csv",
        [
            row(account_id="A", jurisdiction="CN"),
            row(account_id="B", jurisdiction=" us-ca "),
            row(account_id="C", jurisdiction="ru"),
            row(account_id="D", jurisdiction=""),
            row(account_id="E", jurisdiction="  "),
        ],
        columns=columns,
    )

    report = await import_accounts(any_db, source, now=NOW)

    assert (report.inserted, report.errors) == (5, [])
    assert await jurisdictions_of(any_db) == {"A": "CN", "B": "US-CA", "C": "RU", "D": None, "E": None}


async def test_a_file_without_the_jurisdiction_column_imports_and_keeps_stored_ones(any_db: Factory, tmp_path: Path) -> None:
    plain = await import_accounts(any_db, write_csv(tmp_path / "1.csv", [row(account_id="A"), row(account_id="B")]), now=NOW)
    assert (plain.inserted, plain.errors) == (2, [])
    assert await jurisdictions_of(any_db) == {"A": None, "B": None}

    given = [row(account_id="A", jurisdiction="CN"), row(account_id="B")]
    later = NOW + timedelta(days=1)
    first = await import_accounts(any_db, write_csv(tmp_path / "2.csv", given, columns=WITH_JURISDICTION), now=later)
    assert (first.updated, first.unchanged) == (1, 1)

    # a file of the old form says nothing of jurisdictions: the stored ones stay, new accounts have none
    old_form = [row(account_id="A"), row(account_id="B", days_past_due="46"), row(account_id="C")]
    again = await import_accounts(any_db, write_csv(tmp_path / "3.csv", old_form), now=later)
    assert (again.inserted, again.updated, again.unchanged) == (1, 1, 1)
    assert await jurisdictions_of(any_db) == {"A": "CN", "B": None, "C": None}


async def test_reimport_updates_the_jurisdiction_and_the_balance_version(any_db: Factory, tmp_path: Path) -> None:
    """Offers made under one jurisdiction's rules are stale under another's."""
    def file(name: str, *codes: str) -> Path:
        rows = [row(account_id=key, jurisdiction=code) for key, code in zip("ABC", codes)]
        return write_csv(tmp_path / name, rows, columns=WITH_JURISDICTION)

    await import_accounts(any_db, file("1.csv", "CN", "RU", ""), now=NOW)
    same = await import_accounts(any_db, file("2.csv", "cn", " RU", " "), now=NOW)
    assert (same.updated, same.unchanged) == (0, 3)

    changed = await import_accounts(any_db, file("3.csv", "US", "", "RU"), now=NOW + timedelta(days=1))

    assert (changed.updated, changed.unchanged, changed.errors) == (3, 0, [])
    stored = await accounts(any_db)
    assert {key: (a.jurisdiction, a.balance_version) for key, a in stored.items()} == {
        "A": ("US", 2), "B": (None, 2), "C": ("RU", 2),
    }


@pytest.mark.parametrize("code", ["C", "CHN", "C1", "12", "US-", "US-CALI", "US_CA", "US CA", "cı", "ＣＮ", "US-C-A"])
async def test_a_malformed_jurisdiction_is_a_bad_row(db: Factory, tmp_path: Path, code: str) -> None:
    rows = [row(account_id="GOOD-1", jurisdiction="CN"), row(account_id="BAD", jurisdiction=code), row(account_id="GOOD-2")]
    report = await import_accounts(db, write_csv(tmp_path / "bad.csv", rows, columns=WITH_JURISDICTION), now=NOW)

    assert report.errors == [
        RowError(3, "jurisdiction", f"{code.strip()!r} is not a country code such as CN (ISO 3166-1), or a subdivision such as US-CA")
    ]
    assert (report.inserted, report.rejected) == (2, 1)
    assert await jurisdictions_of(db) == {"GOOD-1": "CN", "GOOD-2": None}


async def test_a_jurisdiction_the_policy_has_not_is_a_bad_row(any_db: Factory, tmp_path: Path) -> None:
    rows = [
        row(account_id="A", jurisdiction="us"),
        row(account_id="B", jurisdiction="xx"),  # line 3
        row(account_id="C", jurisdiction=""),
        row(account_id="D", jurisdiction="US-CA", phone="12"),  # line 5: a subdivision is a code of its own
        row(account_id="E", jurisdiction="ru"),
    ]
    source = write_csv(tmp_path / "packs.csv", rows, columns=WITH_JURISDICTION)

    report = await import_accounts(any_db, source, now=NOW, jurisdictions=("US", "RU", "CN"))

    assert [(e.line, e.column) for e in report.errors] == [(3, "jurisdiction"), (5, "phone"), (5, "jurisdiction")]
    assert report.errors[0].reason == "unknown jurisdiction 'XX' (the policy has CN, RU, US)"
    assert report.errors[2].reason == "unknown jurisdiction 'US-CA' (the policy has CN, RU, US)"
    assert (report.inserted, report.rejected) == (3, 2)
    assert await jurisdictions_of(any_db) == {"A": "US", "C": None, "E": "RU"}


async def test_a_policy_without_jurisdictions_takes_none(db: Factory, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "none.csv", [row(jurisdiction="CN"), row(account_id="B")], columns=WITH_JURISDICTION)
    report = await import_accounts(db, source, now=NOW, jurisdictions=())
    assert report.errors == [RowError(2, "jurisdiction", "unknown jurisdiction 'CN' (the policy has none)")]
    assert await jurisdictions_of(db) == {"B": None}


async def test_a_repeated_jurisdiction_column_is_refused(db: Factory, tmp_path: Path) -> None:
    source = tmp_path / "twice.csv"
    source.write_text(",".join((*WITH_JURISDICTION, "Jurisdiction")) + "\n" + ",".join((*row().values(), "CN", "RU")) + "\n")
    with pytest.raises(ImportFileError, match="repeats column\\(s\\): jurisdiction"):
        await import_accounts(db, source, now=NOW)
    assert await count(db) == 0


async def test_the_command_line_import_takes_the_policys_jurisdictions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The policy's packs name the codes an account may have."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite3'}"
    await prepare_database(url)
    rows = [row(account_id="A", jurisdiction="cn"), row(account_id="B", jurisdiction="DE")]
    source = write_csv(tmp_path / "cli.csv", rows, columns=WITH_JURISDICTION)

    status = await cli.import_accounts_command(
        load_settings(_env_file=None, database_url=url), argparse.Namespace(file=source)
    )

    output = capsys.readouterr().out
    engine = create_engine(url)
    try:
        stored = await jurisdictions_of(create_session_factory(engine))
    finally:
        await engine.dispose()
    assert status == 1
    assert "line 3, column jurisdiction: unknown jurisdiction 'DE' (the policy has CN, RU, US)" in output
    assert stored == {"A": "CN"}


def test_validate_account_row_reads_the_jurisdiction() -> None:
    today = NOW.date()
    assert validate_account_row(row(), today=today)[0].jurisdiction is None  # type: ignore[union-attr]
    assert validate_account_row(row(jurisdiction=" cn "), today=today)[0].jurisdiction == "CN"  # type: ignore[union-attr]
    assert validate_account_row(row(jurisdiction="XX", locale="de"), today=today, jurisdictions=PACKS) == (None, [
        ("locale", "'de' is not one of en, zh_CN, ru"),
        ("jurisdiction", "unknown jurisdiction 'XX' (the policy has CN, RU, US)"),
    ])


# --------------------------------------------------------------------------- quick and careful reading


VARIANTS: dict[str, list[str]] = {
    "account_id": ["ACC-1", "  ACC-2 ", "", "X" * 64, "X" * 65, "ACC\x1f3"],
    "full_name": ["Li Wei", "  Ivan   Petrov ", "", "N" * 200, "N" * 201, "Li\nWei", "Li\x1fWei"],
    "phone": [
        "+8613800138000", "+86 138 0013 8000", "8613800138000", "008613800138000", "+7 000 000 00 00",
        "+79123456789", "+78123456789", "+14155550132", "+3758106625764", "call me", "", " +8613800138000",
        "＋８６１３８００１３８０００", "+390212345678", "+86138001380001",
    ],
    "birth_date": ["1985-03-07", " 1985-03-07 ", "1985-02-31", "2030-01-01", "1899-12-31", "2015-01-01", "07.03.1985", "", "１９８５-03-07"],
    "card_last4": ["4321", " 4321", "0000", "123", "12345", "12a4", "١٢٣٤", "", "43\x1f1"],
    "currency": ["CNY", "cny", " JPY ", "JPY", "KWD", "CLF", "XYZ", ""],
    "days_past_due": ["45", "045", "+45", "-3", "4.5", "36500", "36501", "99999", "100000", " 45", "", "٤٥", "0"],
    "daily_interest_rate": ["0.0005", "0.00050", "0", "0.01", "-0.0001", "5%", "0.000000001", "0.00000001", ""],
    "locale": ["zh_CN", "zh-cn", "RU", "en", "de", ""],
    "timezone": ["Asia/Shanghai", "asia/tokyo", "Mars/Olympus", "+03:00", "", "UTC"],
    "jurisdiction": ["CN", "cn", " US-CA ", "us-ny", "RU", "", " ", "XX", "C1", "USA", "US-", "US_CA", "cı", "ＣＮ"],
}
AMOUNTS = [
    "15000", "15000.00", "12345.6", "12345.60", "0", "0.00", "-0", "-0.00", "00012.50", "12.500", "12.505", " 12.50",
    "1,000.00", "1e3", "NaN", "-1", "999999999999999.99", "1000000000000000", "0012", ".5", "5.", "１２.５０", "",
    "100.0", "0.000", "0.5", "10.1234", "7",
]
for _column in ("statement_balance", "overdue_amount", "minimum_due", "late_fee"):
    VARIANTS[_column] = AMOUNTS


def generated_rows(count: int, seed: int) -> list[dict[str, str]]:
    """Mostly the usual forms, each field now and then in another form, good or bad."""
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        values = row(
            account_id=f"ACC-{n}", statement_balance="15000.00", overdue_amount="12345.60", late_fee="75.00", jurisdiction="CN"
        )
        for column, variants in VARIANTS.items():
            if rng.random() < 0.15:
                values[column] = rng.choice(variants)
        rows.append(values)
    return rows


@pytest.mark.parametrize(
    ("columns", "jurisdictions"),
    [(COLUMNS, None), (WITH_JURISDICTION, None), (WITH_JURISDICTION, PACKS)],
    ids=["without-jurisdiction", "with-jurisdiction", "with-packs"],
)
@pytest.mark.parametrize("driver", [sqlite_driver, postgresql_driver], ids=["sqlite", "postgresql"])
def test_quick_reading_gives_what_validate_account_row_gives(
    driver: Any, columns: tuple[str, ...], jurisdictions: tuple[str, ...] | None
) -> None:
    binds = accounts_module._Binds.for_dialect(driver.dialect())
    today = NOW.date()
    reader = accounts_module._RowReader({name: n for n, name in enumerate(columns)}, today, binds, jurisdictions)
    quick_rows = 0
    for values in generated_rows(3000, seed=11):
        try:
            quick = reader.values([values[name] for name in columns])
            quick_rows += 1
        except accounts_module._Bad:
            quick = None
        record, problems = validate_account_row({name: values[name] for name in columns}, today=today, jurisdictions=jurisdictions)
        expected = None if record is None else binds.record(record)[:len(columns)]
        assert quick == expected, (values, problems)
        assert reader.problems([values[name] for name in columns]) == (expected, problems)
        if quick is not None:
            assert [type(value) for value in quick] == [type(value) for value in expected]  # type: ignore[union-attr]
    assert quick_rows > 900


def test_the_usual_forms_take_the_quick_way(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_expected(*args: Any) -> Any:
        raise AssertionError("the careful check was used")

    reader = accounts_module._RowReader(
        {name: n for n, name in enumerate(WITH_JURISDICTION)}, NOW.date(),
        accounts_module._Binds.for_dialect(sqlite_driver.dialect()), PACKS,
    )
    usual = row(phone="+8613800138000", overdue_amount="12345.60", statement_balance="15000.00", late_fee="75.00", jurisdiction="CN")
    reader.values([usual[name] for name in WITH_JURISDICTION])  # the dates, currencies... met once are remembered
    for name in (
        "_phone", "_amount", "_days_past_due", "_card_last4", "_birth_date", "_currency", "_rate", "_locale", "_timezone",
        "_jurisdiction",
    ):
        monkeypatch.setattr(accounts_module, name, not_expected)
    monkeypatch.setattr(accounts_module, "normalize_phone", not_expected)
    again = reader.values([{**usual, "account_id": "ACC-2", "phone": "+8613800138001"}[name] for name in WITH_JURISDICTION])
    assert again[0] == "ACC-2" and again[2] == "+8613800138001" and again[7] == "12345.60" and again[-1] == "CN"


async def test_forms_read_quickly_or_carefully_are_stored_alike(any_db: Factory, tmp_path: Path) -> None:
    usual = [row(account_id="A"), row(account_id="B", currency="JPY", statement_balance="380000", overdue_amount="95000",
                                       minimum_due="19000", late_fee="1000", locale="en", timezone="Asia/Tokyo")]
    other = [
        row(account_id=" A ", phone="+86 138 0013 8000", birth_date=" 1985-03-07", card_last4=" 4321 ", currency="cny",
            statement_balance="15000.0", overdue_amount="012345.6", minimum_due=" 1500 ", days_past_due="+045",
            late_fee="75.000", daily_interest_rate="0.00050", locale="ZH-cn", timezone="asia/shanghai"),
        row(account_id="B", currency=" jpy", statement_balance="380000.00", overdue_amount="0095000", minimum_due="19000.0",
            late_fee=" 1000", locale="EN", timezone="asia/tokyo"),
    ]
    first = await import_accounts(any_db, write_csv(tmp_path / "usual.csv", usual), now=NOW)
    stored = await accounts(any_db)
    again = await import_accounts(any_db, write_csv(tmp_path / "other.csv", other), now=NOW + timedelta(days=1))

    assert (first.inserted, first.errors) == (2, [])
    assert (again.unchanged, again.errors) == (2, [])
    assert {key: vars_of(a) for key, a in (await accounts(any_db)).items()} == {key: vars_of(a) for key, a in stored.items()}


def vars_of(account: Account) -> dict[str, Any]:
    return {name: getattr(account, name) for name in (*COLUMNS, "balance_version", "updated_at")}


async def test_amounts_stored_in_another_form_compare_by_value(any_db: Factory, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "a.csv", [row(account_id="A"), row(account_id="B")])
    await import_accounts(any_db, source, now=NOW)
    async with any_db() as session, session.begin():  # as a payment would leave them: 12345.6, 0
        await session.execute(text("UPDATE accounts SET overdue_amount = 12345.6 WHERE account_id = 'A'"))
        await session.execute(text("UPDATE accounts SET late_fee = 0 WHERE account_id = 'B'"))

    again = [row(account_id="A"), row(account_id="B", late_fee="0.00", full_name="Li Wei Jr")]
    report = await import_accounts(any_db, write_csv(tmp_path / "b.csv", again), now=NOW)

    assert (report.unchanged, report.updated) == (1, 1)
    stored = await accounts(any_db)
    assert stored["A"].balance_version == 1 and stored["A"].overdue_amount == Decimal("12345.60")
    assert stored["B"].full_name == "Li Wei Jr"
    assert stored["B"].balance_version == 1  # the fee 0 is the fee 0.00: no balance changed


async def test_errors_keep_their_lines_across_batches(any_db: Factory, tmp_path: Path) -> None:
    rows = [row(account_id=f"ACC-{n:05d}") for n in range(5000)]
    rows[10]["full_name"] = "Li\nWei"  # a quoted line break: every later row is one line further down
    rows[2100]["phone"] = "12"
    rows[4321]["overdue_amount"] = "12.345"
    rows[4999]["account_id"] = "ACC-00000"
    report = await import_accounts(any_db, write_csv(tmp_path / "many.csv", rows), now=NOW)

    assert [(error.line, error.column) for error in report.errors] == [
        (2103, "phone"), (4324, "overdue_amount"), (5002, "account_id"),
    ]
    assert report.errors[2].reason == "duplicate of line 2"
    assert (report.inserted, report.rejected) == (4997, 3)
    assert await count(any_db) == 4997


async def test_unreadable_csv_after_batches_were_written_writes_nothing(any_db: Factory, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "long.csv", [row(account_id=f"ACC-{n}") for n in range(2 * accounts_module.BATCH_SIZE + 10)])
    with source.open("a", encoding="utf-8") as handle:
        handle.write(",".join(row(account_id="ACC-X", full_name="x" * 200_000).values()) + "\n")

    with pytest.raises(ImportFileError, match="unreadable CSV"):
        await import_accounts(any_db, source, now=NOW)
    assert await count(any_db) == 0


async def test_the_import_leaves_its_connection_and_process_settings_as_they_were(db: Factory, tmp_path: Path) -> None:
    async with db() as session:
        before = [await session.scalar(text(f"PRAGMA {name}")) for name in ("cache_size", "temp_store")]
    interval = sys.getswitchinterval()
    await import_accounts(db, write_csv(tmp_path / "a.csv", [row()]), now=NOW)
    async with db() as session:
        assert [await session.scalar(text(f"PRAGMA {name}")) for name in ("cache_size", "temp_store")] == before
    assert sys.getswitchinterval() == interval


async def test_remembered_texts_are_bounded(db: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts_module, "_MEMO_LIMIT", 2)
    rows = [row(account_id=f"ACC-{n}", birth_date=(date(1950, 1, 1) + timedelta(days=n)).isoformat()) for n in range(50)]
    rows[40]["birth_date"] = "2020-01-01"
    report = await import_accounts(db, write_csv(tmp_path / "dates.csv", rows), now=NOW)
    assert report.inserted == 49 and [(e.line, e.column) for e in report.errors] == [(42, "birth_date")]
    assert (await accounts(db))["ACC-49"].birth_date == date(1950, 2, 19)


# --------------------------------------------------------------------------- report


def test_report_format() -> None:
    report = ImportReport(inserted=3, updated=1, unchanged=2, rejected=1)
    report.add_error(RowError(7, "phone", "not a phone number"))
    report.add_error(RowError(7, "card_last4", "must be exactly 4 digits"))
    assert report.format().splitlines() == [
        "3 inserted, 1 updated, 2 unchanged, 1 rejected",
        "line 7, column phone: not a phone number",
        "line 7, column card_last4: must be exactly 4 digits",
    ]


# --------------------------------------------------------------------------- demo data


def test_demo_accounts_are_consistent() -> None:
    assert len(DEMO_ACCOUNTS) == 5
    assert len({a["account_id"] for a in DEMO_ACCOUNTS}) == 5
    assert len({a["currency"] for a in DEMO_ACCOUNTS}) >= 4
    assert {a["locale"] for a in DEMO_ACCOUNTS} == {"en", "zh_CN", "ru"}
    assert any(a["daily_interest_rate"] == "0.0005" for a in DEMO_ACCOUNTS)
    by_currency = {"CNY": "CN", "RUB": "RU", "USD": "US"}
    assert {a["jurisdiction"] for a in DEMO_ACCOUNTS} >= set(PACKS)  # one cardholder for each pack
    for account in DEMO_ACCOUNTS:
        assert set(account) == {*COLUMNS, *OPTIONAL_COLUMNS}
        assert account["jurisdiction"] == by_currency.get(account["currency"], ""), account["account_id"]
        minimum, overdue, statement = (Decimal(account[k]) for k in ("minimum_due", "overdue_amount", "statement_balance"))
        assert minimum <= overdue <= statement, account["account_id"]


async def test_demo_data_is_idempotent(any_db: Factory, tmp_path: Path) -> None:
    assert await load_demo_data(any_db, now=NOW) == 5
    assert await load_demo_data(any_db, now=NOW + timedelta(hours=1)) == 0
    stored = await accounts(any_db)
    assert len(stored) == 5
    assert {a.balance_version for a in stored.values()} == {1}
    assert {a.phone for a in stored.values()} == {a["phone"] for a in DEMO_ACCOUNTS}
    cn = stored["DEMO-CN-0001"]
    assert (cn.currency, cn.locale, cn.days_past_due, cn.jurisdiction) == ("CNY", "zh_CN", 45, "CN")
    assert {a.account_id: a.jurisdiction for a in stored.values()} == {
        "DEMO-CN-0001": "CN", "DEMO-EU-0001": None, "DEMO-JP-0001": None, "DEMO-RU-0001": "RU", "DEMO-US-0001": "US",
    }
    assert cn.updated_at == NOW

    # the import and the demo loader share one upsert
    changed: dict[str, Any] = {**DEMO_ACCOUNTS[0], "overdue_amount": "8000.00"}
    report = await import_accounts(any_db, write_csv(tmp_path / "demo.csv", [changed]), now=NOW)
    assert report.updated == 1
    assert await load_demo_data(any_db, now=NOW) == 0
    assert (await accounts(any_db))["DEMO-CN-0001"].balance_version == 3
