"""Per-update wiring: one database session, the chat's verification state, the audit of what came in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Chat, TelegramObject, Update, User
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.domain.policy import Policy
from bot.services.arrangements import ArrangementService
from bot.services.cases import CaseService
from bot.services.audit import AuditTrail, current_account
from bot.services.verification import VerificationRules, VerificationService


class UpdateContextMiddleware(BaseMiddleware):
    """Gives handlers `db`, the services, `chat_session` and `account` for this update."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        rules: VerificationRules,
        policy: Policy,
        clock: Clock,
        audit: AuditTrail,
    ) -> None:
        self.session_factory = session_factory
        self.rules = rules
        self.policy = policy
        self.clock = clock
        self.audit = audit

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        async with self.session_factory() as session:
            verification = VerificationService(session, self.rules, self.clock)
            data["db"] = session
            data["audit"] = self.audit
            data["verification"] = verification
            data["arrangements"] = ArrangementService(session, self.policy, self.clock)
            data["cases"] = cases = CaseService(session, self.clock)
            data["open_case"] = None
            data["chat_session"] = None
            data["account"] = None
            if chat is not None and chat.type == "private" and user is not None:
                chat_session = await verification.open_chat(chat.id, user.id)
                data["chat_session"] = chat_session
                data["chat_profile"] = chat_session.profile
                data["account"] = chat_session.account
                data["open_case"] = await cases.open_for_chat(chat.id)
            account = data["account"]
            token = current_account.set(account.id if account is not None else None)
            try:
                await self.audit.inbound(event, chat.id if chat else None)
                return await handler(event, data)
            finally:
                current_account.reset(token)


class UpdatesInFlight(BaseMiddleware):
    """Knows which updates the dispatcher has finished, so a shutdown or a test can wait for them."""

    REMEMBERED = 10_000

    def __init__(self) -> None:
        self.running = 0
        self.finished: set[int] = set()

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        self.running += 1
        try:
            return await handler(event, data)
        finally:
            self.running -= 1
            if len(self.finished) >= self.REMEMBERED:
                self.finished.clear()
            self.finished.add(event.update_id)

    def handled(self, update_id: int) -> bool:
        """True when this update was handled and no other update is being handled."""
        return update_id in self.finished and self.running == 0
