"""Retention: when an account was closed, the account of an outbox message, and the indexes the purge reaches them by.

Revision 0004, after 0003. Accounts already at a zero balance and zero overdue are taken as closed
from the moment of this upgrade: their retention is counted from the upgrade, never from before it.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_chats_account_pk", "chats", ["account_pk"])
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("account_pk", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_outbox_account_pk", "accounts", ["account_pk"], ["id"])
        batch.create_index("ix_outbox_account_created", ["account_pk", "created_at"])
    accounts = sa.table(
        "accounts",
        sa.column("closed_at", sa.DateTime(timezone=True)),
        sa.column("statement_balance", sa.String()),
        sa.column("overdue_amount", sa.String()),
    )
    # amounts are NUMERIC on PostgreSQL and canonical text ("0.00") on SQLite: compared as numbers
    zero = sa.and_(
        sa.cast(accounts.c.statement_balance, sa.Numeric()) == 0, sa.cast(accounts.c.overdue_amount, sa.Numeric()) == 0
    )
    op.get_bind().execute(sa.update(accounts).where(zero).values(closed_at=datetime.now(timezone.utc)))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_account_created")
        batch.drop_constraint("fk_outbox_account_pk", type_="foreignkey")
        batch.drop_column("account_pk")
    op.drop_index("ix_chats_account_pk", table_name="chats")
    op.drop_column("accounts", "closed_at")
