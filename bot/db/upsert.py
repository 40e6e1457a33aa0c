"""`INSERT ... ON CONFLICT` for the backend in use: both SQLite and PostgreSQL speak it."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_for(session: AsyncSession):  # type: ignore[no-untyped-def]
    """The dialect's `insert` construct, which has `on_conflict_do_update` / `_do_nothing`."""
    return postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert
