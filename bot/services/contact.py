"""The contact gate: whether a message the bank starts in a cardholder's chat may go, and when.

Nothing goes while the cardholder has opted out with /stop: their next message ends the opt-out,
so until then there is nothing to reply to. Otherwise what the bot sends soon after the
cardholder wrote (within the pack's `reply_window`, from their last message or button press) is a
reply and goes. Anything else is *bank-started*: an agent writing after the cardholder went
quiet, a rating prompt, a reminder. For those the gate decides:

* never, while the account carries a special-situation flag (`FLAGS`), and, for collection
  messages, while a dispute case is open on the account or a hardship agreement whose pack stops
  collection messages is being kept;
* otherwise at the first moment the pack's contact hours allow in the account's time zone and
  its caps allow, counted per local day, ISO week and month over the messages of `contacts`
  (those sent, and those already held for that period).

A held message waits in its carrier (an outbox row or a relay) with a not-before time; the
courier decides it again when that time comes, since the situation may have changed meanwhile.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Account, Arrangement, ChatProfile, Contact, Installment
from bot.domain.errors import DomainError
from bot.domain.jurisdiction import ContactRules, Jurisdiction
from bot.domain.policy import Policy
from bot.services.cases import has_open_dispute

COLLECTION = "collection"
"""A message about the debt: an agent's words, an offer, a reminder."""
SERVICE = "service"
"""A message about the bot's service (a rating prompt, a person joining): not paused by a dispute
or a hardship agreement, but held and counted like any other the bank starts."""

FLAGS = ("deceased", "bankruptcy", "lawyer", "cease")
"""Special situations: the cardholder died, is in bankruptcy, is represented by a lawyer, or asked
the bank to cease communication."""

HORIZON = 60
"""At most this many periods are tried for a moment the caps allow (validated caps always find one)."""


class Verdict(enum.Enum):
    NOW = "now"
    HOLD = "hold"
    NEVER = "never"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
    """NOW: "reply" or "allowed"; HOLD: "hours", "day", "week" or "month"; NEVER: "flag",
    "opted_out", "dispute" or "hardship"."""
    at: datetime
    """When it goes (HOLD), or now."""
    zone: ZoneInfo
    """The cardholder's time zone."""
    now: datetime
    rules: ContactRules
    flag: str | None = None

    @property
    def bank_started(self) -> bool:
        return self.reason != "reply"

    @property
    def needs_notice(self) -> bool:
        """The message must end with how to opt out (bank-started, in a pack that says so)."""
        return self.bank_started and self.rules.opt_out_notice

    @property
    def cap(self) -> int | None:
        return {"day": self.rules.max_per_day, "week": self.rules.max_per_week, "month": self.rules.max_per_month}.get(self.reason)


class UnknownFlag(DomainError):
    """A flag that is not one of `FLAGS`."""


@dataclass(frozen=True)
class _Facts:
    """What the decision reads about the chat and the account, loaded in one query."""

    last_inbound: datetime | None
    opted_out: bool
    flag: str | None
    disputed: bool
    hardship_kept: bool


