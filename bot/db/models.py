"""What the bot keeps, and the invariants the database enforces."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.db.types import Money, PeopleText, UTCDateTime


class Base(DeclarativeBase):
    pass


class Account(Base):
    """A delinquent card account as the bank's system exported it."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(20), index=True)
    birth_date: Mapped[date] = mapped_column(Date)
    card_last4: Mapped[str] = mapped_column(String(4))
    currency: Mapped[str] = mapped_column(String(3))
    statement_balance: Mapped[Decimal] = mapped_column(Money)
    overdue_amount: Mapped[Decimal] = mapped_column(Money)
    minimum_due: Mapped[Decimal] = mapped_column(Money)
    days_past_due: Mapped[int] = mapped_column(Integer)
    late_fee: Mapped[Decimal] = mapped_column(Money)
    daily_interest_rate: Mapped[Decimal] = mapped_column(Money)
    locale: Mapped[str] = mapped_column(String(10))
    timezone: Mapped[str] = mapped_column(String(64))
    jurisdiction: Mapped[str | None] = mapped_column(String(8), nullable=True)
    """Whose rules apply (ISO 3166-1 alpha-2, or a subdivision such as US-CA); None: the policy's
    default for the account's currency."""
    balance_version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payment_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    """When an import (of accounts or payments) first brought both the balance and the overdue amount
    to zero; cleared when either is owed again. Retention is counted from it (`bot.services.retention`)."""
    contact_flag: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """A special situation an agent recorded (`bot.services.contact.FLAGS`): the bank starts no
    message to the account, and whatever its cardholder writes goes to a person."""
    contact_flagged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class VerificationLock(Base):
    """Failed verification attempts for one phone number, counted across every chat.

    Keyed by the phone the person claimed, not by account, so that a phone that is not on file
    is counted and locked exactly like one that is: the lockout reveals nothing. The key is the
    phone's keyed hash (`bot.domain.phones.phone_digest`): the numbers people tried are not kept.
    """

    __tablename__ = "verification_locks"

    phone_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ChatProfile(Base):
    """A private chat: its chosen language and the account it is verified for, if any."""

    __tablename__ = "chats"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger)
    locale: Mapped[str | None] = mapped_column(String(10), nullable=True)
    account_pk: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), nullable=True, index=True)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class FsmRecord(Base):
    """aiogram FSM state and data for one storage key, so a restart resumes the same step."""

    __tablename__ = "fsm_records"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(255), nullable=True)
    data: Mapped[str] = mapped_column(Text, default="{}")


class AuditEvent(Base):
    """Append-only record of every inbound and outbound message and every decision (masked)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_account_at", "account_pk", "at"),
        Index("ux_audit_update", "update_id", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    direction: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(40))
    chat_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    account_pk: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
    payload: Mapped[str] = mapped_column(PeopleText, default="")
    update_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    """Telegram's id of the update an inbound event records: an update is handled once."""


