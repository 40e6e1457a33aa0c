"""The courier: completes the effects on Telegram an update recorded and could not finish.

At start-up and then every `every` seconds it sends what `bot.services.outbox.Outbox.due` finds:
messages left unsent, case topics not made, relays pending or failed. An update sends its own
effects itself; the courier is for what a crash or a long Telegram outage left behind. With several
bot processes the courier runs in the one holding its lease (`bot.leases`).
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
from bot.db.models import Account, Case, OutboxMessage
from bot.db.unit_of_work import unit_of_work
from bot.desk import Desk
from bot.domain.policy import Policy
from bot.leases import Lease, process_holder, run_leased
from bot.services.filing import filed_under
from bot.services.cases import CaseService
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


def markup_json(markup: InlineKeyboardMarkup | None) -> str | None:
    return None if markup is None else markup.model_dump_json(exclude_none=True)


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
            due = await outbox.due(self.grace)
            for message in due.messages:
                done += await send_message(self.bot, outbox, message)
            if self.desk is not None:
                cases = CaseService(unit.session, self.clock)
                for case in due.cases:
                    account = await unit.session.get(Account, case.account_pk) if case.account_pk else None
                    done += await self.open_topic(self.desk, cases, case, account, self.policy)
                for relay in due.relays:
                    case = await cases.get(relay.case_id)
                    assert case is not None
                    done += (await self.desk.send_relay(cases, relay, case)).status in ("sent", "blocked")
        return done

    async def start(self) -> None:
        self._stopping.clear()
        self.task = asyncio.create_task(run_leased(self.lease, self.run_once, self.every, self._stopping))

    async def stop(self) -> None:
        """Lets the round under way finish (a round cut short would leave its connection behind)."""
        self._stopping.set()
        if self.task is not None:
            await self.task
            self.task = None
