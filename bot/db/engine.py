"""Engine and session factory; the schema is created on start-up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.util import await_only

from bot.db.models import Base
from bot.db.sqlite_driver import one_trip_dbapi


BACKGROUND_CONNECTIONS = 2
"""Connections beyond one per update in flight: background work (re-announcing cases) and tools."""

POOL_TIMEOUT = 30


def create_engine(database_url: str, max_concurrent_updates: int = 8) -> AsyncEngine:
    """An engine whose pool has a connection for every update in flight and for background work.

    An update holds at most one connection at a time (its unit of work), so with the number of
    updates in flight bounded by `max_concurrent_updates` no update ever waits for the pool.
    """
    url = make_url(database_url)
    pool = {"pool_size": max_concurrent_updates + BACKGROUND_CONNECTIONS, "max_overflow": 0, "pool_timeout": POOL_TIMEOUT}
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            pool = {}  # one connection holds the whole database
        else:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, module=one_trip_dbapi(), connect_args={"timeout": 30}, **pool)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True, **pool)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that write only when told to (a flush or a commit): on SQLite a write takes the
    database's one write lock until the commit, so it is taken as late and as briefly as possible."""
    if engine.dialect.name != "sqlite":
        return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)

    class SQLiteSession(Session):
        """A session of this engine: its writers take turns through one `WriterQueue`."""

    WriterQueue().install(SQLiteSession)
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False, sync_session_class=SQLiteSession)


class WriterQueue:
    """SQLite's writers, one at a time, in the order they asked, waiting in the event loop.

    SQLite lets one connection write at a time. A connection that finds the database locked sleeps
    in growing steps (up to 100 ms) and tries again, so with dozens of updates writing at once most
    of the time went to sleeping while the lock was free. Here a session waits for its turn before
    its first write (a flush or an INSERT/UPDATE/DELETE) and gives it back when its transaction ends.
    """

    def __init__(self) -> None:
        self._turn = asyncio.Lock()

    def install(self, session_class: type[Session]) -> None:
        event.listen(session_class, "before_flush", lambda session, *_: self._take(session))
        event.listen(session_class, "do_orm_execute", self._on_execute)
        event.listen(session_class, "after_transaction_end", self._on_transaction_end)

    def _take(self, session: Session) -> None:
        if not session.info.get(_HOLDS_TURN):
            await_only(self._turn.acquire())
            session.info[_HOLDS_TURN] = True

    def _on_execute(self, state: ORMExecuteState) -> None:
        if state.is_insert or state.is_update or state.is_delete:
            self._take(state.session)

    def _on_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None and session.info.pop(_HOLDS_TURN, False):
            self._turn.release()


_HOLDS_TURN = "holds_sqlite_write_turn"


REBUILT_WHEN_CHANGED = frozenset({"verification_locks"})
"""Tables of short-lived counters: one an older version made with other columns is dropped and
made anew (verification_locks was keyed by the phone itself before it was keyed by its hash)."""


async def create_schema(engine: AsyncEngine) -> None:
    """Create missing tables, and add missing nullable columns and indexes to tables an older version made."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # processes starting at once take turns
            await connection.execute(text("SELECT pg_advisory_xact_lock(7301)"))
        await connection.run_sync(_drop_changed_counters)
        await connection.run_sync(Base.metadata.create_all)
        await connection.run_sync(_add_missing_columns)


def _drop_changed_counters(connection: Connection) -> None:
    inspector = inspect(connection)
    for name in REBUILT_WHEN_CHANGED:
        if not inspector.has_table(name):
            continue
        present = {column["name"] for column in inspector.get_columns(name)}
        if present != set(Base.metadata.tables[name].columns.keys()):
            Base.metadata.tables[name].drop(connection)


def _add_missing_columns(connection: Connection) -> None:
    inspector = inspect(connection)
    for table in Base.metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:
                raise RuntimeError(f"table {table.name} lacks the required column {column.name}; migrate it by hand")
            column_type = column.type.compile(dialect=connection.dialect)
            connection.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {column_type}'))
        for index in table.indexes:
            index.create(connection, checkfirst=True)
