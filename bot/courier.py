"""The courier: completes the effects on Telegram an update recorded and could not finish.

At start-up and then every `every` seconds it sends what `bot.services.outbox.Outbox.due` finds:
messages left unsent, case topics not made, relays pending or failed. An update sends its own
effects itself; the courier is for what a crash or a long Telegram outage left behind, and for the
messages the bank started that the contact gate held until now: each is decided again before it
goes (`bot.services.contact`), since the cardholder may have opted out or the caps filled meanwhile.
With several bot processes the courier runs in the one holding its lease (`bot.leases`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiogram import Bot
from aiogram.exceptions import ClientDecodeError, TelegramAPIError
from aiogram.types import InlineKeyboardMarkup
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.models import Account, Case, Contact, OutboxMessage
from bot.db.unit_of_work import unit_of_work
from bot.desk import Desk, markup_json
from bot.domain.policy import Policy
from bot.leases import Lease, process_holder, run_leased
from bot.services.filing import filed_under
from bot.services.cases import CaseService
from bot.services.contact import ContactGate, Decision, Verdict
from bot.services.outbox import GRACE, Outbox

log = logging.getLogger(__name__)

LEASE_ROUNDS = 6
"""The courier's lease lasts this many rounds: a process that died is replaced within half a minute."""

OpenTopic = Callable[[Desk, CaseService, Case, Account | None, Policy], Awaitable[bool]]


async def send_message(bot: Bot, outbox: Outbox, message: OutboxMessage) -> bool:
    """Send one recorded message and mark it; False (and the error kept) when Telegram failed."""
    markup = InlineKeyboardMarkup.model_validate_json(message.reply_markup) if message.reply_markup else None
    try:
        with filed_under(message.account_pk):
            await bot.send_message(message.chat_id, message.text, reply_markup=markup)
    except (TelegramAPIError, ClientDecodeError) as error:
        log.warning("outbox message %s not sent yet: %s", message.id, error)
        outbox.failed(message, str(error))
        return False
    outbox.sent(message)
    return True


__all__ = ["Courier", "markup_json", "send_message"]


class Courier:
    def __init__(
        self,
        bot: Bot,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        policy: Policy,
        desk: Desk | None,
        open_topic: OpenTopic,
        every: float = 5.0,
        grace: timedelta = GRACE,
        lease: Lease | None = None,
    ) -> None:
        self.bot = bot
        self.session_factory = session_factory
        self.clock = clock
        self.policy = policy
        self.desk = desk
        self.open_topic = open_topic
        self.every = every
        self.grace = grace
        self.lease = lease or Lease(session_factory, "courier", process_holder(), LEASE_ROUNDS * timedelta(seconds=every), clock)
        self.task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def run_once(self) -> int:
        """Complete what is due; returns how many effects were completed."""
        done = 0
        async with unit_of_work(self.session_factory) as unit:
            outbox = Outbox(unit.session, self.clock)
            gate = ContactGate(unit.session, self.policy, self.clock)
            cases = CaseService(unit.session, self.clock)
            due = await outbox.due(self.grace)
            for message in due.messages:
                decision = await self._decide_again(gate, cases, message.contact_id)
                if decision is None or decision.verdict is Verdict.NOW:
                    done += await send_message(self.bot, outbox, message)
                elif decision.verdict is Verdict.HOLD:
                    outbox.hold(message, decision.at)
                else:
                    outbox.withhold(message, decision.reason)
                    done += 1
            if self.desk is not None:
                for case in due.cases:
                    account = await unit.session.get(Account, case.account_pk) if case.account_pk else None
                    done += await self.open_topic(self.desk, cases, case, account, self.policy)
                for relay in due.relays:
                    case = await cases.get(relay.case_id)
                    assert case is not None
                    decision = await self._decide_again(gate, cases, relay.contact_id)
                    if decision is None or decision.verdict is Verdict.NOW:
                        done += (await self.desk.send_relay(cases, relay, case)).status in ("sent", "blocked")
                    elif decision.verdict is Verdict.HOLD:
                        relay.status, relay.not_before = "held", decision.at
                    else:
                        await cases.finish_relay(relay, "withheld", relay.attempts)
                        relay.text_out = None
                        done += 1
        return done

    async def _decide_again(self, gate: ContactGate, cases: CaseService, contact_id: int | None) -> Decision | None:
        """A message the bank started, decided again as it falls due (None: not one, it goes);
        one that may no longer go is reported in its case."""
        contact = await gate.session.get(Contact, contact_id) if contact_id is not None else None
        if contact is None:
            return None
        decision = await gate.decide(contact.chat_id, contact.account_pk, contact.purpose, excluding=contact.id)
        gate.redecided(contact, decision)
        if decision.verdict is Verdict.NEVER and self.desk is not None:
            await self.desk.report_withheld(cases, contact.case_id, decision)
        return decision

    async def start(self) -> None:
        self._stopping.clear()
        self.task = asyncio.create_task(run_leased(self.lease, self.run_once, self.every, self._stopping))

    async def stop(self) -> None:
        """Lets the round under way finish (a round cut short would leave its connection behind)."""
        self._stopping.set()
        if self.task is not None:
            await self.task
            self.task = None
