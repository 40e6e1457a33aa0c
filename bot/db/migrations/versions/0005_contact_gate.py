"""The contact gate: the record of messages the bank starts, account flags, held messages.

Revision 0005, after 0004. `contacts` holds every message the bank started in a cardholder's chat
(sent, held or withheld), which the caps count; an outbox message or a relay may wait for a
moment (`not_before`) and point to its contact; an account may carry a special-situation flag.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _at() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("account_pk", sa.Integer(), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("due_at", _at(), nullable=False),
        sa.Column("created_at", _at(), nullable=False),
        sa.ForeignKeyConstraint(["account_pk"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("contacts") as batch_op:
        batch_op.create_index("ix_contacts_account_due", ["account_pk", "due_at"], unique=False)
        batch_op.create_index("ix_contacts_chat_due", ["chat_id", "due_at"], unique=False)
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.add_column(sa.Column("contact_flag", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("contact_flagged_at", _at(), nullable=True))
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("contact_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("not_before", _at(), nullable=True))
        batch_op.add_column(sa.Column("withheld", sa.String(length=32), nullable=True))
        batch_op.create_foreign_key("fk_outbox_contact", "contacts", ["contact_id"], ["id"])
    with op.batch_alter_table("relays") as batch_op:
        batch_op.add_column(sa.Column("contact_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("not_before", _at(), nullable=True))
        batch_op.add_column(sa.Column("text_out", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("text_out_as", sa.String(length=8), nullable=True))
        batch_op.create_foreign_key("fk_relays_contact", "contacts", ["contact_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("relays") as batch_op:
        batch_op.drop_constraint("fk_relays_contact", type_="foreignkey")
        batch_op.drop_column("text_out_as")
        batch_op.drop_column("text_out")
        batch_op.drop_column("not_before")
        batch_op.drop_column("contact_id")
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_constraint("fk_outbox_contact", type_="foreignkey")
        batch_op.drop_column("withheld")
        batch_op.drop_column("not_before")
        batch_op.drop_column("contact_id")
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.drop_column("contact_flagged_at")
        batch_op.drop_column("contact_flag")
    op.drop_table("contacts")
