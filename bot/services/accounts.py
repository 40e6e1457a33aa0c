"""Importing the bank's export of delinquent card accounts (CSV) into the accounts table.

Rows are validated in Python, one at a time while the file streams, and the good ones are
written in batches with the dialect's ``INSERT ... ON CONFLICT (account_id) DO UPDATE``. The whole
file is one transaction: a file that turns out to be unreadable half-way leaves nothing behind,
while rows that are merely bad are reported and skipped. ``balance_version`` moves by one only
when a figure the repayment offers depend on has changed, so offers computed against an older
version can be recognised as stale.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from babel.numbers import get_currency_precision, list_currencies
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Account
from bot.domain.dates import check_birth_date
from bot.domain.errors import DomainError, ImportFileError
from bot.domain.phones import normalize_phone
from bot.settings import SUPPORTED_LOCALES

COLUMNS: tuple[str, ...] = (
    "account_id",
    "full_name",
    "phone",
    "birth_date",
    "card_last4",
    "currency",
    "statement_balance",
    "overdue_amount",
    "minimum_due",
    "days_past_due",
    "late_fee",
    "daily_interest_rate",
    "locale",
    "timezone",
)
"""The columns the file must have (any order; other columns are ignored)."""

BALANCE_FIELDS: tuple[str, ...] = (
    "statement_balance",
    "overdue_amount",
    "minimum_due",
    "days_past_due",
    "late_fee",
    "daily_interest_rate",
)
"""A change in any of these bumps ``balance_version``."""

BATCH_SIZE = 2000
MAX_REPORTED_ERRORS = 10_000
"""Errors beyond this many are counted, not kept, so a wholly wrong file cannot exhaust memory."""

_ACCOUNT_ID_MAX = Account.__table__.c.account_id.type.length or 64
_FULL_NAME_MAX = Account.__table__.c.full_name.type.length or 200
_MAX_WHOLE_DIGITS = 15  # NUMERIC(24, 8) on PostgreSQL leaves 16
_RATE_LIMIT = Decimal("0.01")
_RATE_MAX_PLACES = 8
_MAX_DAYS_PAST_DUE = 36_500

_DECIMAL = re.compile(r"^([+-]?)([0-9]+)(?:\.([0-9]+))?$")
_INTEGER = re.compile(r"^\+?[0-9]+$")
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_LAST4 = re.compile(r"^[0-9]{4}$")


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class RowError:
    line: int
    """Physical line in the file where the row starts; the header is line 1."""
    column: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.reason}"


@dataclass
class ImportReport:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    rejected: int = 0
    """Rows not written because of at least one error."""
    errors_not_listed: int = 0
    """Errors past `MAX_REPORTED_ERRORS`, counted but not kept."""

    def add_error(self, error: RowError) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error)
        else:
            self.errors_not_listed += 1

    def format(self) -> str:
        """A summary line, then one line per problem: ``line 7, column phone: not a phone number``."""
        lines = [
            f"{self.inserted} inserted, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.rejected} rejected"
        ]
        lines.extend(str(error) for error in self.errors)
        if self.errors_not_listed:
            lines.append(f"... and {self.errors_not_listed} more errors")
        return "\n".join(lines)


@dataclass(frozen=True)
class WriteCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """One validated account, in the form it is stored."""

    account_id: str
    full_name: str
    phone: str
    birth_date: date
    card_last4: str
    currency: str
    statement_balance: Decimal
    overdue_amount: Decimal
    minimum_due: Decimal
    days_past_due: int
    late_fee: Decimal
    daily_interest_rate: Decimal
    locale: str
    timezone: str


class _Bad(Exception):
    """One column's value is not acceptable; the message is the reason."""


