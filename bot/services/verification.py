"""Proving who the cardholder is: phone from their own contact, then the birth date.

Failures are counted per phone across every chat and never say which part was wrong, so the
bot cannot be used to find out whether a phone number is on file.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Account, Case, ChatProfile, FsmRecord, VerificationLock
from bot.db.unit_of_work import unit_of
from bot.db.upsert import insert_for
from bot.services.cases import OPEN


@dataclass(frozen=True)
class VerificationRules:
    max_attempts: int
    lock_minutes: int
    idle_minutes: int


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

    async def locked_until(self, phone: str) -> datetime | None:
        lock = await self.session.get(VerificationLock, phone)
        if lock and lock.locked_until and lock.locked_until > self.clock.now():
            return lock.locked_until
        return None

    async def verify(self, profile: ChatProfile, phone: str, birth_date: date) -> VerificationResult:
        now = self.clock.now()
        insert = insert_for(self.session)
        await self.session.execute(
            insert(VerificationLock)
            .values(phone=phone, failures=0, updated_at=now)
            .on_conflict_do_nothing(index_elements=["phone"])
        )
        lock = await self.session.get(VerificationLock, phone, with_for_update=True, populate_existing=True)
        assert lock is not None
        if lock.locked_until and lock.locked_until > now:
            return VerificationResult(Outcome.LOCKED, locked_until=lock.locked_until)

        account = await self.session.scalar(
            select(Account)
            .where(Account.phone == phone, Account.birth_date == birth_date)
            .order_by(Account.days_past_due.desc(), Account.id)
            .limit(1)
        )
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
