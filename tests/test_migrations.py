"""The migrations (bot/db/migrations) against the models, start-up's checks, and adopting a database
made before migrations."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import text

from bot.app import create_app
from bot.db import create_engine
from bot.db.models import Base
from bot.db.schema import (
    FIRST_REVISION, SchemaError, alembic_config, first_schema, head, migrate, require_current_schema, schema_differences,
)
from bot.settings import load_settings
from tests.conftest import BOT_TOKEN
from tests.test_settings_and_cli import run_cli


async def differences_from(url: str, schema: sa.MetaData) -> list[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(schema_differences, schema)
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}"
    return request.getfixturevalue("empty_postgres_url")


async def test_the_migrations_make_exactly_the_models_schema(empty_url: str) -> None:
    """Fails when a model changed without a migration (or a migration without the model): run
    `python -m bot.db.migrations "what changed"` and review the revision it writes."""
    assert await migrate(empty_url) == f"migrated the database from no schema to revision {head()} (head)"
    assert await differences_from(empty_url, Base.metadata) == []
    assert await migrate(empty_url) == f"the database is at revision {head()} (head): nothing to migrate"


def changed_models() -> sa.MetaData:
    """The models with a column added, a length and a server default changed, the update_id's unique index gone, a unique
    constraint and a foreign key added."""
    changed = sa.MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["accounts"].append_column(sa.Column("nickname", sa.String(40), nullable=True))
    changed.tables["fsm_records"].c.state.type = sa.String(300)
    changed.tables["relays"].c.attempts.server_default = sa.DefaultClause(sa.text("0"))
    audit = changed.tables["audit_events"]
    audit.indexes.discard(next(index for index in audit.indexes if index.name == "ux_audit_update"))
    changed.tables["outbox"].append_constraint(sa.UniqueConstraint("chat_id", name="uq_outbox_chat"))
    changed.tables["offers"].append_constraint(sa.ForeignKeyConstraint(["chat_id"], ["chats.chat_id"]))
    return changed


@pytest.fixture(params=["database_url", "postgres_url"], ids=["sqlite", "postgresql"])
def migrated_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(request.param)


async def test_the_comparison_sees_columns_types_indexes_constraints_and_foreign_keys(migrated_url: str) -> None:
    assert sorted(await differences_from(migrated_url, changed_models())) == [
        "different server default of relays.attempts",
        "different type of fsm_records.state",
        "missing column accounts.nickname",
        "missing constraint outbox.uq_outbox_chat",
        "missing fk offers.chat_id",
        "unexpected index audit_events.ux_audit_update",
    ]


async def test_the_first_revision_describes_itself_as_its_upgrade_makes_it(empty_url: str) -> None:
    """`first_schema()` is what a database made before migrations is compared with: it must be what 0001 makes."""
    engine = create_engine(empty_url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), FIRST_REVISION))
            await connection.commit()
    finally:
        await engine.dispose()
    assert await differences_from(empty_url, first_schema()) == []


def bot_settings(url: str):  # type: ignore[no-untyped-def]
    return load_settings(_env_file=None, bot_token=BOT_TOKEN, database_url=url)


async def test_start_up_refuses_a_database_without_a_schema(tmp_path: Path) -> None:
    with pytest.raises(SchemaError) as refused:
        await create_app(bot_settings(f"sqlite+aiosqlite:///{tmp_path / 'new.sqlite3'}"))
    assert str(refused.value) == "the database has no schema yet: run `python -m bot migrate`"


async def test_start_up_refuses_a_database_newer_than_the_bot(database_url: str) -> None:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    await engine.dispose()
    with pytest.raises(SchemaError) as refused:
        await create_app(bot_settings(database_url))
    assert str(refused.value) == (
        f"the database is at revision 0099, newer than this version of the bot (head {head()}): upgrade the bot"
    )


@pytest.mark.slow  # a whole process or a crowd: `make test-slow`
def test_run_refuses_an_unmigrated_database_in_one_line(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'new.sqlite3'}", "BOT_TOKEN": BOT_TOKEN}
    result = run_cli("run", env=env, cwd=tmp_path)
    assert (result.returncode, result.stderr) == (2, "error: the database has no schema yet: run `python -m bot migrate`\n")


async def made_before_migrations(url: str) -> None:
    """A database as the last version before migrations left it: its tables (create_all), some rows, no revision."""
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(first_schema().create_all)
        await connection.execute(text(
            "INSERT INTO accounts (id, account_id, full_name, phone, birth_date, card_last4, currency, statement_balance, "
            "overdue_amount, minimum_due, days_past_due, late_fee, daily_interest_rate, locale, timezone, balance_version, "
            "updated_at) VALUES (7, 'ACC-7', 'Ann Lee', '+14155550199', '1980-01-02', '1111', 'USD', '1000.00', '500.00', "
            "'50.00', 40, '35.00', '0.0005', 'en', 'UTC', 3, '2026-01-01 00:00:00+00:00')"
        ))
        await connection.execute(text(
            "INSERT INTO chats (chat_id, user_id, account_pk, last_seen_at) VALUES (42, 42, 7, '2026-01-01 00:00:00+00:00')"
        ))
    await engine.dispose()


async def test_a_database_made_before_migrations_is_refused_then_adopted_with_its_rows(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}"
    await made_before_migrations(url)
    with pytest.raises(SchemaError, match="made by a version of the bot before migrations: back it up and run"):
        await create_app(bot_settings(url))

    result = run_cli("migrate", env={"DATABASE_URL": url}, cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith(f"adopted the tables made before migrations as revision {FIRST_REVISION}; ")
    assert result.stdout.endswith(f"revision {head()} (head){'' if head() != FIRST_REVISION else ': nothing to migrate'}\n")
    assert result.stdout.count("\n") == 1

    engine = create_engine(url)
    try:
        await require_current_schema(engine)
        async with engine.connect() as connection:
            accounts = (
                await connection.execute(text("SELECT id, account_id, balance_version, jurisdiction FROM accounts"))
            ).all()
            chats = (await connection.execute(text("SELECT chat_id, account_pk FROM chats"))).all()
    finally:
        await engine.dispose()
    assert (accounts, chats) == ([(7, "ACC-7", 3, None)], [(42, 7)])  # an account from before has no jurisdiction


async def test_a_database_made_before_migrations_is_adopted_on_postgresql(empty_postgres_url: str) -> None:
    await made_before_migrations(empty_postgres_url)
    assert (await migrate(empty_postgres_url)).startswith(f"adopted the tables made before migrations as revision {FIRST_REVISION}; ")
    engine = create_engine(empty_postgres_url)
    try:
        await require_current_schema(engine)
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT account_id, statement_balance, jurisdiction FROM accounts"))).all() == [
                ("ACC-7", 1000, None)
            ]
    finally:
        await engine.dispose()


async def test_tables_that_differ_from_the_first_revision_are_not_adopted(tmp_path: Path) -> None:
    """An older lock table (keyed by the phone itself, as long ago) and nothing else of the first schema."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'older.sqlite3'}"
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(first_schema().create_all)
        await connection.execute(text("DROP TABLE verification_locks"))
        await connection.execute(text(
            "CREATE TABLE verification_locks (phone VARCHAR(20) PRIMARY KEY, failures INTEGER NOT NULL, "
            "locked_until TIMESTAMP, updated_at TIMESTAMP NOT NULL)"
        ))
    await engine.dispose()
    with pytest.raises(SchemaError) as refused:
        await migrate(url)
    assert "\n" not in str(refused.value)
    assert str(refused.value).startswith("the database's tables differ from revision 0001 (")
    for difference in (
        "missing column verification_locks.phone_hash",
        "different type of verification_locks.locked_until",  # TIMESTAMP, not DATETIME
    ):
        assert difference in str(refused.value)
    assert re.search(r"unexpected column verification_locks\.phone[;)]", str(refused.value))
    assert str(refused.value).endswith("then run `python -m bot migrate` again")