def validate_account_row(values: Mapping[str, str], *, today: date) -> tuple[AccountRecord | None, list[tuple[str, str]]]:
    """Check one row given as column → text. Returns the record, or None and (column, reason) pairs."""
    problems: list[tuple[str, str]] = []
    parsed: dict[str, Any] = {}
    for column, check in _TEXT_CHECKS:
        try:
            parsed[column] = check(values.get(column) or "")
        except _Bad as bad:
            problems.append((column, str(bad)))
    try:
        parsed["birth_date"] = _birth_date(values.get("birth_date") or "", today)
    except _Bad as bad:
        problems.append(("birth_date", str(bad)))
    # without a valid currency the minor unit is unknown: check the shape only
    places = _places(parsed["currency"]) if "currency" in parsed else _RATE_MAX_PLACES
    for column in _AMOUNT_COLUMNS:
        try:
            parsed[column] = _amount(values.get(column) or "", places)
        except _Bad as bad:
            problems.append((column, str(bad)))
    if problems:
        problems.sort(key=lambda problem: _COLUMN_ORDER[problem[0]])
        return None, problems
    return AccountRecord(**parsed), []


def _account_id(text: str) -> str:
    value = text.strip()
    if not value:
        raise _Bad("empty")
    if len(value) > _ACCOUNT_ID_MAX:
        raise _Bad(f"longer than {_ACCOUNT_ID_MAX} characters")
    return value


def _full_name(text: str) -> str:
    value = " ".join(text.split())
    if not value:
        raise _Bad("empty")
    if len(value) > _FULL_NAME_MAX:
        raise _Bad(f"longer than {_FULL_NAME_MAX} characters")
    return value


def _phone(text: str) -> str:
    try:
        return normalize_phone(text)
    except DomainError as error:
        raise _Bad(str(error)) from None


def _birth_date(text: str, today: date) -> date:
    value = text.strip()
    if not _ISO_DATE.match(value):
        raise _Bad("not a date in the form YYYY-MM-DD")
    try:
        born = date.fromisoformat(value)
    except ValueError:
        raise _Bad(f"no such date: {value}") from None
    try:
        return check_birth_date(born, today)
    except DomainError as error:
        raise _Bad(str(error)) from None


def _card_last4(text: str) -> str:
    value = text.strip()
    if not _LAST4.match(value):
        raise _Bad("must be exactly 4 digits")
    return value


@lru_cache(maxsize=1)
def _known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def _currency(text: str) -> str:
    value = text.strip().upper()
    if not value:
        raise _Bad("empty")
    if value not in _known_currencies():
        raise _Bad(f"{text.strip()!r} is not an ISO 4217 currency code")
    return value


@lru_cache(maxsize=None)
def _places(currency: str) -> int:
    return get_currency_precision(currency)


@lru_cache(maxsize=16)
def _quantum(places: int) -> Decimal:
    return Decimal(1).scaleb(-places)


def _decimal(text: str) -> tuple[Decimal, int]:
    """A plain decimal string → (value, significant fraction digits). No exponents, no separators."""
    value = text.strip()
    match = _DECIMAL.match(value)
    if not match:
        if not value:
            raise _Bad("empty")
        raise _Bad(f"{value!r} is not a number (write it like 1234.56)")
    sign, whole, fraction = match.groups()
    number = Decimal(value)
    if sign == "-" and number != 0:
        raise _Bad("must not be negative")
    if len(whole.lstrip("0")) > _MAX_WHOLE_DIGITS:
        raise _Bad("too large")
    return abs(number), len((fraction or "").rstrip("0"))


def _amount(text: str, places: int) -> Decimal:
    number, fraction_digits = _decimal(text)
    if fraction_digits > places:
        raise _Bad(
            "this currency has no fractional unit" if places == 0
            else f"more than {places} digits after the decimal point"
        )
    return number.quantize(_quantum(places))


def _rate(text: str) -> Decimal:
    number, fraction_digits = _decimal(text)
    if number >= _RATE_LIMIT:
        raise _Bad(f"a daily rate must be below {_RATE_LIMIT} (e.g. 0.0005 for 0.05% a day)")
    if fraction_digits > _RATE_MAX_PLACES:
        raise _Bad(f"more than {_RATE_MAX_PLACES} digits after the decimal point")
    return number.normalize() if number else Decimal(0)


