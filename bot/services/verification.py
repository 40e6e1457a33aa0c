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
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Account, Case, ChatProfile, FsmRecord, VerificationLock
from bot.db.unit_of_work import unit_of
from bot.db.upsert import insert_for
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

    async def claim_phone(self, phone: str) -> PhoneClaim:
        """What the contact step leaves for the birth-date step, for a phone in E.164."""
        accounts = await self.session.scalars(select(Account.id).where(Account.phone == phone).order_by(Account.id))
        return PhoneClaim(phone_digest(phone, self.rules.phone_key), tuple(accounts))

    async def locked_until(self, claim: PhoneClaim) -> datetime | None:
        lock = await self.session.get(VerificationLock, claim.phone_hash)
        if lock and lock.locked_until and lock.locked_until > self.clock.now():
            return lock.locked_until
        return None

    async def verify(self, profile: ChatProfile, claim: PhoneClaim, birth_date: date) -> VerificationResult:
        now = self.clock.now()
        insert = insert_for(self.session)
        await self.session.execute(
            insert(VerificationLock)
            .values(phone_hash=claim.phone_hash, failures=0, updated_at=now)
            .on_conflict_do_nothing(index_elements=["phone_hash"])
        )
        lock = await self.session.get(VerificationLock, claim.phone_hash, with_for_update=True, populate_existing=True)
        assert lock is not None
        if lock.locked_until and lock.locked_until > now:
            return VerificationResult(Outcome.LOCKED, locked_until=lock.locked_until)

        matches = await self.session.scalars(
            select(Account)
            .where(Account.id.in_(claim.accounts), Account.birth_date == birth_date)
            .order_by(Account.days_past_due.desc(), Account.id)
        )
        # An account whose phone changed (a new import) since the contact was shared no longer counts.
        account = next((match for match in matches if phone_digest(match.phone, self.rules.phone_key) == claim.phone_hash), None)
        lock.updated_at = now
        if account is not None:
            lock.failures = 0
            lock.locked_until = None
            profile.account_pk = account.id
            profile.verified_at = now
            profile.last_seen_at = now
            return VerificationResult(Outcome.VERIFIED, account=account)

        lock.failures += 1
        if lock.failures >= self.rules.max_attempts:
            lock.failures = 0
            lock.locked_until = now + timedelta(minutes=self.rules.lock_minutes)
            return VerificationResult(Outcome.LOCKED, locked_until=lock.locked_until)
        return VerificationResult(Outcome.MISMATCH, attempts_left=self.rules.max_attempts - lock.failures)

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