async def test_a_database_at_an_older_revision_is_refused_then_migrated_with_its_rows(empty_url: str) -> None:
    engine = create_engine(empty_url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), FIRST_REVISION))
            await connection.execute(text(
                "INSERT INTO chats (chat_id, user_id, locale, last_seen_at) VALUES (42, 42, 'ru', '2026-01-01 00:00:00+00:00')"
            ))
            await connection.commit()
        with pytest.raises(SchemaError) as refused:
            await require_current_schema(engine)
    finally:
        await engine.dispose()
    assert str(refused.value) == (
        f"the database is at revision {FIRST_REVISION}, older than this version of the bot (head {head()}): "
        "back it up and run `python -m bot migrate`"
    )
    assert await migrate(empty_url) == f"migrated the database from {FIRST_REVISION} to revision {head()} (head)"
    engine = create_engine(empty_url)
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT chat_id, locale FROM chats"))).all() == [(42, "ru")]
            assert (await connection.execute(text("SELECT count(*) FROM job_leases"))).scalar_one() == 0
    finally:
        await engine.dispose()


async def test_migrations_run_at_once_on_postgresql_take_turns(empty_postgres_url: str) -> None:
    """Processes deployed together, each migrating first, on one new PostgreSQL database."""
    lines = await asyncio.gather(*(migrate(empty_postgres_url) for _ in range(3)))
    assert sorted(lines) == [
        f"migrated the database from no schema to revision {head()} (head)",
        *[f"the database is at revision {head()} (head): nothing to migrate"] * 2,
    ]