def _days_past_due(text: str) -> int:
    value = text.strip()
    if not _INTEGER.match(value):
        if not value:
            raise _Bad("empty")
        if value.startswith("-") and value[1:].isdigit():
            raise _Bad("must not be negative")
        raise _Bad(f"{value!r} is not a whole number of days")
    days = int(value)
    if days > _MAX_DAYS_PAST_DUE:
        raise _Bad(f"more than {_MAX_DAYS_PAST_DUE} days")
    return days


_LOCALES = {locale.casefold(): locale for locale in SUPPORTED_LOCALES}


def _locale(text: str) -> str:
    value = text.strip().replace("-", "_").casefold()
    if value not in _LOCALES:
        raise _Bad(f"{text.strip()!r} is not one of {', '.join(SUPPORTED_LOCALES)}")
    return _LOCALES[value]


@lru_cache(maxsize=1)
def _timezones_by_folded_name() -> dict[str, str]:
    return {name.casefold(): name for name in available_timezones()}


@lru_cache(maxsize=1024)
def _canonical_timezone(name: str) -> str | None:
    if name:
        try:
            ZoneInfo(name)
            return name
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    return _timezones_by_folded_name().get(name.casefold())


def _timezone(text: str) -> str:
    value = text.strip()
    if not value:
        raise _Bad("empty")
    canonical = _canonical_timezone(value)
    if canonical is None:
        raise _Bad(f"{value!r} is not an IANA time zone (e.g. Asia/Shanghai)")
    return canonical


_TEXT_CHECKS: tuple[tuple[str, Any], ...] = (
    ("account_id", _account_id),
    ("full_name", _full_name),
    ("phone", _phone),
    ("card_last4", _card_last4),
    ("currency", _currency),
    ("days_past_due", _days_past_due),
    ("daily_interest_rate", _rate),
    ("locale", _locale),
    ("timezone", _timezone),
)
_AMOUNT_COLUMNS = ("statement_balance", "overdue_amount", "minimum_due", "late_fee")
_COLUMN_ORDER = {column: position for position, column in enumerate(COLUMNS)}


# --------------------------------------------------------------------------- writing


_DATA_FIELDS: tuple[str, ...] = COLUMNS[1:]


def _upsert_statement(dialect_name: str) -> Any:
    table = Account.__table__
    if dialect_name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        raise NotImplementedError(f"account import does not support the {dialect_name} database")
    statement = insert(table)
    updated = {name: statement.excluded[name] for name in (*_DATA_FIELDS, "balance_version", "updated_at")}
    return statement.on_conflict_do_update(index_elements=[table.c.account_id], set_=updated)


async def write_accounts(session: AsyncSession, records: Sequence[AccountRecord], *, now: datetime) -> WriteCounts:
    """Insert or update validated accounts by ``account_id`` in the session's transaction.

    Rows identical to what is stored are not touched; ``balance_version`` goes up by one only
    when one of `BALANCE_FIELDS` changed. ``records`` must not repeat an ``account_id``.
    """
    if not records:
        return WriteCounts()
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    table = Account.__table__
    stored_columns = [table.c[name] for name in _DATA_FIELDS]
    result = await session.execute(
        select(table.c.account_id, table.c.balance_version, *stored_columns).where(
            table.c.account_id.in_([record.account_id for record in records])
        )
    )
    stored = {row[0]: row for row in result}

    rows: list[dict[str, Any]] = []
    inserted = updated = unchanged = 0
    for record in records:
        values = {name: getattr(record, name) for name in COLUMNS}
        previous = stored.get(record.account_id)
        if previous is None:
            version = 1
            inserted += 1
        else:
            old = dict(zip(_DATA_FIELDS, previous[2:]))
            if all(old[name] == values[name] for name in _DATA_FIELDS):
                unchanged += 1
                continue
            balance_changed = any(old[name] != values[name] for name in BALANCE_FIELDS)
            version = previous[1] + (1 if balance_changed else 0)
            updated += 1
        values["balance_version"] = version
        values["updated_at"] = now
        rows.append(values)
    if rows:
        connection = await session.connection()
        await session.execute(_upsert_statement(connection.dialect.name), rows)
    return WriteCounts(inserted, updated, unchanged)


