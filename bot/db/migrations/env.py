"""Run by Alembic for every command; the bot hands it an open connection (bot/db/schema.py)."""

from __future__ import annotations

from alembic import context

from bot.db.models import Base
from bot.db.schema import context_options

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("run the migrations through `python -m bot migrate` (or `python -m bot.db.migrations` to add one)")
context.configure(connection=connection, target_metadata=Base.metadata, **context_options())
with context.begin_transaction():
    context.run_migrations()
