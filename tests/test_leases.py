"""Background jobs run once across processes: two holders on two engines (two processes) share one lease."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import ManualClock
from bot.db import create_engine, create_session_factory
from bot.db.models import JobLease
from bot.leases import Lease, run_leased

pytestmark = pytest.mark.database

TTL = timedelta(seconds=30)
START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["database_url", "postgres_url"], ids=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(request.param)


@pytest.fixture
async def two_processes(url: str) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], async_sessionmaker[AsyncSession]]]:
    """Two engines on one database, as two bot processes have."""
    first, second = create_engine(url), create_engine(url)
    yield create_session_factory(first), create_session_factory(second)
    await first.dispose()
    await second.dispose()


async def test_of_two_holders_asking_at_once_exactly_one_holds_the_lease(two_processes) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(start=START)
    a = Lease(two_processes[0], "courier", "process-a", TTL, clock)
    b = Lease(two_processes[1], "courier", "process-b", TTL, clock)
    for _ in range(5):
        held = await asyncio.gather(a.hold(), b.hold())
        assert sorted(held) == [False, True]
    winner = a if a.held else b
    assert await winner.hold() is True, "the holder renews its own lease"
    other_job = Lease(two_processes[1], "desk-watch", "process-b", TTL, clock)
    assert await other_job.hold() is True, "each job has a lease of its own"


async def test_a_holder_that_dies_loses_the_lease_when_it_expires(two_processes) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(start=START)
    a = Lease(two_processes[0], "courier", "process-a", TTL, clock)
    b = Lease(two_processes[1], "courier", "process-b", TTL, clock)
    assert await a.hold() is True
    clock.advance(seconds=29)
    assert await b.hold() is False, "not yet expired"
    assert await a.hold() is True, "renewed: it runs out 30 s from now"
    clock.advance(seconds=29)
    assert await b.hold() is False
    clock.advance(seconds=2)  # process a died after its last renewal: the lease ran out
    assert await b.hold() is True
    assert await a.hold() is False, "a holder that comes back finds the lease taken"
    async with two_processes[0]() as session:
        row = await session.scalar(select(JobLease).where(JobLease.name == "courier"))
    assert row is not None and row.holder == "process-b" and row.expires_at == clock.now() + TTL


async def test_two_running_jobs_do_their_rounds_in_one_process_and_the_other_takes_over_on_stop(two_processes) -> None:  # type: ignore[no-untyped-def]
    rounds = {"a": 0, "b": 0}

    def job(name: str) -> object:
        async def round_() -> None:
            rounds[name] += 1

        return round_

    a = Lease(two_processes[0], "courier", "process-a", TTL)
    b = Lease(two_processes[1], "courier", "process-b", TTL)
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    task_a = asyncio.create_task(run_leased(a, job("a"), 0.02, stop_a))  # type: ignore[arg-type]
    task_b = asyncio.create_task(run_leased(b, job("b"), 0.02, stop_b))  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while max(rounds.values()) < 5 and loop.time() < deadline:
        await asyncio.sleep(0.02)
    assert sorted(rounds.values())[0] == 0 and max(rounds.values()) >= 5, rounds
    running, waiting = ("a", "b") if rounds["a"] else ("b", "a")
    stops, tasks = {"a": stop_a, "b": stop_b}, {"a": task_a, "b": task_b}
    stops[running].set()
    await tasks[running]  # a process stopping hands its lease back
    while rounds[waiting] < 3 and loop.time() < deadline:
        await asyncio.sleep(0.02)
    assert rounds[waiting] >= 3, rounds
    stops[waiting].set()
    await tasks[waiting]
    async with two_processes[0]() as session:
        assert await session.scalar(select(JobLease)) is None, "both stopped: the lease is free"
