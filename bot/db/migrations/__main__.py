"""`python -m bot.db.migrations "what it changes"`: write the next revision (0002_..., 0003_...).

Alembic's autogenerate compares a scratch SQLite database, migrated to the current head, with the
models (bot/db/models.py) and writes what differs into versions/NNNN_what_it_changes.py. Read it
before committing it: autogenerate sees no renames, and a partial index's WHERE only as you wrote it.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import Connection

from bot.db.engine import create_engine
from bot.db.schema import alembic_config, head, migrate


def _write_revision(connection: Connection, message: str) -> str:
    number = f"{int(head()) + 1:04d}"
    script = command.revision(alembic_config(connection), message, autogenerate=True, rev_id=number)
    assert script is not None and not isinstance(script, list)
    return script.path


async def main(message: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'scratch.sqlite3'}"
        await migrate(url)
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(_write_revision, message)
        finally:
            await engine.dispose()


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].strip():
        sys.exit('usage: python -m bot.db.migrations "what the revision changes"')
    print(f"wrote {asyncio.run(main(sys.argv[1]))}")
