"""The agents' desk on Telegram: a forum topic per case, and messages carried both ways.

A relay is recorded before it is sent and marked once Telegram accepts it; a failed one is sent
again by the courier (`bot.courier`), and a cardholder who blocked the bot is reported to the
agent instead. A case whose topic could not be made gets it from the courier too, and the
cardholder's messages wait for it rather than land outside the topic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from aiogram import Bot
from aiogram.exceptions import ClientDecodeError, TelegramAPIError, TelegramForbiddenError
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.models import Case, Relay
from bot.domain.policy import Policy
from bot.leases import Lease, run_leased
from bot.services.cases import CaseService

log = logging.getLogger(__name__)

WATCH_SECONDS = 60.0


@dataclass(frozen=True)
class Delivery:
    status: str  # "sent", "duplicate", "blocked" or "failed"
    message_id: int | None = None


class Desk:
    """Talks to the agents' group; agents read it in the desk's language (`DEFAULT_LOCALE`)."""

    def __init__(
        self,
        bot: Bot,
        agent_chat_id: int,
        agent_ids: frozenset[int],
        i18n: I18n,
        locale: str,
        supervisor_ids: frozenset[int] = frozenset(),
    ) -> None:
        self.bot = bot
        self.chat_id = agent_chat_id
        self.agent_ids = agent_ids
        self.supervisor_ids = supervisor_ids
        self.i18n = i18n
        self.locale = locale

    def is_agent(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.agent_ids

    def is_supervisor(self, user_id: int | None) -> bool:
        """May approve or decline an agent's offer outside the policy (`SUPERVISOR_IDS`)."""
        return user_id is not None and user_id in self.supervisor_ids

    @contextmanager
    def speaking(self) -> Iterator[None]:
        """Render in the desk's language, whoever's update is being handled (or none is)."""
        with self.i18n.context(), self.i18n.use_locale(self.locale):
            yield

    async def open_case_topic(self, cases: CaseService, case: Case, title: str, card: str, markup: InlineKeyboardMarkup) -> bool:
        """Give the case its topic and card, each once (what was made is recorded before the next
        call), then carry the messages that waited for it. False when Telegram failed: the case
        keeps what it got, and the courier completes it later."""
        case.topic_tried_at = cases.clock.now()
        try:
            if case.topic_id is None:
                topic = await self.bot.create_forum_topic(self.chat_id, name=title[:128])
                case.topic_id = topic.message_thread_id
            if case.card_message_id is None:
                message = await self.bot.send_message(self.chat_id, card, message_thread_id=case.topic_id, reply_markup=markup)
                case.card_message_id = message.message_id
        except (TelegramAPIError, ClientDecodeError) as error:
            log.warning("case %s: its topic could not be made yet: %s", case.id, error)
            return False
        for relay in await cases.waiting_relays(case):
            await self.send_relay(cases, relay, case)
        return True

    async def post(self, case: Case, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
        if case.topic_id is None:
            return  # the card, made with the topic, will say it
        await self.bot.send_message(self.chat_id, text, message_thread_id=case.topic_id, reply_markup=markup)

    async def relay(
        self, cases: CaseService, case: Case, direction: str, source_chat_id: int, source_message_id: int, text: str
    ) -> Delivery:
        """Record the relay and send it; one to a case still without its topic waits for it ("queued")."""
        if direction == "to_agents":
            target, thread = self.chat_id, case.topic_id
        else:
            target, thread = case.chat_id, None
        relay = await cases.begin_relay(case, direction, (source_chat_id, source_message_id), target, thread, text)
        if relay is None:
            return Delivery("duplicate")
        if direction == "to_agents" and case.topic_id is None:
            return Delivery("queued")
        return await self.send_relay(cases, relay, case)

    async def send_relay(self, cases: CaseService, relay: Relay, case: Case) -> Delivery:
        """One attempt (calls that fail for a moment are retried beneath); a failed relay is the courier's."""
        if relay.direction == "to_agents":
            relay.target_thread_id = case.topic_id
        try:
            sent = await self.bot.copy_message(
                relay.target_chat_id, relay.source_chat_id, relay.source_message_id, message_thread_id=relay.target_thread_id
            )
        except TelegramForbiddenError:
            await cases.finish_relay(relay, "blocked", relay.attempts + 1)
            return Delivery("blocked")
        except (TelegramAPIError, ClientDecodeError) as error:
            log.warning("relay %s attempt %s failed: %s", relay.id, relay.attempts + 1, error)
            await cases.finish_relay(relay, "failed", relay.attempts + 1)
            return Delivery("failed")
        await cases.finish_relay(relay, "sent", relay.attempts + 1, sent.message_id)
        return Delivery("sent", sent.message_id)

    async def announce_waiting(self, session_factory: async_sessionmaker[AsyncSession], policy: Policy, clock: Clock) -> int:
        """Announce again, in the group, every case left waiting past the policy's time."""
        async with session_factory() as session, session.begin():
            cases = CaseService(session, clock)
            due = await cases.due_for_announcement(timedelta(minutes=policy.handoff.reannounce_minutes))
        for case in due:
            with self.speaking():
                text = _("Case #{id} ({reason}) is still waiting for an agent, since {minutes} minutes.").format(
                    id=case.id, reason=case.reason, minutes=int((clock.now() - case.created_at).total_seconds() // 60)
                )
            try:
                await self.bot.send_message(self.chat_id, text)
            except TelegramAPIError as error:
                log.warning("could not announce case %s: %s", case.id, error)
        return len(due)

    async def watch(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        policy: Policy,
        clock: Clock,
        lease: Lease,
        stopping: asyncio.Event,
        every: float = WATCH_SECONDS,
    ) -> None:
        """Runs beside polling until `stopping` is set; announces only while holding `lease`
        (one process of several does it)."""
        await run_leased(lease, lambda: self.announce_waiting(session_factory, policy, clock), every, stopping, first_after=every)
