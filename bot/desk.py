"""The agents' desk on Telegram: a forum topic per case, and messages carried both ways.

A relay is recorded before it is sent and marked once Telegram accepts it; a failed one is sent
again by the courier (`bot.courier`), and a cardholder who blocked the bot is reported to the
agent instead. A case whose topic could not be made gets it from the courier too, and the
cardholder's messages wait for it rather than land outside the topic.

What goes to the cardholder passes the contact gate (`bot.services.contact`): a message the bank
starts may be held for the cardholder's contact hours or caps (the courier sends it then), or not
sent at all, and the agent is told which (`decision_note`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from zoneinfo import ZoneInfo

from aiogram import Bot
from aiogram.exceptions import ClientDecodeError, TelegramAPIError, TelegramForbiddenError
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.models import Case, Relay
from bot.domain.policy import Policy
from bot.formatting import clock_at
from bot.leases import Lease, run_leased
from bot.services.filing import filed_under
from bot.services.cases import CaseService
from bot.services.contact import COLLECTION, ContactGate, Decision, Verdict
from bot.services.outbox import Outbox

log = logging.getLogger(__name__)

WATCH_SECONDS = 60.0


@dataclass(frozen=True)
class Delivery:
    status: str  # "sent", "duplicate", "queued", "blocked", "failed", "held" or "withheld"
    message_id: int | None = None
    decision: Decision | None = None
    """The contact gate's, for what goes to the cardholder."""


