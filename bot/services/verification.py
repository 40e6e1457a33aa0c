"""Proving who the cardholder is: phone from their own contact, then the birth date.

Failures are counted per phone across every chat and never say which part was wrong, so the
bot cannot be used to find out whether a phone number is on file.

The phone itself is not kept between the two steps: the contact step leaves a `PhoneClaim` (the
phone's keyed hash and the accounts on file for it) in the chat's FSM data, and the lock table is
keyed by the same hash.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Integer, and_, bindparam, case, null, select, type_coerce, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Account, Case, ChatProfile, FsmRecord, VerificationLock
from bot.db.types import UTCDateTime
from bot.db.unit_of_work import unit_of
from bot.domain.phones import phone_digest
from bot.services.cases import OPEN


@dataclass(frozen=True)
class VerificationRules:
    max_attempts: int
    lock_minutes: int
    idle_minutes: int
    phone_key: bytes
    """The key of the phones' keyed hashes (`Settings.hash_key`)."""


@dataclass(frozen=True)
class PhoneClaim:
    """A shared phone as verification remembers it until the birth date comes: never the number."""

    phone_hash: str
    accounts: tuple[int, ...]
    """The accounts on file for the phone when it was shared (often none)."""

    def as_data(self) -> dict[str, Any]:
        return {"phone_hash": self.phone_hash, "accounts": list(self.accounts)}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PhoneClaim | None:
        """The claim kept in FSM data, or None when there is none (or an older version kept another)."""
        phone_hash, accounts = data.get("phone_hash"), data.get("accounts")
        if not isinstance(phone_hash, str) or not isinstance(accounts, list):
            return None
        return cls(phone_hash, tuple(int(pk) for pk in accounts))


@dataclass(frozen=True)
class SharedPhone:
    """The contact step's answer: the claim to keep, and until when the phone is locked out (if it is)."""

    claim: PhoneClaim
    locked_until: datetime | None


class Outcome(enum.Enum):
    VERIFIED = "verified"
    MISMATCH = "mismatch"
    LOCKED = "locked"


@dataclass(frozen=True)
class VerificationResult:
    outcome: Outcome
    account: Account | None = None
    attempts_left: int = 0
    locked_until: datetime | None = None


@dataclass(frozen=True)
class ChatSession:
    """Who is talking in this chat, as far as the bot knows."""

    profile: ChatProfile
    account: Account | None
    expired: bool = False
    """True once, on the update that found a verified session idle for too long and closed it."""
    open_case: Case | None = None
    """The chat's case while it is with the agents (waiting or claimed)."""


LAST_SEEN_STEP = timedelta(minutes=1)
"""A chat's activity is recorded to the minute: not every message needs a write for it."""


