"""aiosqlite with one trip to its thread per statement.

aiosqlite runs sqlite3 in a thread of its own and SQLAlchemy's adapter makes four trips to it for
each statement: open a cursor, execute, fetch the rows, close the cursor. Each trip is a hand-off
between threads and a wake-up of the event loop, and together they were the largest part of what
an update cost. Here one function does all four in the driver's thread, and the cursor SQLAlchemy
sees holds what the statement left: its rows, description, row count and last row id.

Only the statement path changes; connecting, transactions and errors are aiosqlite's and
SQLAlchemy's own (`sqlalchemy.dialects.sqlite.aiosqlite`, which this module extends).
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)


class StatementResult:
    """What one statement left behind, in place of an aiosqlite cursor."""

    __slots__ = ("description", "rowcount", "lastrowid", "arraysize")

    def __init__(self) -> None:
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def __aenter__(self) -> StatementResult:
        return self

    def close(self) -> None:
        """Nothing to close: the sqlite3 cursor was closed in the driver's thread."""


def _run(connection: sqlite3.Connection, many: bool, operation: str, parameters: Any) -> tuple[Any, int, int | None, list[Any] | None]:
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, parameters if parameters is not None else ())
        rows = cursor.fetchall() if cursor.description else None
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ()
    _awaitable_cursor_close = False

    def _make_new_cursor(self, connection: Any) -> Any:
        return StatementResult()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        return await self._one_trip(False, operation, parameters)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        return await self._one_trip(True, operation, seq_of_parameters)

    async def _one_trip(self, many: bool, operation: Any, parameters: Any) -> Any:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        result: StatementResult = self._cursor  # type: ignore[assignment]
        async with self._adapt_connection._execute_mutex:
            description, rowcount, lastrowid, rows = await connection._execute(
                _run, connection._conn, many, operation, parameters
            )
        result.description, result.rowcount, result.lastrowid = description, rowcount, lastrowid
        if rows is not None:
            self._rows = collections.deque(rows)
        return result


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """aiosqlite as SQLAlchemy's DBAPI, with `OneTripCursor` for statements."""

    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        connection = super().connect(*arg, **kw)
        connection.__class__ = OneTripConnection
        return connection


def one_trip_dbapi() -> OneTripDBAPI:
    return OneTripDBAPI(aiosqlite, sqlite3)