def markup_json(markup: InlineKeyboardMarkup | None) -> str | None:
    return None if markup is None else markup.model_dump_json(exclude_none=True)


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
                with filed_under(case.account_pk):
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
        with filed_under(case.account_pk):
            await self.bot.send_message(self.chat_id, text, message_thread_id=case.topic_id, reply_markup=markup)

    async def relay_to_agents(self, cases: CaseService, case: Case, source_chat_id: int, source_message_id: int, text: str) -> Delivery:
        """Record the cardholder's message for the case's topic and send it; one to a case still
        without its topic waits for it ("queued")."""
        relay = await cases.begin_relay(case, "to_agents", (source_chat_id, source_message_id), self.chat_id, case.topic_id, text)
        if relay is None:
            return Delivery("duplicate")
        if case.topic_id is None:
            return Delivery("queued")
        return await self.send_relay(cases, relay, case)

    async def relay_to_cardholder(
        self, cases: CaseService, gate: ContactGate, case: Case, source: tuple[int, int], text: str, html: str, captioned: bool | None
    ) -> Delivery:
        """Carry an agent's message to the cardholder, as the contact gate decides.

        `html` is the message's text or caption as HTML; `captioned` says whether it is media that
        takes a caption (None: media that cannot, such as a sticker). When the bank starts the
        message in a pack that wants an opt-out notice, the notice is added to its text or caption.
        """
        relay = await cases.begin_relay(case, "to_cardholder", source, case.chat_id, None, text)
        if relay is None:
            return Delivery("duplicate")
        decision = await gate.decide(case.chat_id, case.account_pk, COLLECTION)
        if decision.verdict is Verdict.NEVER:
            await cases.finish_relay(relay, "withheld", relay.attempts)
            return Delivery("withheld", decision=decision)
        contact = await gate.record(decision, case.chat_id, case.account_pk, COLLECTION, case.id)
        relay.contact_id = contact.id if contact is not None else None
        if decision.needs_notice and captioned is not None:
            notice = self.opt_out_notice(case.locale)
            relay.text_out = f"{html}\n\n{notice}" if html else notice
            relay.text_out_as = "caption" if captioned else "text"
        if decision.verdict is Verdict.HOLD:
            relay.status, relay.not_before = "held", decision.at
            return Delivery("held", decision=decision)
        delivery = await self.send_relay(cases, relay, case)
        if delivery.status == "blocked":
            gate.undelivered(contact)
        return replace(delivery, decision=decision)

    async def send_relay(self, cases: CaseService, relay: Relay, case: Case) -> Delivery:
        """One attempt (calls that fail for a moment are retried beneath); a failed relay is the courier's."""
        if relay.direction == "to_agents":
            relay.target_thread_id = case.topic_id
        try:
            with filed_under(case.account_pk):
                if relay.text_out_as == "text" and relay.text_out:
                    sent = await self.bot.send_message(relay.target_chat_id, relay.text_out)
                else:
                    sent = await self.bot.copy_message(
                        relay.target_chat_id, relay.source_chat_id, relay.source_message_id,
                        message_thread_id=relay.target_thread_id,
                        caption=relay.text_out if relay.text_out_as == "caption" else None,
                    )
        except TelegramForbiddenError:
            await cases.finish_relay(relay, "blocked", relay.attempts + 1)
            return Delivery("blocked")
        except (TelegramAPIError, ClientDecodeError) as error:
            log.warning("relay %s attempt %s failed: %s", relay.id, relay.attempts + 1, error)
            await cases.finish_relay(relay, "failed", relay.attempts + 1)
            return Delivery("failed")
        await cases.finish_relay(relay, "sent", relay.attempts + 1, sent.message_id)
        relay.text_out = None  # the words are kept no longer than it takes to deliver them
        return Delivery("sent", sent.message_id)

    async def tell_cardholder(
        self,
        gate: ContactGate,
        outbox: Outbox,
        case: Case,
        text: str,
        markup: InlineKeyboardMarkup | None = None,
        purpose: str = COLLECTION,
    ) -> Delivery:
        """Send the bot's own words to the case's cardholder, as the contact gate decides: now, held
        in the outbox for the courier, or not at all."""
        decision = await gate.decide(case.chat_id, case.account_pk, purpose)
        if decision.verdict is Verdict.NEVER:
            return Delivery("withheld", decision=decision)
        if decision.needs_notice:
            text = f"{text}\n\n{self.opt_out_notice(case.locale)}"
        contact = await gate.record(decision, case.chat_id, case.account_pk, purpose, case.id)
        if decision.verdict is Verdict.HOLD:
            assert contact is not None
            await outbox.message(
                f"contact:{contact.id}", case.chat_id, text, markup_json(markup), contact_id=contact.id, not_before=decision.at
            )
            return Delivery("held", decision=decision)
        try:
            with filed_under(case.account_pk):
                sent = await self.bot.send_message(case.chat_id, text, reply_markup=markup)
        except TelegramForbiddenError:
            gate.undelivered(contact)
            return Delivery("blocked", decision=decision)
        return Delivery("sent", sent.message_id, decision)

    def opt_out_notice(self, locale: str) -> str:
        """How to opt out, in the cardholder's language: the end of every message the bank starts where the pack says so."""
        with self.i18n.context(), self.i18n.use_locale(locale):
            return _("To stop messages from the bank in this chat, send /stop.")

    def decision_note(self, decision: Decision, desk_zone: str) -> str | None:
        """What the agent is told about a message the gate held or refused, in the desk's language
        (None: it went). Times are the cardholder's and the desk's, as Babel writes them."""
        if decision.verdict is Verdict.NOW:
            return None
        with self.speaking():
            if decision.verdict is Verdict.NEVER:
                return self._refusal(decision)
            theirs = clock_at(decision.at, self.locale, decision.zone, decision.now)
            yours = clock_at(decision.at, self.locale, ZoneInfo(desk_zone), decision.now)
            if decision.reason == "hours":
                return _(
                    "Held: the cardholder's local time is {now}; it will be delivered at {theirs} their time ({yours} yours)."
                ).format(now=clock_at(decision.now, self.locale, decision.zone, decision.now), theirs=theirs, yours=yours)
            cap = decision.cap or 0
            texts = {
                "day": ngettext(
                    "Held: the cardholder has had {count} message from the bank today, the most allowed; "
                    "it will be delivered at {theirs} their time ({yours} yours).",
                    "Held: the cardholder has had {count} messages from the bank today, the most allowed; "
                    "it will be delivered at {theirs} their time ({yours} yours).",
                    cap,
                ),
                "week": ngettext(
                    "Held: the cardholder has had {count} message from the bank this week, the most allowed; "
                    "it will be delivered at {theirs} their time ({yours} yours).",
                    "Held: the cardholder has had {count} messages from the bank this week, the most allowed; "
                    "it will be delivered at {theirs} their time ({yours} yours).",
                    cap,
                ),
                "month": ngettext(
                    "Held: the cardholder has had {count} message from the bank this month, the most allowed; "
                    "it will be delivered at {theirs} their time ({yours} yours).",
                    "Held: the cardholder has had {count} messages from the bank this month, the most allowed; "
                    "it will be delivered at {theirs} their time ({yours} yours).",
                    cap,
                ),
            }
            return texts[decision.reason].format(count=cap, theirs=theirs, yours=yours)

    def _refusal(self, decision: Decision) -> str:
        if decision.reason == "flag":
            return _("Not sent: the account is flagged ({flag}), so the bank starts no messages to it.").format(
                flag=self.flag_name(decision.flag or "")
            )
        if decision.reason == "opted_out":
            return _("Not sent: the cardholder asked for no messages (/stop). Messages can go again once they write in the chat.")
        if decision.reason == "dispute":
            return _("Not sent: a dispute is open on this account, so the bank starts no collection messages until its case is resolved.")
        return _("Not sent: the cardholder keeps a hardship agreement, under which the bank starts no collection messages.")

    @staticmethod
    def flag_name(flag: str) -> str:
        """A special situation as agents read it (in the desk's language, within `speaking`)."""
        names = {
            "deceased": _("deceased"),
            "bankruptcy": _("bankruptcy"),
            "lawyer": _("represented by a lawyer"),
            "cease": _("asked the bank to cease communication"),
        }
        return names.get(flag, flag)

    async def report_withheld(self, cases: CaseService, case_id: int | None, decision: Decision) -> None:
        """A held message the courier found it may no longer send: the case's agent is told why."""
        case = await cases.get(case_id) if case_id is not None else None
        if case is None:
            return
        with self.speaking():
            note = self._refusal(decision)
        try:
            await self.post(case, note)
        except TelegramAPIError as error:
            log.warning("case %s: could not report a withheld message: %s", case.id, error)

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
