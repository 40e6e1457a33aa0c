"""The database's schema, kept by Alembic revisions (bot/db/migrations/versions/0001_..., 0002_...).

`python -m bot migrate` brings a database to the newest revision (the head); every other command
only checks that the database is there already (`require_current_schema`) and otherwise stops
with one line saying what to run.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db.engine import create_engine
from bot.db.types import Money, PeopleText, UTCDateTime

MIGRATIONS = Path(__file__).with_name("migrations")
FIRST_REVISION = "0001"
"""The schema the last version before migrations made with `create_all`: such a database is adopted as this."""
MIGRATE = "`python -m bot migrate`"

logging.getLogger("alembic").setLevel(logging.WARNING)  # `migrate` says in one line what it did


class SchemaError(Exception):
    """The database's schema is not the one this version of the bot works with; the message says what to do."""


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, made here rather than read from an alembic.ini; env.py uses `connection`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    revision = _scripts().get_current_head()
    assert revision is not None, "bot/db/migrations/versions has no revision"
    return revision


@functools.cache
def known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _scripts().walk_revisions())


def first_schema() -> MetaData:
    """The tables of revision 0001, as that revision's file describes them."""
    return _scripts().get_revision(FIRST_REVISION).module.first_schema()


def context_options() -> dict[str, Any]:
    """How migrations run and how a database is compared with a schema (also by autogenerate).

    Batch mode lets SQLite, which alters little in place, rebuild a table to change it. Types and
    server defaults are compared too (the bot's columns have none; a migration adding one is checked).
    """
    return {"render_as_batch": True, "compare_type": True, "compare_server_default": True, "render_item": _render_item}


def _render_item(kind: str, item: Any, _context: AutogenContext) -> str | bool:
    """The bot's column types, written into a new revision as plain SQLAlchemy types: a revision
    must not import bot/db/types.py, which may change after the revision was written."""
    if kind != "type":
        return False
    if isinstance(item, Money):
        return 'sa.String(40).with_variant(sa.Numeric(24, 8), "postgresql")'
    if isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if isinstance(item, PeopleText):
        return "sa.Text()"
    return False


def _revision_of(connection: Connection) -> tuple[str | None, bool]:
    """The database's revision, and whether it holds tables of the bot (made before migrations, if no revision)."""
    revision = MigrationContext.configure(connection).get_current_revision()
    tables = set(inspect(connection).get_table_names()) & set(first_schema().tables)
    return revision, bool(tables)


def schema_problem(revision: str | None, has_tables: bool) -> str | None:
    """What keeps this version of the bot from working with a database at `revision`, in one line."""
    newest = head()
    if revision is None and has_tables:
        return f"the database's tables were made by a version of the bot before migrations: back it up and run {MIGRATE}"
    if revision is None:
        return f"the database has no schema yet: run {MIGRATE}"
    if revision not in known_revisions():
        return f"the database is at revision {revision}, newer than this version of the bot (head {newest}): upgrade the bot"
    if revision != newest:
        return f"the database is at revision {revision}, older than this version of the bot (head {newest}): back it up and run {MIGRATE}"
    return None


async def require_current_schema(engine: AsyncEngine) -> None:
    """Raise `SchemaError` unless the database is at this version's head revision."""
    async with engine.connect() as connection:
        revision, has_tables = await connection.run_sync(_revision_of)
    problem = schema_problem(revision, has_tables)
    if problem:
        raise SchemaError(problem)


MIGRATION_LOCK = 7301
"""The PostgreSQL advisory lock a migration holds."""


async def migrate(database_url: str) -> str:
    """Bring the database to the head revision; one line saying from which revision to which.

    A database the last version before migrations made (its tables, no revision) is compared with
    revision 0001 and, when it matches, marked as being at 0001 before the upgrade: no row is lost.
    """
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            if engine.dialect.name == "sqlite":  # a batch rebuild of a table must not touch the rows referring to it
                await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                await connection.commit()
            else:  # two runs at once (processes deployed together) take turns; the lock ends with the transaction
                await connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            line = await connection.run_sync(_migrate)
            await connection.commit()
        return line
    finally:
        await engine.dispose()


def _migrate(connection: Connection) -> str:
    revision, has_tables = _revision_of(connection)
    newest = head()
    config = alembic_config(connection)
    adopted = ""
    if revision is None and has_tables:
        _require_first_schema(connection)
        command.stamp(config, FIRST_REVISION)
        revision, adopted = FIRST_REVISION, f"adopted the tables made before migrations as revision {FIRST_REVISION}; "
    elif revision is not None and revision not in known_revisions():
        raise SchemaError(schema_problem(revision, has_tables))
    if revision == newest:
        return f"{adopted}the database is at revision {newest} (head): nothing to migrate"
    command.upgrade(config, "head")
    return f"{adopted}migrated the database from {revision or 'no schema'} to revision {newest} (head)"


def schema_differences(connection: Connection, schema: MetaData) -> list[str]:
    """How the database's tables differ from `schema`, one phrase each (empty when they match)."""
    context = MigrationContext.configure(connection, opts=context_options())
    return [_describe(difference) for difference in compare_metadata(context, schema)]


def _require_first_schema(connection: Connection) -> None:
    differences = schema_differences(connection, first_schema())
    if differences:
        shown = "; ".join(differences[:5]) + (f"; and {len(differences) - 5} more" if len(differences) > 5 else "")
        raise SchemaError(
            f"the database's tables differ from revision {FIRST_REVISION} ({shown}), so they cannot be adopted: "
            f"start the last version of the bot before migrations once (it brings its tables up to date) or restore a backup, "
            f"then run {MIGRATE} again"
        )


_WORDS = {"add": "missing", "remove": "unexpected", "modify": "different"}


def _describe(difference: Any) -> str:
    """One of compare_metadata's differences, e.g. "missing column accounts.phone"."""
    if isinstance(difference, list):  # a column's changes: [("modify_type", schema, table, column, ...), ...]
        kind, _schema, table, column = difference[0][:4]
        what = kind.split("_", 1)[1].replace("default", "server default")
        return f"{_WORDS['modify']} {what} of {table}.{column}"
    kind, *objects = difference
    verb, _, what = kind.partition("_")
    if len(objects) == 1 and hasattr(objects[0], "table"):  # an index or a constraint: its table and its name
        item = objects[0]
        names = [item.table.name, item.name or ",".join(column.name for column in item.columns)]
    else:  # a table, or a column: (schema, table, column)
        names = [getattr(item, "name", item) for item in objects if item is not None]
    return f"{_WORDS.get(verb, verb)} {what} {'.'.join(str(name) for name in names)}"