class ContactGate:
    def __init__(self, session: AsyncSession, policy: Policy, clock: Clock) -> None:
        self.session = session
        self.policy = policy
        """The bank's policy; the gate takes each account's pack from it."""
        self.clock = clock

    def pack_of(self, account: Account | None) -> Jurisdiction:
        return self.policy.for_account(account).rules if account is not None else self.policy.rules

    def zone_of(self, account: Account | None) -> ZoneInfo:
        """The account's time zone; the bank's for a chat with no account (or an unknown zone)."""
        if account is not None:
            try:
                return ZoneInfo(account.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                pass
        return ZoneInfo(self.policy.bank.timezone)

    async def decide(
        self, chat_id: int, account_pk: int | None, purpose: str = COLLECTION, *, excluding: int | None = None
    ) -> Decision:
        """Whether a message the bank would start in `chat_id` now may go now, later or never.

        `excluding` is the message's own contact when a held message is decided again. A
        bank-started decision locks the account's (or the chat's) row, so two messages decided
        at once are counted one after the other.
        """
        now = self.clock.now()
        account = await self.session.get(Account, account_pk) if account_pk is not None else None
        pack = self.pack_of(account)
        rules, zone = pack.contact, self.zone_of(account)
        facts = await self._facts(chat_id, account, pack, now)

        def decided(verdict: Verdict, reason: str, at: datetime = now) -> Decision:
            return Decision(verdict, reason, at, zone, now, rules, facts.flag)

        if facts.opted_out:  # any message after /stop ends the opt-out: nothing since is there to reply to
            return decided(Verdict.NEVER, "opted_out")
        if facts.last_inbound is not None and now - facts.last_inbound <= rules.reply_window:
            return decided(Verdict.NOW, "reply")
        if facts.flag is not None:
            return decided(Verdict.NEVER, "flag")
        if purpose == COLLECTION and facts.disputed:
            return decided(Verdict.NEVER, "dispute")
        if purpose == COLLECTION and facts.hardship_kept and pack.hardship.stops_collection_messages:
            return decided(Verdict.NEVER, "hardship")
        await self._lock(chat_id, account)
        at = rules.next_allowed(now, zone)
        reason = "hours" if at > now else "allowed"
        for _ in range(HORIZON):
            full = await self._full_period(chat_id, account, rules, at.astimezone(zone), excluding)
            if full is None:
                break
            period, starts_next = full
            at, reason = rules.next_allowed(starts_next, zone), period
        else:  # pragma: no cover - caps of at least one message always find a period
            raise RuntimeError("no moment within the caps")
        return decided(Verdict.HOLD if at > now else Verdict.NOW, reason, at)

    async def _facts(self, chat_id: int, account: Account | None, pack: Jurisdiction, now: datetime) -> _Facts:
        profile = await self.session.get(ChatProfile, chat_id)
        if account is None:
            return _Facts(profile.last_seen_at if profile else None, bool(profile and profile.opted_out_at), None, False, False)
        disputed = await self.session.scalar(select(has_open_dispute(account.id)))
        kept = await hardship_kept(self.session, account.id, now.date(), pack.hardship.ends_after_days_late)
        return _Facts(
            profile.last_seen_at if profile else None,
            bool(profile and profile.opted_out_at),
            account.contact_flag,
            bool(disputed),
            bool(kept),
        )

    async def _lock(self, chat_id: int, account: Account | None) -> None:
        """Take the row the caps are counted for: a row lock on PostgreSQL, the write lock on SQLite."""
        if account is not None:
            await self.session.execute(
                update(Account).where(Account.id == account.id).values(contact_flag=Account.contact_flag)
                .execution_options(synchronize_session=False)
            )
        else:
            await self.session.execute(
                update(ChatProfile).where(ChatProfile.chat_id == chat_id).values(opted_out_at=ChatProfile.opted_out_at)
                .execution_options(synchronize_session=False)
            )

    async def _full_period(
        self, chat_id: int, account: Account | None, rules: ContactRules, local: datetime, excluding: int | None
    ) -> tuple[str, datetime] | None:
        """The first period around `local` whose cap is reached (month, week, day) and when the
        next one starts; None when the caps allow a message at `local`."""
        zone = local.tzinfo
        assert isinstance(zone, ZoneInfo)
        day = local.date()
        periods = {
            "day": (day, day + timedelta(days=1), rules.max_per_day),
            "week": (day - timedelta(days=day.weekday()), day + timedelta(days=7 - day.weekday()), rules.max_per_week),
            "month": (day.replace(day=1), _next_month(day), rules.max_per_month),
        }
        capped = {name: period for name, period in periods.items() if period[2] is not None}
        if not capped:
            return None
        bounds = {name: (_midnight(start, zone), _midnight(end, zone)) for name, (start, end, _cap) in capped.items()}
        first = min(start for start, _end in bounds.values())
        last = max(end for _start, end in bounds.values())
        counted = Contact.account_pk == account.id if account is not None else Contact.chat_id == chat_id
        conditions = [counted, Contact.status.in_(("sent", "held")), Contact.due_at >= first, Contact.due_at < last]
        if excluding is not None:
            conditions.append(Contact.id != excluding)
        columns = [
            func.coalesce(func.sum(case((and_(Contact.due_at >= start, Contact.due_at < end), 1), else_=0)), 0).label(name)
            for name, (start, end) in bounds.items()
        ]
        row = (await self.session.execute(select(*columns).where(*conditions))).one()
        for name in ("month", "week", "day"):
            if name in capped and row._mapping[name] >= capped[name][2]:
                return name, bounds[name][1]
        return None

    async def record(
        self, decision: Decision, chat_id: int, account_pk: int | None, purpose: str, case_id: int | None = None
    ) -> Contact | None:
        """Record a bank-started message the gate let through or held; None for a reply."""
        if not decision.bank_started or decision.verdict is Verdict.NEVER:
            return None
        contact = Contact(
            chat_id=chat_id, account_pk=account_pk, case_id=case_id, purpose=purpose,
            status="sent" if decision.verdict is Verdict.NOW else "held", reason=decision.reason,
            due_at=decision.at, created_at=decision.now,
        )
        self.session.add(contact)
        await self.session.flush()
        return contact

    @staticmethod
    def redecided(contact: Contact, decision: Decision) -> None:
        """A held (or retried) message decided again: it goes now, waits longer, or is withheld."""
        contact.reason = decision.reason
        if decision.verdict is Verdict.NEVER:
            contact.status = "withheld"
        else:
            contact.status = "sent" if decision.verdict is Verdict.NOW else "held"
            contact.due_at = decision.at

    @staticmethod
    def undelivered(contact: Contact | None) -> None:
        """Telegram refused the message (the cardholder blocked the bot): it does not count."""
        if contact is not None:
            contact.status = "undelivered"

    # -- special situations ---------------------------------------------------------------------

    def flag(self, account: Account, flag: str) -> None:
        if flag not in FLAGS:
            raise UnknownFlag(f"{flag!r} is not one of {', '.join(FLAGS)}")
        account.contact_flag = flag
        account.contact_flagged_at = self.clock.now()

    def unflag(self, account: Account) -> str | None:
        """Clear the account's flag; the flag it had (None: it had none)."""
        had = account.contact_flag
        account.contact_flag = None
        account.contact_flagged_at = None
        return had


async def hardship_kept(session: AsyncSession, account_pk: int, today: date, ends_after_days_late: int) -> bool:
    """Whether the account keeps a hardship agreement (an active arrangement with written terms):
    no payment of it is later than the pack allows before the agreement ends."""
    agreement = await session.scalar(
        select(Arrangement.id).where(
            Arrangement.account_pk == account_pk, Arrangement.status == "active", Arrangement.agreement.is_not(None)
        )
    )
    if agreement is None:
        return False
    overdue = await session.execute(  # amounts are compared here: SQLite keeps them as text
        select(Installment.amount, Installment.paid).where(
            Installment.arrangement_id == agreement, Installment.due_date < today - timedelta(days=ends_after_days_late)
        )
    )
    return all(paid >= amount for amount, paid in overdue)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), zone)


def _next_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)
