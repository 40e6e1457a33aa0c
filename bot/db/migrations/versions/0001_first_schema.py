"""The first schema: the tables the last version before migrations made with `create_all`.

Revision 0001, the first. `first_schema()` is also what a database made before migrations is
compared with before it is adopted (bot/db/schema.py), so it must stay exactly as it is. The
bot's column types are written as plain SQLAlchemy types: Money is text on SQLite and
NUMERIC(24, 8) on PostgreSQL, UTCDateTime is a timestamp with a time zone, PeopleText is text.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _money() -> sa.types.TypeEngine:
    return sa.String(40).with_variant(sa.Numeric(24, 8), "postgresql")


def _at() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def first_schema() -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table(
        "accounts", metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False, unique=True),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("phone", sa.String(20), nullable=False, index=True),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("card_last4", sa.String(4), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("statement_balance", _money(), nullable=False),
        sa.Column("overdue_amount", _money(), nullable=False),
        sa.Column("minimum_due", _money(), nullable=False),
        sa.Column("days_past_due", sa.Integer(), nullable=False),
        sa.Column("late_fee", _money(), nullable=False),
        sa.Column("daily_interest_rate", _money(), nullable=False),
        sa.Column("locale", sa.String(10), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("balance_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", _at(), nullable=False),
        sa.Column("payment_claimed_at", _at(), nullable=True),
    )
    sa.Table(
        "verification_locks", metadata,
        sa.Column("phone_hash", sa.String(64), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", _at(), nullable=True),
        sa.Column("updated_at", _at(), nullable=False),
    )
    sa.Table(
        "chats", metadata,
        sa.Column("chat_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("locale", sa.String(10), nullable=True),
        sa.Column("account_pk", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("verified_at", _at(), nullable=True),
        sa.Column("last_seen_at", _at(), nullable=False),
        sa.Column("opted_out_at", _at(), nullable=True),
    )
    sa.Table(
        "fsm_records", metadata,
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("state", sa.String(255), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
    )
    sa.Table(
        "audit_events", metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", _at(), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("account_pk", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=True),
        sa.Index("ix_audit_account_at", "account_pk", "at"),
        sa.Index("ux_audit_update", "update_id", unique=True),
    )
    sa.Table(
        "offers", metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_pk", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("figures", sa.Text(), nullable=False),
        sa.Column("policy_version", sa.String(40), nullable=False),
        sa.Column("balance_version", sa.Integer(), nullable=False),
        sa.Column("made_by", sa.String(40), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", _at(), nullable=False),
        sa.Column("expires_at", _at(), nullable=False),
    )
    sa.Table(
        "arrangements", metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_pk", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False, index=True),
        sa.Column("offer_id", sa.Integer(), sa.ForeignKey("offers.id"), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("total", _money(), nullable=False),
        sa.Column("accepted_at", _at(), nullable=False),
        sa.Column("ended_at", _at(), nullable=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("agreement", sa.Text(), nullable=True),
        sa.Index(
            "uq_one_active_arrangement", "account_pk", unique=True,
            sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"),
        ),
    )
    sa.Table(
        "installments", metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("arrangement_id", sa.Integer(), sa.ForeignKey("arrangements.id"), nullable=False, index=True),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("amount", _money(), nullable=False),
        sa.Column("principal", _money(), nullable=False),
        sa.Column("fee", _money(), nullable=False),
        sa.Column("paid", _money(), nullable=False),
        sa.UniqueConstraint("arrangement_id", "number"),
    )
    sa.Table(
        "payments", metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_pk", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False, index=True),
        sa.Column("amount", _money(), nullable=False),
        sa.Column("paid_at", _at(), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False, unique=True),
        sa.Column("imported_at", _at(), nullable=False),
    )
    sa.Table(
        "cases", metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("account_pk", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("locale", sa.String(10), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=True),
        sa.Column("topic_id", sa.BigInteger(), nullable=True),
        sa.Column("card_message_id", sa.BigInteger(), nullable=True),
        sa.Column("topic_tried_at", _at(), nullable=True),
        sa.Column("created_at", _at(), nullable=False),
        sa.Column("announced_at", _at(), nullable=False),
        sa.Column("claimed_at", _at(), nullable=True),
        sa.Column("resolved_at", _at(), nullable=True),
        sa.Column("outcome", sa.String(200), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Index(
            "uq_one_open_case_per_chat", "chat_id", unique=True,
            sqlite_where=sa.text("status != 'resolved'"), postgresql_where=sa.text("status != 'resolved'"),
        ),
        sa.Index(
            "uq_one_open_case_per_account", "account_pk", unique=True,
            sqlite_where=sa.text("status != 'resolved' AND account_pk IS NOT NULL"),
            postgresql_where=sa.text("status != 'resolved' AND account_pk IS NOT NULL"),
        ),
    )
    sa.Table(
        "case_events", metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False, index=True),
        sa.Column("at", _at(), nullable=False),
        sa.Column("actor", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
    )
    sa.Table(
        "relays", metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False, index=True),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("source_chat_id", sa.BigInteger(), nullable=False),
        sa.Column("source_message_id", sa.BigInteger(), nullable=False),
        sa.Column("target_chat_id", sa.BigInteger(), nullable=False),
        sa.Column("target_thread_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("target_message_id", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", _at(), nullable=False),
        sa.Column("sent_at", _at(), nullable=True),
        sa.UniqueConstraint("source_chat_id", "source_message_id"),
    )
    sa.Table(
        "outbox", metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(80), nullable=False, unique=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("reply_markup", sa.Text(), nullable=True),
        sa.Column("created_at", _at(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", _at(), nullable=True, index=True),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    return metadata


def upgrade() -> None:
    first_schema().create_all(op.get_bind())


def downgrade() -> None:
    first_schema().drop_all(op.get_bind())
