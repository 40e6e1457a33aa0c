"""Importing the bank's export of delinquent card accounts (CSV) into the accounts table.

Rows are validated in Python, one at a time while the file streams, and the good ones are
written in batches with the dialect's ``INSERT ... ON CONFLICT (account_id) DO UPDATE``. The whole
file is one transaction: a file that turns out to be unreadable half-way leaves nothing behind,
while rows that are merely bad are reported and skipped. ``balance_version`` moves by one only
when a figure the repayment offers depend on has changed, so offers computed against an older
version can be recognised as stale. The ``jurisdiction`` column is optional: an export of the older
form still imports, and leaves the jurisdictions already stored as they are.

`validate_account_row` is what a row must pass. An export of a hundred thousand rows is read
with shortcuts that give the same result (`_RowReader`: the forms a bank writes are recognised
first, repeated texts are checked once) and written below the ORM, a batch's existing rows
fetched in one query and compared as stored (`_Store`), while the next batch is being read.
"""

from __future__ import annotations

import asyncio
import csv
import re
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import lru_cache
from itertools import chain
from operator import itemgetter, methodcaller
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from babel.numbers import get_currency_precision, list_currencies
from sqlalchemy import Numeric, String, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.types import TypeDecorator

from bot.db.models import Account
from bot.domain.dates import check_birth_date
from bot.domain.e164 import is_normalized_e164
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

OPTIONAL_COLUMNS: tuple[str, ...] = ("jurisdiction",)
"""Columns the file may have. A file without one leaves that field of the accounts it updates as
stored (a new account gets None); a blank cell is None."""

_FIELDS: tuple[str, ...] = (*COLUMNS, *OPTIONAL_COLUMNS)
"""An account's imported fields, in the order rows and `AccountRecord` hold them."""

BALANCE_FIELDS: tuple[str, ...] = (
    "statement_balance",
    "overdue_amount",
    "minimum_due",
    "days_past_due",
    "late_fee",
    "daily_interest_rate",
    "jurisdiction",
)
"""A change in any of these bumps ``balance_version``: the figures offers are computed from, and
whose rules they follow."""

BATCH_SIZE = 2000
_YIELD_EVERY = 256
MAX_REPORTED_ERRORS = 10_000
"""Errors beyond this many are counted, not kept, so a wholly wrong file cannot exhaust memory."""

_ACCOUNT_ID_MAX = Account.__table__.c.account_id.type.length or 64
_FULL_NAME_MAX = Account.__table__.c.full_name.type.length or 200
_MAX_WHOLE_DIGITS = 15  # NUMERIC(24, 8) on PostgreSQL leaves 16
_RATE_LIMIT = Decimal("0.01")
_RATE_MAX_PLACES = 8
_MAX_DAYS_PAST_DUE = 36_500
_DAYS_DIGITS = len(str(_MAX_DAYS_PAST_DUE))

_DECIMAL = re.compile(r"^([+-]?)([0-9]+)(?:\.([0-9]+))?$")
_INTEGER = re.compile(r"^\+?[0-9]+$")
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_LAST4 = re.compile(r"^[0-9]{4}$")
_JURISDICTION = re.compile(r"[A-Za-z]{2}(?:-[A-Za-z0-9]{1,3})?")


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
    jurisdiction: str | None = None


class _Bad(Exception):
    """One column's value is not acceptable; the message is the reason."""


def validate_account_row(
    values: Mapping[str, str], *, today: date, jurisdictions: Collection[str] | None = None
) -> tuple[AccountRecord | None, list[tuple[str, str]]]:
    """Check one row given as column → text. Returns the record, or None and (column, reason) pairs.

    ``jurisdictions``: the codes the policy has rules for; without it any well-formed code is taken.
    """
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
    try:
        parsed["jurisdiction"] = _jurisdiction(values.get("jurisdiction") or "", jurisdictions)
    except _Bad as bad:
        problems.append(("jurisdiction", str(bad)))
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


def _jurisdiction(text: str, known: Collection[str] | None) -> str | None:
    """An ISO 3166-1 alpha-2 code, or a subdivision of one (US-CA), upper-cased; blank is None."""
    value = text.strip()
    if not value:
        return None
    if not _JURISDICTION.fullmatch(value):
        raise _Bad(f"{value!r} is not a country code such as CN (ISO 3166-1), or a subdivision such as US-CA")
    code = value.upper()
    if known is not None and code not in known:
        raise _Bad(f"unknown jurisdiction {code!r} (the policy has {', '.join(sorted(known)) or 'none'})")
    return code


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
_COLUMN_ORDER = {column: position for position, column in enumerate(_FIELDS)}


