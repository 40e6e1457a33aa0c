"""What must hold when two bot processes handle contending taps at once, on PostgreSQL.

Each contender has an engine of its own (as a process has) and its own transaction; both have read
what they act on before either writes (a barrier), so the database alone decides between them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime, timezone
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import ManualClock
from bot.db import create_engine, create_session_factory
from bot.db.models import Account, Arrangement, Case, CaseEvent, VerificationLock
from bot.domain.policy import load_policy
from bot.services.arrangements import Accepted, ArrangementService, OfferUnavailable
from bot.services.cases import CaseService
from bot.services.verification import Outcome, VerificationRules, VerificationService
from bot.settings import DEFAULT_POLICY_FILE
from tests.conftest import add_accounts, make_account

pytestmark = pytest.mark.database

POLICY = load_policy(DEFAULT_POLICY_FILE)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
RULES = VerificationRules(max_attempts=3, lock_minutes=30, idle_minutes=30, phone_key=b"k" * 32)

Factories = tuple[async_sessionmaker[AsyncSession], async_sessionmaker[AsyncSession]]


@pytest.fixture
async def processes(postgres_url: str) -> AsyncIterator[Factories]:
    first, second = create_engine(postgres_url), create_engine(postgres_url)
    yield create_session_factory(first), create_session_factory(second)
    await first.dispose()
    await second.dispose()


async def at_once(
    factories: Factories, contenders: list[Callable[[AsyncSession], Awaitable[Any]]]
) -> list[Any]:
    """Run each contender in its own transaction on its process's engine; all read before any writes."""
    barrier = asyncio.Barrier(len(contenders))

    async def run(index: int, contender: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
        async with factories[index % 2]() as session, session.begin():
            await session.scalar(select(func.count()).select_from(Account))  # the transaction is open
            await barrier.wait()
            try:
                return await contender(session)
            except OfferUnavailable as unavailable:
                return unavailable

    return list(await asyncio.gather(*(run(i, c) for i, c in enumerate(contenders))))


async def a_waiting_case(factory: async_sessionmaker[AsyncSession]) -> int:
    async with factory() as session, session.begin():
        case = Case(chat_id=501, reason="asked", locale="en", status="waiting", created_at=NOW, announced_at=NOW)
        session.add(case)
        await session.flush()
        return case.id


async def test_two_agents_claiming_one_case_in_two_processes_exactly_one_wins(processes: Factories) -> None:
    clock = ManualClock(start=NOW)
    for _ in range(3):
        case_id = await a_waiting_case(processes[0])

        async def claim(agent_id: int) -> Callable[[AsyncSession], Awaitable[Any]]:
            return lambda session: CaseService(session, clock).claim(case_id, agent_id)

        claims = await at_once(processes, [await claim(9001), await claim(9002)])
        assert sorted(claim.won for claim in claims) == [False, True]
        winner = next(claim for claim in claims if claim.won)
        async with processes[1]() as session:
            case = await session.get(Case, case_id)
            assert case is not None and case.status == "claimed" and case.agent_id == winner.case.agent_id
            events = await session.scalar(select(func.count()).where(CaseEvent.case_id == case_id, CaseEvent.kind == "claim"))
            assert events == 1
        async with processes[0]() as session, session.begin():
            case = await session.get(Case, case_id)
            assert case is not None
            case.status = "resolved"  # the next round's case may open for the same chat


async def offers_of(factory: async_sessionmaker[AsyncSession], clock: ManualClock) -> tuple[Account, list[int]]:
    async with factory() as session, session.begin():
        account = await session.scalar(select(Account))
        assert account is not None
        menu = await ArrangementService(session, POLICY, clock).menu(account, 601)
    return account, [menu.full.offer_id, *(plan.offer_id for plan in menu.plans)]


async def accepting(account_pk: int, offer_id: int, clock: ManualClock, replace: bool = False) -> Callable[[AsyncSession], Awaitable[Any]]:
    async def accept(session: AsyncSession) -> Any:
        account = await session.get(Account, account_pk)
        assert account is not None
        return await ArrangementService(session, POLICY, clock).accept(account, offer_id, 601, replace=replace)

    return accept


async def active_arrangements(factory: async_sessionmaker[AsyncSession]) -> list[int]:
    async with factory() as session:
        return list(await session.scalars(select(Arrangement.offer_id).where(Arrangement.status == "active")))


async def test_the_same_tap_or_two_offers_accepted_in_two_processes_make_one_arrangement(processes: Factories) -> None:
    clock = ManualClock(start=NOW)
    await add_accounts(processes[0], make_account())
    account, offers = await offers_of(processes[0], clock)

    same_tap = await at_once(processes, [await accepting(account.id, offers[0], clock), await accepting(account.id, offers[0], clock)])
    assert sum(isinstance(result, Accepted) for result in same_tap) == 1, same_tap
    assert await active_arrangements(processes[0]) == [offers[0]]

    account, offers = await offers_of(processes[0], clock)
    two_offers = await at_once(
        processes, [await accepting(account.id, offers[1], clock, replace=True), await accepting(account.id, offers[2], clock, replace=True)]
    )
    assert sum(isinstance(result, Accepted) for result in two_offers) == 1, two_offers
    winner = next(result for result in two_offers if isinstance(result, Accepted))
    assert await active_arrangements(processes[0]) == [winner.arrangement.offer_id]


async def test_failed_attempts_on_one_phone_in_two_processes_are_counted_exactly(processes: Factories) -> None:
    clock = ManualClock(start=NOW)
    await add_accounts(processes[0], make_account())
    async with processes[0]() as session:
        claim = (await VerificationService(session, RULES, clock).claim_phone("+8613800138000")).claim
    profiles = []
    async with processes[0]() as session, session.begin():
        for chat_id in (701, 702):
            profile = await VerificationService(session, RULES, clock).open_chat(chat_id, chat_id)
            profiles.append(profile.profile)

    def wrong_birth_date(chat_id: int) -> Callable[[AsyncSession], Awaitable[Any]]:
        async def verify(session: AsyncSession) -> Any:
            from bot.db.models import ChatProfile

            profile = await session.get(ChatProfile, chat_id)
            assert profile is not None
            return (await VerificationService(session, RULES, clock).verify(profile, claim, date(1990, 1, 1))).outcome

        return verify

    first = await at_once(processes, [wrong_birth_date(701), wrong_birth_date(702)])
    assert sorted(outcome.value for outcome in first) == ["mismatch", "mismatch"]
    async with processes[1]() as session:
        lock = await session.get(VerificationLock, claim.phone_hash)
        assert lock is not None and lock.failures == 2, "both attempts counted"
    third = await at_once(processes, [wrong_birth_date(701), wrong_birth_date(702)])
    assert sorted(outcome.value for outcome in third) == ["locked", "locked"], "the third attempt locks, the fourth finds it locked"
    async with processes[1]() as session:
        lock = await session.get(VerificationLock, claim.phone_hash)
        assert lock is not None and lock.locked_until is not None and lock.failures == 0
    assert Outcome.LOCKED in third
