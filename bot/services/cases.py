"""Cases: conversations handed to a person, and everything that happens in them.

One open case per account (or, before verification, per chat): a new trigger joins it. A claim is
a conditional update, so when two agents press Claim at once exactly one wins. Whatever an agent
does on a case after that is done only by the agent who claimed it (`ensure_owner`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Exists, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.unit_of_work import write_pending_rows
from bot.db.upsert import insert_for
from bot.db.models import Account, Arrangement, AuditEvent, Case, CaseEvent, Offer, Relay
from bot.domain.errors import DomainError
from bot.domain.masking import mask_text

OPEN = ("waiting", "claimed")
TRANSCRIPT_TAIL = 10
DISPUTE = "dispute"
"""A case of this reason, while open, pauses the collection messages the bank starts (`bot.services.contact`)."""


def has_open_dispute(account_pk: int) -> Exists:
    """Written as `uq_one_open_case_per_account`'s predicate, so that index finds the account's open case."""
    return exists().where(Case.account_pk == account_pk, Case.status != "resolved", Case.reason == DISPUTE)


class NotCaseOwner(DomainError):
    """An agent acted on a case they do not own: waiting for a claim, claimed by another, or resolved."""

    def __init__(self, case: Case, agent_id: int) -> None:
        super().__init__(f"agent {agent_id} may not act on case {case.id}: {case.status}, agent {case.agent_id}")
        self.case = case
        self.agent_id = agent_id


@dataclass(frozen=True)
class Opened:
    case: Case
    created: bool


@dataclass(frozen=True)
class Claim:
    won: bool
    case: Case


@dataclass(frozen=True)
class CaseHistory:
    """What the bot knows and did before the handoff, for the case card."""

    offers: tuple[Offer, ...]
    arrangements: tuple[Arrangement, ...]
    last_messages: tuple[AuditEvent, ...]


class CaseService:
    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    async def open(self, chat_id: int, account: Account | None, reason: str, locale: str, text: str = "") -> Opened:
        """Open a case, or join the open one of this account or chat with a new trigger."""
        case = await self._open_case(chat_id, account)
        created = case is None
        if case is None:
            now = self.clock.now()
            values = dict(
                chat_id=chat_id, account_pk=account.id if account else None, verified=account is not None,
                reason=reason, locale=locale, status="waiting", created_at=now, announced_at=now,
            )
            case_id = await self._insert_once(Case, values)
            if case_id is None:  # another chat of this account opened one at the same moment
                created = False
                case = await self._open_case(chat_id, account)
            else:
                case = await self.session.get(Case, case_id)
            assert case is not None
        if reason == DISPUTE:
            self.raise_dispute(case)
        await self.record(case, "cardholder", "trigger", f"{reason}: {text}".strip(": "))
        return Opened(case, created=created)

    @staticmethod
    def raise_dispute(case: Case) -> bool:
        """The cardholder disputes something in an open case: it becomes a dispute case (True when it was not one)."""
        if case.reason == DISPUTE:
            return False
        case.reason = DISPUTE
        return True

    async def disputed(self, account_pk: int) -> bool:
        """A dispute case is open for the account: its amount is under review."""
        return bool(await self.session.scalar(select(has_open_dispute(account_pk))))

    async def _insert_once(self, model: type[Case] | type[Relay], values: dict[str, object]) -> int | None:
        """Insert a row unless a unique rule forbids it: its id, or None (nothing else is undone)."""
        insert = insert_for(self.session)
        return await self.session.scalar(insert(model).values(**values).on_conflict_do_nothing().returning(model.id))

    async def _open_case(self, chat_id: int, account: Account | None) -> Case | None:
        condition = Case.chat_id == chat_id if account is None else or_(Case.chat_id == chat_id, Case.account_pk == account.id)
        return await self.session.scalar(select(Case).where(condition, Case.status.in_(OPEN)).order_by(Case.id).limit(1))

    async def waiting_relays(self, case: Case) -> list[Relay]:
        """Messages to the agents recorded before the case had its topic, oldest first."""
        return list(
            await self.session.scalars(
                select(Relay)
                .where(Relay.case_id == case.id, Relay.direction == "to_agents", Relay.status == "pending")
                .order_by(Relay.id)
            )
        )

    async def by_topic(self, topic_id: int) -> Case | None:
        return await self.session.scalar(select(Case).where(Case.topic_id == topic_id).order_by(Case.id.desc()).limit(1))

    async def get(self, case_id: int) -> Case | None:
        return await self.session.get(Case, case_id)

    async def queue_position(self, case: Case) -> int:
        earlier = await self.session.scalar(
            select(func.count()).select_from(Case).where(Case.status == "waiting", Case.created_at < case.created_at)
        )
        return int(earlier or 0) + 1

    async def waiting(self) -> list[Case]:
        return list(await self.session.scalars(select(Case).where(Case.status == "waiting").order_by(Case.created_at, Case.id)))

    async def claim(self, case_id: int, agent_id: int) -> Claim:
        now = self.clock.now()
        result = await self.session.execute(
            update(Case)
            .where(Case.id == case_id, Case.status == "waiting")
            .values(status="claimed", agent_id=agent_id, claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        case = await self.session.get(Case, case_id, populate_existing=True)
        assert case is not None
        won = result.rowcount == 1
        if won:
            await self.record(case, f"agent:{agent_id}", "claim")
        return Claim(won, case)

    @staticmethod
    def ensure_owner(case: Case, agent_id: int) -> Case:
        """The case, if `agent_id` claimed it and it is still open; otherwise `NotCaseOwner`."""
        if case.status != "claimed" or case.agent_id != agent_id:
            raise NotCaseOwner(case, agent_id)
        return case

    async def resolve(self, case: Case, agent_id: int, outcome: str) -> None:
        self.ensure_owner(case, agent_id)
        case.status = "resolved"
        case.resolved_at = self.clock.now()
        case.outcome = mask_text(outcome)[:200]
        await self.record(case, f"agent:{agent_id}", "resolve", outcome)

    async def rate(self, case_id: int, chat_id: int, score: int) -> bool:
        case = await self.session.get(Case, case_id)
        if case is None or case.chat_id != chat_id or case.status != "resolved" or case.rating is not None:
            return False
        case.rating = score
        await self.record(case, "cardholder", "rating", str(score))
        return True

    async def due_for_announcement(self, after: timedelta) -> list[Case]:
        """Waiting cases nobody has picked up since they were last announced; marks them announced.

        The rows are locked, and rows another round has locked are skipped (PostgreSQL): should two
        processes' rounds overlap (a lease outlived), each case is still announced once.
        """
        now = self.clock.now()
        cases = list(
            await self.session.scalars(
                select(Case)
                .where(Case.status == "waiting", Case.announced_at <= now - after)
                .order_by(Case.created_at)
                .with_for_update(skip_locked=True)
            )
        )
        for case in cases:
            case.announced_at = now
        return cases

    async def record(self, case: Case, actor: str, kind: str, text: str = "") -> None:
        """Add to the case's record; what people wrote (triggers, relays, notes) is masked like the audit trail."""
        self.session.add(CaseEvent(case_id=case.id, at=self.clock.now(), actor=actor, kind=kind, text=mask_text(text)))

    async def note(self, case: Case, agent_id: int, text: str) -> None:
        self.ensure_owner(case, agent_id)
        await self.record(case, f"agent:{agent_id}", "note", text)

    async def history(self, case: Case) -> CaseHistory:
        await write_pending_rows(self.session)  # the message that opened the case is among the last ones
        offers: tuple[Offer, ...] = ()
        arrangements: tuple[Arrangement, ...] = ()
        if case.account_pk is not None:
            offers = tuple(
                await self.session.scalars(
                    select(Offer).where(Offer.account_pk == case.account_pk).order_by(Offer.id.desc()).limit(5)
                )
            )
            arrangements = tuple(
                await self.session.scalars(
                    select(Arrangement).where(Arrangement.account_pk == case.account_pk).order_by(Arrangement.id.desc()).limit(3)
                )
            )
        last = tuple(
            reversed(
                (
                    await self.session.scalars(
                        select(AuditEvent)
                        .where(AuditEvent.chat_id == case.chat_id, AuditEvent.kind.in_(("text", "sendMessage")))
                        .order_by(AuditEvent.id.desc())
                        .limit(TRANSCRIPT_TAIL)
                    )
                ).all()
            )
        )
        return CaseHistory(offers, arrangements, last)

    async def transcript(self, case_id: int) -> list[CaseEvent]:
        return list(await self.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)))

    async def mark_payment_claimed(self, account: Account) -> None:
        account.payment_claimed_at = self.clock.now()

    # -- relays -------------------------------------------------------------------------------

    async def begin_relay(
        self, case: Case, direction: str, source: tuple[int, int], target_chat_id: int, target_thread_id: int | None, text: str
    ) -> Relay | None:
        """Record a relay before sending it; None when this source message was relayed already."""
        if await self.session.scalar(
            select(Relay.id).where(Relay.source_chat_id == source[0], Relay.source_message_id == source[1])
        ):
            return None
        relay_id = await self._insert_once(
            Relay,
            dict(
                case_id=case.id, direction=direction, source_chat_id=source[0], source_message_id=source[1],
                target_chat_id=target_chat_id, target_thread_id=target_thread_id, status="pending",
                attempts=0, created_at=self.clock.now(),
            ),
        )
        if relay_id is None:  # the same message is being relayed by a replay of its update
            return None
        relay = await self.session.get(Relay, relay_id)
        assert relay is not None
        actor = "cardholder" if direction == "to_agents" else f"agent:{case.agent_id}"
        await self.record(case, actor, "relay", text)
        return relay

    async def finish_relay(self, relay: Relay, status: str, attempts: int, target_message_id: int | None = None) -> None:
        relay.status = status
        relay.attempts = attempts
        relay.target_message_id = target_message_id
        if status == "sent":
            relay.sent_at = self.clock.now()