# --------------------------------------------------------------------------- the usual forms, quickly


_MEMO_LIMIT = 50_000
"""Distinct texts remembered: birth dates, and combinations of currency, rate, locale and time zone.
Every birth date of a century fits, and a file of nonsense cannot grow the memory without bound."""


def _identity(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class _Binds:
    """Validated values in the form the database driver receives them, as SQLAlchemy's column types
    would bind them (Money as canonical text on SQLite, Decimal on PostgreSQL; dates; timestamps)."""

    money: Callable[[Decimal], Any]
    canonical_money: Callable[[str], Any] | None
    """``money(Decimal(text))`` for a text in canonical form (see `_RowReader`); None: the text itself."""
    date: Callable[[date], Any]
    timestamp: Callable[[datetime], Any]

    @classmethod
    def for_dialect(cls, dialect: Dialect) -> _Binds:
        table = Account.__table__

        def processor(column: str) -> Callable[[Any], Any]:
            return table.c[column].type.dialect_impl(dialect).bind_processor(dialect) or _identity

        money = processor("statement_balance")
        # Money binds format(Decimal(text), "f") on SQLite, which gives a canonical text back unchanged
        canonical = None if dialect.name == "sqlite" else (lambda text: money(Decimal(text)))
        return cls(money, canonical, processor("birth_date"), processor("updated_at"))

    def record(self, record: AccountRecord) -> tuple[Any, ...]:
        """A validated record as `_RowReader.values` gives a row of a file with every column."""
        money = self.money
        return (
            record.account_id, record.full_name, record.phone, self.date(record.birth_date), record.card_last4,
            record.currency, money(record.statement_balance), money(record.overdue_amount),
            money(record.minimum_due), record.days_past_due, money(record.late_fee),
            money(record.daily_interest_rate), record.locale, record.timezone, record.jurisdiction,
        )


@lru_cache(maxsize=16)
def _canonical_figures(places: int) -> re.Pattern[str]:
    """The four amounts, the days past due and the card's last digits, joined by US (\\x1f), in the
    form they are stored: amounts of ASCII digits without a leading zero (but ``0`` itself), at
    most 15, and exactly ``places`` decimals, so that ``Decimal(text)`` already has the currency's
    exponent. No part can contain the separator, so the parts are matched one by one."""
    amount = f"(?:0|[1-9][0-9]{{0,{_MAX_WHOLE_DIGITS - 1}}})" + (f"\\.[0-9]{{{places}}}" if places else "")
    return re.compile("\x1f".join([amount] * 4 + [f"[0-9]{{1,{_DAYS_DIGITS}}}", "[0-9]{4}"]))


_CELLS = (
    "account_id", "full_name", "phone", "birth_date", "card_last4",
    "statement_balance", "overdue_amount", "minimum_due", "days_past_due", "late_fee",
)
_TERMS = ("currency", "daily_interest_rate", "locale", "timezone", "jurisdiction")
"""The columns that take few values; together they are checked once per combination met."""


class _RowReader:
    """Validates the cells of a row into the values bound for the database, in `_FIELDS` order
    (without the optional columns the file has not got).

    Each field is read first in the form a bank's export nearly always has it (``+<digits>`` that is a
    valid number, ``2500.00`` with exactly the currency's decimals, ``45``), and otherwise with the
    checks `validate_account_row` makes; texts that repeat (birth dates; `_TERMS` together) are checked
    once. Every form accepted quickly is one those checks accept with the same result. At the first
    unacceptable field `values` raises `_Bad`, and the row is validated again in full to report every
    problem it has.
    """

    def __init__(
        self, positions: Mapping[str, int], today: date, binds: _Binds, jurisdictions: Collection[str] | None = None
    ) -> None:
        self._cells = itemgetter(*(positions[name] for name in _CELLS))
        self._terms_of = itemgetter(*(positions[name] for name in _TERMS if name in positions))
        self._positions = positions
        self._width = len(positions)  # the optional columns come last in `_FIELDS`: a record's first values
        self._today = today
        self._binds = binds
        self._jurisdictions = jurisdictions
        self._dates: dict[str, Any] = {}
        self._terms: dict[tuple[str, ...], tuple[str, int, re.Pattern[str], tuple[Any, ...]]] = {}

    def values(self, cells: Sequence[str]) -> tuple[Any, ...]:
        (account_id, full_name, phone, birth_date, card_last4, statement_balance, overdue_amount,
         minimum_due, days_past_due, late_fee) = self._cells(cells)
        account_id = account_id.strip()
        if not account_id or len(account_id) > _ACCOUNT_ID_MAX:
            raise _Bad
        full_name = " ".join(full_name.split())
        if not full_name or len(full_name) > _FULL_NAME_MAX:
            raise _Bad
        if not is_normalized_e164(phone):
            phone = _phone(phone)
        born = self._dates.get(birth_date)
        if born is None:
            born = self._remember(self._dates, birth_date, self._binds.date(_birth_date(birth_date, self._today)))
        key = self._terms_of(cells)
        terms = self._terms.get(key)
        if terms is None:
            terms = self._remember(self._terms, key, self._checked_terms(*key))
        code, places, canonical, last = terms
        figures = (statement_balance, overdue_amount, minimum_due, late_fee, days_past_due, card_last4)
        if canonical.fullmatch("\x1f".join(figures)):
            days = int(days_past_due)
            if days > _MAX_DAYS_PAST_DUE:
                raise _Bad
            as_stored = self._binds.canonical_money
            if as_stored is not None:
                statement_balance, overdue_amount, minimum_due, late_fee = map(
                    as_stored, (statement_balance, overdue_amount, minimum_due, late_fee)
                )
        else:
            money = self._binds.money
            statement_balance = money(_amount(statement_balance, places))
            overdue_amount = money(_amount(overdue_amount, places))
            minimum_due = money(_amount(minimum_due, places))
            late_fee = money(_amount(late_fee, places))
            days = _days_past_due(days_past_due)
            card_last4 = _card_last4(card_last4)
        return (
            account_id, full_name, phone, born, card_last4, code, statement_balance, overdue_amount,
            minimum_due, days, late_fee,
        ) + last

    def _checked_terms(
        self, currency: str, rate: str, locale: str, zone: str, *jurisdiction: str
    ) -> tuple[str, int, re.Pattern[str], tuple[Any, ...]]:
        """`_TERMS` checked: the currency, its places and figures' pattern, and the row's last values."""
        code = _currency(currency)
        places = _places(code)
        last = (self._binds.money(_rate(rate)), _locale(locale), _timezone(zone))
        last += tuple(_jurisdiction(text, self._jurisdictions) for text in jurisdiction)
        return code, places, _canonical_figures(places), last

    def problems(self, cells: Sequence[str]) -> tuple[tuple[Any, ...] | None, list[tuple[str, str]]]:
        """The row validated by `validate_account_row`: its values, or None and every problem."""
        record, problems = validate_account_row(
            {name: cells[index] for name, index in self._positions.items()},
            today=self._today, jurisdictions=self._jurisdictions,
        )
        return (None if record is None else self._binds.record(record)[:self._width]), problems

    @staticmethod
    def _remember(memo: dict[Any, Any], key: Any, value: Any) -> Any:
        if len(memo) < _MEMO_LIMIT:
            memo[key] = value
        return value


# --------------------------------------------------------------------------- writing


class _Store:
    """The accounts table on the session's connection, at the driver's level: rows in and out are
    tuples of bound values (`_Binds`), so that a batch costs the database's work and little more.

    SQLite goes through the aiosqlite connection itself (its transaction is the session's: sqlite3
    opens it before the first write); PostgreSQL through SQLAlchemy's driver-level execution.
    """

    binds: _Binds
    fields: tuple[str, ...]
    """The fields read and written (`_FIELDS`, or those of a file without an optional column): the
    others are left as stored."""
    same: Callable[[int, Any, Any], bool]
    """Whether a stored and a new value (of `fields[1:]` position i) mean the same."""

    @staticmethod
    async def open(session: AsyncSession, fields: tuple[str, ...] = _FIELDS) -> _Store:
        connection = await session.connection()
        name = connection.dialect.name
        if name == "sqlite":
            raw = await connection.get_raw_connection()
            return _SQLiteStore(raw.driver_connection, connection.dialect, fields)
        if name == "postgresql":
            return _PostgresStore(connection, fields)
        raise NotImplementedError(f"account import does not support the {name} database")

    async def stored(self, account_ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        """account_id → (*`fields`, balance_version) as stored, for those that exist."""
        raise NotImplementedError

    async def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Upsert rows of `written` values."""
        raise NotImplementedError

    @property
    def written(self) -> tuple[str, ...]:
        """The columns an upsert writes; ``closed_at`` last (the update keeps an earlier closing)."""
        return (*self.fields, "balance_version", "updated_at", "closed_at")

    @property
    def balance_positions(self) -> tuple[int, ...]:
        """The positions in `fields[1:]` of `BALANCE_FIELDS`."""
        return tuple(i for i, name in enumerate(self.fields[1:]) if name in BALANCE_FIELDS)

    @asynccontextmanager
    async def tuned_for_import(self) -> AsyncIterator[None]:
        """Connection settings for writing a whole file in one transaction, restored afterwards."""
        yield

    def _sql(self, dialect: Dialect) -> tuple[str, str, str]:
        quote = dialect.identifier_preparer.quote
        table = dialect.identifier_preparer.format_table(Account.__table__)
        select_list = ", ".join(quote(name) for name in (*self.fields, "balance_version"))
        names = ", ".join(quote(name) for name in self.written)
        updates = ", ".join(f"{quote(name)} = excluded.{quote(name)}" for name in self.written[1:-1])
        closed = quote("closed_at")
        # an account closed earlier keeps the moment it was closed; one that owes again is open
        updates += (
            f", {closed} = CASE WHEN excluded.{closed} IS NULL THEN NULL"
            f" ELSE COALESCE({table}.{closed}, excluded.{closed}) END"
        )
        return (
            f"SELECT {select_list} FROM {table} WHERE {quote('account_id')}",
            f"INSERT INTO {table} ({names}) VALUES ",
            f" ON CONFLICT ({quote('account_id')}) DO UPDATE SET {updates}",
        )


_IMPORT_PRAGMAS = {"temp_store": 2, "cache_size": -32_768}
"""temp_store 2 is MEMORY; a negative cache_size is in KiB (32 MiB)."""


class _SQLiteStore(_Store):
    def __init__(self, driver: Any, dialect: Dialect, fields: tuple[str, ...]) -> None:
        self._driver = driver
        self.binds = _Binds.for_dialect(dialect)
        self.fields = fields
        table = Account.__table__
        readers = [table.c[name].type.dialect_impl(dialect).result_processor(dialect, None) for name in fields[1:]]
        self._readers = [reader or _identity for reader in readers]
        self._select, self._insert, self._upsert = self._sql(dialect)
        variables = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
        self._ids_per_select = variables
        self._rows_per_insert = variables // len(self.written)
        self._row_sql = "(" + ", ".join("?" * len(self.written)) + ")"

    @asynccontextmanager
    async def tuned_for_import(self) -> AsyncIterator[None]:
        """Statement journals in memory, and a page cache that holds a large file's pages.

        A statement of many rows keeps a journal to undo itself, a temporary file by default, and a
        small cache writes the same pages to the WAL again and again before the commit. Neither
        setting touches durability; both are the connection's own and are put back.
        """
        settings = {name: (await self._driver.execute_fetchall(f"PRAGMA {name}"))[0][0] for name in _IMPORT_PRAGMAS}
        for name, value in _IMPORT_PRAGMAS.items():
            await self._pragma(name, value)
        try:
            yield
        finally:
            for name, value in settings.items():
                await self._pragma(name, int(value))

    async def _pragma(self, name: str, value: int) -> None:
        try:
            await self._driver.execute(f"PRAGMA {name} = {value}")
        except sqlite3.OperationalError:
            # temp_store cannot change while temporary tables are open in a transaction; where it
            # stays is where temporary files go, nothing more
            if name != "temp_store":
                raise

    def same(self, position: int, stored: Any, new: Any) -> bool:
        """Texts first; then as read back (``12.5`` and ``12.50`` are the same amount)."""
        if stored == new:
            return True
        read = self._readers[position]
        return read(stored) == read(new)

    async def stored(self, account_ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        found: dict[str, tuple[Any, ...]] = {}
        for start in range(0, len(account_ids), self._ids_per_select):
            chunk = account_ids[start:start + self._ids_per_select]
            sql = f"{self._select} IN ({', '.join('?' * len(chunk))})"
            found.update({row[0]: row for row in await self._driver.execute_fetchall(sql, chunk)})
        return found

    async def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Many rows to a statement: SQLite then inserts them without coming back to Python."""
        for start in range(0, len(rows), self._rows_per_insert):
            chunk = rows[start:start + self._rows_per_insert]
            sql = self._insert + ", ".join([self._row_sql] * len(chunk)) + self._upsert
            await self._driver.execute(sql, list(chain.from_iterable(chunk)))


class _PostgresStore(_Store):
    def __init__(self, connection: AsyncConnection, fields: tuple[str, ...]) -> None:
        self._connection = connection
        dialect = connection.dialect
        self.binds = _Binds.for_dialect(dialect)
        self.fields = fields
        select, insert, upsert = self._sql(dialect)
        self._select = f"{select} = ANY($1::varchar[])"
        # a batch is one statement: a column of values per parameter, unnest() makes the rows
        arrays = ", ".join(f"${n}::{_array_of(name, dialect)}[]" for n, name in enumerate(self.written, start=1))
        self._upsert_sql = insert.removesuffix(" VALUES ") + f" SELECT * FROM unnest({arrays})" + upsert

    def same(self, position: int, stored: Any, new: Any) -> bool:
        """asyncpg reads NUMERIC as Decimal and DATE as date: equal values compare equal."""
        return bool(stored == new)

    async def stored(self, account_ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        result = await self._connection.exec_driver_sql(self._select, (list(account_ids),))
        return {row[0]: tuple(row) for row in result}

    async def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            await self._connection.exec_driver_sql(self._upsert_sql, tuple(list(column) for column in zip(*rows)))


def _array_of(column: str, dialect: Dialect) -> str:
    """The column's type for an array parameter; text and numeric unbounded, so that the column's
    own limits apply on insert (a cast to VARCHAR(64) would cut a longer text without a word)."""
    column_type = Account.__table__.c[column].type.dialect_impl(dialect)
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.load_dialect_impl(dialect)
    if isinstance(column_type, String):
        return "text"
    if isinstance(column_type, Numeric):
        return "numeric"
    return column_type.compile(dialect=dialect)


def _changes(
    store: _Store, rows: Sequence[tuple[Any, ...]], stored: Mapping[str, tuple[Any, ...]], updated_at: Any
) -> tuple[list[tuple[Any, ...]], WriteCounts]:
    """The rows to write, with their ``balance_version`` and closing moment, and what they do to the table.

    A row that owes nothing (balance and overdue zero) is written as closed at `updated_at`; the
    upsert keeps an earlier closing moment (`_Store._sql`)."""
    writes: list[tuple[Any, ...]] = []
    inserted = updated = unchanged = 0
    same = store.same
    data_positions = range(len(store.fields) - 1)
    balance_positions = store.balance_positions
    owed = (store.fields.index("statement_balance"), store.fields.index("overdue_amount"))
    for row in rows:
        previous = stored.get(row[0])
        if previous is None:
            writes.append((*row, 1, updated_at, updated_at if _owes_nothing(row, owed) else None))
            inserted += 1
        elif previous[:-1] == row or all(same(i, previous[i + 1], row[i + 1]) for i in data_positions):
            unchanged += 1
        else:
            balance_changed = any(not same(i, previous[i + 1], row[i + 1]) for i in balance_positions)
            version = previous[-1] + (1 if balance_changed else 0)
            writes.append((*row, version, updated_at, updated_at if _owes_nothing(row, owed) else None))
            updated += 1
    return writes, WriteCounts(inserted, updated, unchanged)


def _owes_nothing(row: tuple[Any, ...], owed: tuple[int, int]) -> bool:
    """Whether a row's balance and overdue amount (as bound: canonical text or Decimal), at the
    positions `owed`, are both zero."""
    return all(Decimal(row[position]) == 0 for position in owed)


async def write_accounts(session: AsyncSession, records: Sequence[AccountRecord], *, now: datetime) -> WriteCounts:
    """Insert or update validated accounts by ``account_id`` in the session's transaction.

    Rows identical to what is stored are not touched; ``balance_version`` goes up by one only
    when one of `BALANCE_FIELDS` changed. ``records`` must not repeat an ``account_id``.
    """
    if not records:
        return WriteCounts()
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    store = await _Store.open(session)
    rows = [store.binds.record(record) for record in records]
    writes, counts = _changes(store, rows, await store.stored([row[0] for row in rows]), store.binds.timestamp(now))
    await store.write(writes)
    return counts


async def refresh_statistics(session: AsyncSession) -> None:
    """Tell PostgreSQL's planner what a large import changed, as its autovacuum would some minutes
    later: until then it plans the phone lookup for a table it thinks is small. SQLite plans by
    its indexes alone and needs nothing."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(text("ANALYZE accounts"))


# --------------------------------------------------------------------------- import


async def import_accounts(
    session_factory: async_sessionmaker[AsyncSession],
    source: Path,
    *,
    now: datetime,
    jurisdictions: Collection[str] | None = None,
) -> ImportReport:
    """Import the CSV at ``source``; bad rows are reported and skipped, good ones upserted.

    ``jurisdictions``: the codes the policy has rules for; a row naming another is a bad row.
    Raises `ImportFileError` when the file as a whole is unusable (unreadable, not UTF-8, header
    without the required columns); nothing is written then.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    report = ImportReport()
    with open_table(source) as handle:
        reader = csv.reader(_decoded(handle))
        try:
            header = read_header(reader, COLUMNS)
            positions = column_positions(header, COLUMNS, optional=OPTIONAL_COLUMNS)
            async with session_factory() as session, session.begin():
                store = await _Store.open(session, tuple(name for name in _FIELDS if name in positions))
                async with store.tuned_for_import():
                    with _prompt_thread_switches():
                        await _import_rows(reader, len(header), positions, store, now, report, jurisdictions)
            async with session_factory() as session, session.begin():
                await refresh_statistics(session)
        except OSError as error:
            raise ImportFileError(f"cannot read {source}: {error.strerror or error}") from None
        except csv.Error as error:
            raise ImportFileError(f"line {reader.line_num}: unreadable CSV ({error})") from None
        except UnicodeDecodeError:
            # the reader counts the lines it was given: the one that failed is the next
            raise ImportFileError(f"line {reader.line_num + 1}: the file is not UTF-8 text") from None
    return report


def _decoded(handle: BinaryIO) -> Iterator[str]:
    """`decoded_lines` without a step in Python for each line; a bad line raises UnicodeDecodeError."""
    lines = iter(handle)
    return chain(_first_line(lines), map(_UTF8_LINE, lines))


def _first_line(lines: Iterator[bytes]) -> Iterator[str]:
    for raw in lines:
        yield raw.decode("utf-8").removeprefix("\ufeff")
        return


async def _import_rows(
    reader: Any,
    width: int,
    positions: dict[str, int],
    store: _Store,
    now: datetime,
    report: ImportReport,
    jurisdictions: Collection[str] | None,
) -> None:
    """Validate the rows after the header, and write the good ones in batches."""
    rows = _RowReader(positions, now.astimezone(timezone.utc).date(), store.binds, jurisdictions)
    writer = _BatchWriter(store, store.binds.timestamp(now), report)
    first = positions["account_id"]
    values = rows.values
    batch: list[tuple[Any, ...]] = []
    seen: dict[str, int] = {}
    last_line = reader.line_num
    try:
        for cells in reader:
            line, last_line = last_line + 1, reader.line_num
            if not line % _YIELD_EVERY:
                await asyncio.sleep(0)  # the batch being written goes on to its next step
            try:
                if len(cells) != width:
                    raise _Bad
                row: tuple[Any, ...] | None = values(cells)
                if row[0] in seen:  # type: ignore[index]
                    raise _Bad
            except _Bad:  # a blank line, a duplicate or a bad row: the careful way
                if not any(cell.strip() for cell in cells):
                    continue
                row = _check_row(cells, line, width, rows, first, seen, report)
                if row is None:
                    continue
            else:
                seen[row[0]] = line  # type: ignore[index]
            batch.append(row)  # type: ignore[arg-type]
            if len(batch) >= BATCH_SIZE:
                await writer.start(batch)
                batch = []
        await writer.start(batch)
        await writer.finish()
    except BaseException:
        await writer.abandon()
        raise


_SWITCH_INTERVAL = 0.0002


@contextmanager
def _prompt_thread_switches() -> Iterator[None]:
    """Let the database driver's thread have the GIL soon after it asks, while rows are validated.

    aiosqlite runs SQLite in a thread, which needs the GIL only for moments (to bind a statement's
    values, to hand back its result) between long stretches without it. By default Python lets it
    wait up to 5 ms each time for a thread that computes without pause, which is what validating a
    file is, and the two would take turns instead of working at once. The interval is the
    process's; it is put back afterwards.
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, _SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


class _BatchWriter:
    """Writes one batch while the next is read and validated.

    The database works in its own thread (aiosqlite) or server, and a batch is one statement per
    couple of thousand rows, so the reading goes on meanwhile. Batches are written one after
    the other, in the file's order, on the import's one connection and transaction.
    """

    def __init__(self, store: _Store, updated_at: Any, report: ImportReport) -> None:
        self._store = store
        self._updated_at = updated_at
        self._report = report
        self._task: asyncio.Task[WriteCounts] | None = None

    async def start(self, batch: list[tuple[Any, ...]]) -> None:
        """Once the previous batch is written, start on this one."""
        await self.finish()
        if batch:
            self._task = asyncio.create_task(self._write(batch))

    async def finish(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            _count(self._report, await task)

    async def abandon(self) -> None:
        """Let a batch under way end (its error, if any, is not the one to report) before the rollback."""
        if self._task is not None:
            task, self._task = self._task, None
            await asyncio.gather(task, return_exceptions=True)

    async def _write(self, batch: list[tuple[Any, ...]]) -> WriteCounts:
        stored = await self._store.stored([row[0] for row in batch])
        writes, counts = _changes(self._store, batch, stored, self._updated_at)
        await self._store.write(writes)
        return counts


def open_table(source: Path) -> BinaryIO:
    """Open a CSV file the bank exported; an unreadable one is an `ImportFileError`."""
    try:
        return open(source, "rb")
    except OSError as error:
        raise ImportFileError(f"cannot read {source}: {error.strerror or error}") from None


_UTF8_LINE = methodcaller("decode", "utf-8")


def decoded_lines(handle: Iterable[bytes]) -> Iterator[str]:
    """The file's lines as text, decoded one by one so that bad bytes are reported at their line."""
    lines = iter(handle)
    number = 1
    try:
        for first in lines:
            yield first.decode("utf-8").removeprefix("\ufeff")
            break
        for number, raw in enumerate(lines, start=2):
            yield raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ImportFileError(f"line {number}: the file is not UTF-8 text") from None


def read_header(reader: Iterable[list[str]], columns: Sequence[str]) -> list[str]:
    for cells in reader:
        if any(cell.strip() for cell in cells):
            return [cell.strip().casefold() for cell in cells]
    raise ImportFileError("the file is empty: expected a header row with " + ", ".join(columns))


def column_positions(header: list[str], columns: Sequence[str], optional: Sequence[str] = ()) -> dict[str, int]:
    """Where each of ``columns`` is, and each of the ``optional`` ones the header has."""
    repeated = sorted({name for name in header if name and header.count(name) > 1} & {*columns, *optional})
    if repeated:
        raise ImportFileError("the header repeats column(s): " + ", ".join(repeated))
    missing = [name for name in columns if name not in header]
    if missing:
        raise ImportFileError("the header lacks column(s): " + ", ".join(missing))
    return {name: header.index(name) for name in (*columns, *optional) if name in header}


def _check_row(
    cells: list[str],
    line: int,
    width: int,
    rows: _RowReader,
    first: int,
    seen: dict[str, int],
    report: ImportReport,
) -> tuple[Any, ...] | None:
    if len(cells) != width:
        report.rejected += 1
        report.add_error(RowError(line, "row", f"has {len(cells)} fields where the header has {width}"))
        return None
    problems: list[tuple[str, str]] = []
    try:
        row: tuple[Any, ...] | None = rows.values(cells)
        account_id = row[0]  # type: ignore[index]
    except _Bad:
        row, problems = rows.problems(cells)
        account_id = cells[first].strip()
    if account_id:
        earlier = seen.get(account_id)
        if earlier is not None:
            problems.insert(0, ("account_id", f"duplicate of line {earlier}"))
            row = None
        else:
            seen[account_id] = line
    if row is None:
        report.rejected += 1
        for column, reason in problems:
            report.add_error(RowError(line, column, reason))
    return row


def _count(report: ImportReport, counts: WriteCounts) -> None:
    report.inserted += counts.inserted
    report.updated += counts.updated
    report.unchanged += counts.unchanged
