"""What a handler works with for one update: its unit of work, who is talking, and the services."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Account, Case, ChatProfile
from bot.db.unit_of_work import UnitOfWork
from bot.domain.policy import Policy
from bot.services.arrangements import ArrangementService
from bot.services.audit import AuditTrail
from bot.services.cases import CaseService
from bot.services.contact import ContactGate
from bot.services.outbox import Outbox
from bot.services.verification import ChatSession, VerificationService


@dataclass(frozen=True)
class UpdateContext:
    """Given to every handler as `ctx`; the services share the update's one session."""

    unit: UnitOfWork
    policy: Policy
    """The bank's policy as it applies to the verified account (its jurisdiction's pack), or the
    bank's own before anyone is verified."""
    verification: VerificationService
    arrangements: ArrangementService
    cases: CaseService
    audit: AuditTrail
    outbox: Outbox
    contacts: ContactGate
    """Decides what the bank starts in a cardholder's chat (it reads each account's pack itself)."""
    chat: ChatSession | None = None
    """The private chat, the account it is verified for and its open case; None in groups."""

    @property
    def db(self) -> AsyncSession:
        return self.unit.session

    @property
    def account(self) -> Account | None:
        return self.chat.account if self.chat else None

    @property
    def open_case(self) -> Case | None:
        """The chat's case while it is with the agents (waiting or claimed)."""
        return self.chat.open_case if self.chat else None

    @property
    def profile(self) -> ChatProfile | None:
        return self.chat.profile if self.chat else None