# --------------------------------------------------------------------------- import


async def import_accounts(
    session_factory: async_sessionmaker[AsyncSession], source: Path, *, now: datetime
) -> ImportReport:
    """Import the CSV at ``source``; bad rows are reported and skipped, good ones upserted.

    Raises `ImportFileError` when the file as a whole is unusable (unreadable, not UTF-8, header
    without the required columns); nothing is written then.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    today = now.astimezone(timezone.utc).date()
    report = ImportReport()
    with open_table(source) as handle:
        reader = csv.reader(decoded_lines(handle))
        last_line = 0
        try:
            header = read_header(reader, COLUMNS)
            positions = column_positions(header, COLUMNS)
            last_line = reader.line_num
            async with session_factory() as session, session.begin():
                batch: list[AccountRecord] = []
                seen: dict[str, int] = {}
                for cells in reader:
                    line, last_line = last_line + 1, reader.line_num
                    if not any(cell.strip() for cell in cells):
                        continue
                    record = _check_row(cells, line, len(header), positions, seen, today, report)
                    if record is None:
                        continue
                    batch.append(record)
                    if len(batch) >= BATCH_SIZE:
                        _count(report, await write_accounts(session, batch, now=now))
                        batch = []
                _count(report, await write_accounts(session, batch, now=now))
        except OSError as error:
            raise ImportFileError(f"cannot read {source}: {error.strerror or error}") from None
        except csv.Error as error:
            raise ImportFileError(f"line {reader.line_num}: unreadable CSV ({error})") from None
    return report


def open_table(source: Path) -> BinaryIO:
    """Open a CSV file the bank exported; an unreadable one is an `ImportFileError`."""
    try:
        return open(source, "rb")
    except OSError as error:
        raise ImportFileError(f"cannot read {source}: {error.strerror or error}") from None


def decoded_lines(handle: Iterable[bytes]) -> Iterator[str]:
    """The file's lines as text, decoded one by one so that bad bytes are reported at their line."""
    for number, raw in enumerate(handle, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ImportFileError(f"line {number}: the file is not UTF-8 text") from None
        yield line.removeprefix("\ufeff") if number == 1 else line


def read_header(reader: Iterable[list[str]], columns: Sequence[str]) -> list[str]:
    for cells in reader:
        if any(cell.strip() for cell in cells):
            return [cell.strip().casefold() for cell in cells]
    raise ImportFileError("the file is empty: expected a header row with " + ", ".join(columns))


def column_positions(header: list[str], columns: Sequence[str]) -> dict[str, int]:
    repeated = sorted({name for name in header if name and header.count(name) > 1} & set(columns))
    if repeated:
        raise ImportFileError("the header repeats column(s): " + ", ".join(repeated))
    missing = [name for name in columns if name not in header]
    if missing:
        raise ImportFileError("the header lacks column(s): " + ", ".join(missing))
    return {name: header.index(name) for name in columns}


def _check_row(
    cells: list[str],
    line: int,
    width: int,
    positions: dict[str, int],
    seen: dict[str, int],
    today: date,
    report: ImportReport,
) -> AccountRecord | None:
    if len(cells) != width:
        report.rejected += 1
        report.add_error(RowError(line, "row", f"has {len(cells)} fields where the header has {width}"))
        return None
    values = {name: cells[index] for name, index in positions.items()}
    record, problems = validate_account_row(values, today=today)
    account_id = values["account_id"].strip()
    if account_id:
        earlier = seen.get(account_id)
        if earlier is not None:
            problems.insert(0, ("account_id", f"duplicate of line {earlier}"))
            record = None
        else:
            seen[account_id] = line
    if record is None:
        report.rejected += 1
        for column, reason in problems:
            report.add_error(RowError(line, column, reason))
    return record


def _count(report: ImportReport, counts: WriteCounts) -> None:
    report.inserted += counts.inserted
    report.updated += counts.updated
    report.unchanged += counts.unchanged