class VerificationService:
    def __init__(self, session: AsyncSession, rules: VerificationRules, clock: Clock) -> None:
        self.session = session
        self.rules = rules
        self.clock = clock

    async def open_chat(self, chat_id: int, user_id: int, fsm_key: str | None = None) -> ChatSession:
        """Load the chat, its account, its open case and (given its key) its FSM record in one
        query, close a verified session that sat idle too long, and mark activity."""
        now = self.clock.now()
        query = (
            select(ChatProfile, Account, Case)
            .outerjoin(Account, Account.id == ChatProfile.account_pk)
            .outerjoin(Case, and_(Case.chat_id == ChatProfile.chat_id, Case.status.in_(OPEN)))
            .where(ChatProfile.chat_id == chat_id)
            .limit(1)
        )
        unit = unit_of(self.session)
        if fsm_key is not None and unit is not None:
            query = query.add_columns(FsmRecord.key, FsmRecord.state, FsmRecord.data).outerjoin(
                FsmRecord, FsmRecord.key == fsm_key
            )
        else:
            fsm_key = None
        row = (await self.session.execute(query)).first()
        if row is not None and fsm_key is not None and unit is not None:
            unit.loaded_fsm(fsm_key, row.state, row.data if row.key is not None else None)
        profile, account, open_case = row[:3] if row is not None else (None, None, None)
        if profile is None:
            profile = ChatProfile(chat_id=chat_id, user_id=user_id, last_seen_at=now)
            self.session.add(profile)
            return ChatSession(profile=profile, account=None)
        expired = False
        if profile.account_pk is not None and now - profile.last_seen_at > timedelta(minutes=self.rules.idle_minutes):
            profile.account_pk = None
            profile.verified_at = None
            expired = True
        if profile.user_id != user_id:
            profile.account_pk = None
            profile.user_id = user_id
        if expired or now - profile.last_seen_at >= LAST_SEEN_STEP:
            profile.last_seen_at = now
        if profile.account_pk is None:
            account = None
        return ChatSession(profile=profile, account=account, expired=expired, open_case=open_case)

    async def claim_phone(self, phone: str) -> SharedPhone:
        """What the contact step leaves for the birth-date step, for a phone in E.164, and whether
        the phone is locked out: one statement, the accounts on file and the lock together."""
        phone_hash = phone_digest(phone, self.rules.phone_key)
        rows = (await self.session.execute(_PHONE_ON_FILE, {"phone": phone, "hash": phone_hash, "at": self.clock.now()})).all()
        accounts = sorted(account for account, _ in rows if account is not None)
        locked_until = next((until for account, until in rows if account is None), None)
        return SharedPhone(PhoneClaim(phone_hash, tuple(accounts)), locked_until)

    async def verify(self, profile: ChatProfile, claim: PhoneClaim, birth_date: date) -> VerificationResult:
        """Check the birth date against the claimed accounts and count the attempt on the phone.

        The attempt is counted by one `INSERT … ON CONFLICT DO UPDATE … RETURNING` on the phone's
        lock row, which decides in the database whether the phone was already locked, whether this
        failure locks it, and resets the count on success; the row is locked while it is decided,
        so two chats trying the same phone at once count two attempts.
        """
        now = self.clock.now()
        matches = await self.session.scalars(_ACCOUNTS_BORN_ON, {"accounts": list(claim.accounts), "born": birth_date})
        # An account whose phone changed (a new import) since the contact was shared no longer counts.
        account = next((match for match in matches if phone_digest(match.phone, self.rules.phone_key) == claim.phone_hash), None)
        succeeded = account is not None
        first_lock = None if succeeded or self.rules.max_attempts > 1 else now + timedelta(minutes=self.rules.lock_minutes)
        attempt = _attempt_statement(self.session.bind.dialect.name, succeeded)
        counted = (
            await self.session.execute(
                attempt,
                {
                    "hash": claim.phone_hash,
                    "at": now,
                    "ends": now + timedelta(minutes=self.rules.lock_minutes),
                    "most": self.rules.max_attempts,
                    "first_failures": 0 if succeeded or first_lock is not None else 1,
                    "first_lock": first_lock,
                },
            )
        ).one()
        if counted.locked_until is not None and counted.locked_until > now:
            return VerificationResult(Outcome.LOCKED, locked_until=counted.locked_until)
        if account is not None:
            profile.account_pk = account.id
            profile.verified_at = now
            profile.last_seen_at = now
            return VerificationResult(Outcome.VERIFIED, account=account)
        return VerificationResult(Outcome.MISMATCH, attempts_left=self.rules.max_attempts - counted.failures)

    async def sign_out(self, profile: ChatProfile) -> None:
        profile.account_pk = None
        profile.verified_at = None

    async def opt_out(self, profile: ChatProfile) -> None:
        """The cardholder asked for no more messages in this chat; only their own requests are answered."""
        profile.opted_out_at = self.clock.now()

    async def opt_in(self, profile: ChatProfile) -> None:
        if profile.opted_out_at is not None:
            profile.opted_out_at = None

    async def set_locale(self, profile: ChatProfile, locale: str) -> None:
        profile.locale = locale


# The lookup's statements are built once, with bound parameters, so that an attempt costs its round
# trips and not the building and cache-keying of a new statement.
_LOCKS = VerificationLock.__table__.c
_PHONE_ON_FILE = union_all(
    select(Account.id, type_coerce(null(), UTCDateTime)).where(Account.phone == bindparam("phone")),
    select(null(), _LOCKS.locked_until).where(
        _LOCKS.phone_hash == bindparam("hash"), _LOCKS.locked_until > bindparam("at", type_=UTCDateTime)
    ),
)
_ACCOUNTS_BORN_ON = (
    select(Account)
    .where(Account.id.in_(bindparam("accounts", expanding=True)), Account.birth_date == bindparam("born"))
    .order_by(Account.days_past_due.desc(), Account.id)
)


@lru_cache(maxsize=8)
def _attempt_statement(dialect: str, succeeded: bool) -> Any:
    """Count one attempt on a phone's lock row: a locked phone's row stays as it is; a success
    clears the failures; a failure adds one, and the one that reaches the limit locks the phone."""
    at, ends = bindparam("at", type_=UTCDateTime), bindparam("ends", type_=UTCDateTime)
    locked = _LOCKS.locked_until > at
    if succeeded:
        failures: Any = case((locked, _LOCKS.failures), else_=0)
        until: Any = case((locked, _LOCKS.locked_until), else_=null())
    else:
        locks_now = _LOCKS.failures + 1 >= bindparam("most", type_=Integer)
        failures = case((locked, _LOCKS.failures), (locks_now, 0), else_=_LOCKS.failures + 1)
        until = case((locked, _LOCKS.locked_until), (locks_now, ends), else_=null())
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(VerificationLock.__table__)
        .values(
            phone_hash=bindparam("hash"),
            failures=bindparam("first_failures", type_=Integer),
            locked_until=bindparam("first_lock", type_=UTCDateTime),
            updated_at=at,
        )
        .on_conflict_do_update(index_elements=["phone_hash"], set_={"failures": failures, "locked_until": until, "updated_at": at})
        .returning(_LOCKS.failures, _LOCKS.locked_until)
    )