class Offer(Base):
    """Something proposed to a cardholder, exactly as computed: what an Accept button points to.

    `terms` holds the calculator's inputs and `figures` its outputs (JSON, amounts as strings), so
    the offer can be recomputed and checked when it is accepted, and explained later.
    """

    __tablename__ = "offers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_pk: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    terms: Mapped[str] = mapped_column(Text)
    figures: Mapped[str] = mapped_column(Text)
    policy_version: Mapped[str] = mapped_column(String(40))
    balance_version: Mapped[int] = mapped_column(Integer)
    made_by: Mapped[str] = mapped_column(String(40))
    chat_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Arrangement(Base):
    """An accepted offer: a plan, a promise to pay, or a commitment to pay in full or bring current."""

    __tablename__ = "arrangements"
    __table_args__ = (
        Index(
            "uq_one_active_arrangement",
            "account_pk",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_pk: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[Decimal] = mapped_column(Money)
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    chat_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    agreement: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The written terms of a hardship plan, exactly as the cardholder received them."""


class Installment(Base):
    """One dated payment of an arrangement (a promise or a pay-in-full has exactly one)."""

    __tablename__ = "installments"
    __table_args__ = (UniqueConstraint("arrangement_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    arrangement_id: Mapped[int] = mapped_column(ForeignKey("arrangements.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    due_date: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Money)
    principal: Mapped[Decimal] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money)
    paid: Mapped[Decimal] = mapped_column(Money)


class Payment(Base):
    """A payment the bank's system posted; the reference makes importing it twice harmless."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_pk: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Case(Base):
    """A conversation handed to the agents: one forum topic, one open case per account (or chat)."""

    __tablename__ = "cases"
    __table_args__ = (
        Index(
            "uq_one_open_case_per_chat",
            "chat_id",
            unique=True,
            sqlite_where=text("status != 'resolved'"),
            postgresql_where=text("status != 'resolved'"),
        ),
        Index(
            "uq_one_open_case_per_account",
            "account_pk",
            unique=True,
            sqlite_where=text("status != 'resolved' AND account_pk IS NOT NULL"),
            postgresql_where=text("status != 'resolved' AND account_pk IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    account_pk: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
    verified: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str] = mapped_column(String(32))
    locale: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    topic_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    card_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    topic_tried_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    """When the topic was last asked for: a case without one gets it from the courier later."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    announced_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(200), nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)


class CaseEvent(Base):
    """The case's record: every trigger, relay, note, claim, offer, resolution and rating."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(PeopleText, default="")


class Relay(Base):
    """A message carried between the cardholder's chat and the case topic.

    Written before it is sent and marked when Telegram accepts it; the unique source makes a
    retried or replayed relay go out at most once.
    """

    __tablename__ = "relays"
    __table_args__ = (UniqueConstraint("source_chat_id", "source_message_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    direction: Mapped[str] = mapped_column(String(16))
    source_chat_id: Mapped[int] = mapped_column(BigInteger)
    source_message_id: Mapped[int] = mapped_column(BigInteger)
    target_chat_id: Mapped[int] = mapped_column(BigInteger)
    target_thread_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    target_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", name="fk_relays_contact"), nullable=True)
    """The record of a message the bank started (an agent's message after the cardholder went quiet)."""
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    """A held relay (status "held") goes at this moment, when the contact rules allow it."""
    text_out: Mapped[str | None] = mapped_column(Text, nullable=True)
    """What the cardholder gets instead of a plain copy (the agent's words with the opt-out notice,
    HTML); cleared once sent."""
    text_out_as: Mapped[str | None] = mapped_column(String(8), nullable=True)
    """"text": `text_out` is sent as a message; "caption": the media is copied with it as caption."""


class OutboxMessage(Base):
    """A message the bot must send, recorded in the transaction that made it due.

    Sent right after that commit and marked sent; one left unsent (a crash, Telegram down) is sent
    by the courier later. `key` names what the message is for, so it is recorded once.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_account_created", "account_pk", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    account_pk: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
    """The account of the update that recorded it, like the audit trail's."""
    text: Mapped[str] = mapped_column(Text)
    reply_markup: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", name="fk_outbox_contact"), nullable=True)
    """The record of a message the bank started; such a message is decided again when it is sent."""
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    """Not sent before this moment (a message held for the cardholder's contact hours or caps)."""
    withheld: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """Why it will never be sent (the cardholder opted out, the account is flagged, ...)."""


class Contact(Base):
    """A message the bank started in a cardholder's chat, as the contact gate decided it.

    Replies to what the cardholder just wrote are not recorded here. The caps count these rows:
    sent, and held to go at `due_at` (so a held message is promised a moment the caps allow).
    """

    __tablename__ = "contacts"
    __table_args__ = (
        Index("ix_contacts_account_due", "account_pk", "due_at"),
        Index("ix_contacts_chat_due", "chat_id", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    account_pk: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), nullable=True)
    purpose: Mapped[str] = mapped_column(String(16))
    """"collection" (paused by a dispute or a hardship agreement) or "service" (a rating prompt)."""
    status: Mapped[str] = mapped_column(String(16))
    """"sent", "held", "withheld" (it will not go) or "undelivered" (Telegram refused it)."""
    reason: Mapped[str] = mapped_column(String(32))
    """Why it was held or withheld, or "allowed"."""
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    """When it went, or is to go."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class JobLease(Base):
    """Which process runs a background job (the courier, the desk's watch) until `expires_at`.

    Taken and renewed with one conditional upsert (`bot.leases.Lease`): with several bot processes
    on one database each job runs in one of them, and another takes it over once a holder that
    died lets it expire.
    """

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(120))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
