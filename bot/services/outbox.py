"""Effects on Telegram that must happen: recorded with what made them due, completed until done.

Three kinds, each recorded in the update's own transaction:

* a message that must reach someone (the confirmation of an accepted arrangement): a row of
  `outbox`, keyed by what it confirms;
* a case's forum topic and card: the case itself, while its `topic_id` is empty;
* a relay: its row in `relays`, while its status is pending or failed.

The update sends each right after its commit. Whatever is left (the process was killed, Telegram
failed past the retries) is found here by the courier (`bot.courier`) and completed, at start-up
and then every few seconds. Each is due only after `GRACE`, so the courier never races an update
that is still sending it.

A message the bank started that the contact gate held (`bot.services.contact`) waits too: an outbox
row with `not_before`, or a relay whose status is "held". It is due at that moment, not after the
grace: no update is sending it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db.models import Case, OutboxMessage, Relay
from bot.db.upsert import insert_for
from bot.services.filing import current_account
from bot.services.cases import OPEN

GRACE = timedelta(minutes=2)
"""How long an effect belongs to the update that recorded it (its retries included)."""

MAX_ATTEMPTS = 50
"""After this many failed attempts an effect is left for a person to look at (it stays recorded)."""

ERROR_LIMIT = 500


@dataclass(frozen=True)
class Due:
    messages: list[OutboxMessage]
    cases: list[Case]
    relays: list[Relay]

    def __bool__(self) -> bool:
        return bool(self.messages or self.cases or self.relays)


class Outbox:
    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    async def message(
        self,
        key: str,
        chat_id: int,
        text: str,
        reply_markup: str | None = None,
        *,
        contact_id: int | None = None,
        not_before: datetime | None = None,
    ) -> OutboxMessage | None:
        """Record a message to send (at `not_before`, if given); None when one with this key was recorded already."""
        insert = insert_for(self.session)
        message_id = await self.session.scalar(
            insert(OutboxMessage)
            .values(
                key=key, chat_id=chat_id, account_pk=current_account.get(), text=text, reply_markup=reply_markup,
                created_at=self.clock.now(), attempts=0, contact_id=contact_id, not_before=not_before,
            )
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(OutboxMessage.id)
        )
        return None if message_id is None else await self.session.get(OutboxMessage, message_id)

    def sent(self, message: OutboxMessage) -> None:
        message.attempts += 1
        message.sent_at = self.clock.now()

    def failed(self, message: OutboxMessage, error: str) -> None:
        message.attempts += 1
        message.last_error = error[:ERROR_LIMIT]

    @staticmethod
    def hold(message: OutboxMessage, until: datetime) -> None:
        message.not_before = until

    @staticmethod
    def withhold(message: OutboxMessage, reason: str) -> None:
        """It will never be sent (the gate said so); kept as the record of what was not said."""
        message.withheld = reason

    async def due(self, grace: timedelta = GRACE, limit: int = 100) -> Due:
        """What was recorded more than `grace` ago and is not done yet, and what was held until now, oldest first."""
        now = self.clock.now()
        before = now - grace
        messages = await self.session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.sent_at.is_(None),
                OutboxMessage.withheld.is_(None),
                OutboxMessage.attempts < MAX_ATTEMPTS,
                or_(
                    and_(OutboxMessage.not_before.is_(None), OutboxMessage.created_at < before),
                    OutboxMessage.not_before <= now,
                ),
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        cases = await self.session.scalars(
            select(Case)
            .where(
                Case.status.in_(OPEN),
                or_(Case.topic_id.is_(None), Case.card_message_id.is_(None)),
                or_(Case.topic_tried_at.is_(None), Case.topic_tried_at < before),
            )
            .order_by(Case.id)
            .limit(limit)
        )
        relays = await self.session.scalars(
            select(Relay)
            .join(Case, Case.id == Relay.case_id)
            .where(
                or_(
                    and_(Relay.status.in_(("pending", "failed")), Relay.created_at < before, Case.status.in_(OPEN)),
                    and_(Relay.status == "held", Relay.not_before <= now),  # an agent's words go even if the case closed since
                ),
                Relay.attempts < MAX_ATTEMPTS,
                or_(Relay.direction != "to_agents", Case.topic_id.is_not(None)),
            )
            .order_by(Relay.id)
            .limit(limit)
        )
        return Due(list(messages), list(cases), list(relays))
