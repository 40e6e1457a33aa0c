"""Background jobs run in one process at a time, however many bot processes share the database.

A job holds a lease: a `job_leases` row naming the holder and when the lease runs out. Taking a
free or expired lease and renewing one's own are one conditional upsert, so the database decides
between processes asking at once (SQLite and PostgreSQL alike, no Redis needed). A job asks before
each round (`hold`) and does the round only while it holds the lease; a process that stops hands
its leases back (`release`), and one that dies loses them when they expire.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import delete, or_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.models import JobLease
from bot.db.upsert import insert_for

log = logging.getLogger(__name__)


def process_holder() -> str:
    """A name for this process as a lease holder: unique even for two processes of one host and pid."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Lease:
    """The right to run the job `name` for `ttl` at a time, renewed by asking again."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        name: str,
        holder: str,
        ttl: timedelta,
        clock: Clock | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self.clock = clock or Clock()
        self.held = False

    async def hold(self) -> bool:
        """Take the lease if it is free or expired, renew it if it is ours: True when we hold it now."""
        now = self.clock.now()
        async with self.session_factory() as session, session.begin():
            insert = insert_for(session)
            statement = insert(JobLease).values(name=self.name, holder=self.holder, expires_at=now + self.ttl)
            statement = statement.on_conflict_do_update(
                index_elements=[JobLease.name],
                set_={"holder": statement.excluded.holder, "expires_at": statement.excluded.expires_at},
                where=or_(JobLease.holder == self.holder, JobLease.expires_at <= now),
            ).returning(JobLease.holder)
            won = (await session.execute(statement)).scalar_one_or_none() == self.holder
        if won != self.held:
            log.info("job %s: %s the lease", self.name, "took" if won else "lost")
        self.held = won
        return won

    async def release(self) -> None:
        """Hand the lease back (a process stopping): another process may take it at once."""
        async with self.session_factory() as session, session.begin():
            await session.execute(delete(JobLease).where(JobLease.name == self.name, JobLease.holder == self.holder))
        self.held = False


async def run_leased(
    lease: Lease,
    round_: Callable[[], Awaitable[object]],
    every: float,
    stopping: asyncio.Event,
    first_after: float = 0.0,
) -> None:
    """Do `round_` every `every` seconds (the first after `first_after`) while this process holds
    `lease`, until `stopping` is set.

    A round that fails is logged and the next one comes; the lease is handed back at the end.
    """
    try:
        if first_after > 0 and await _stopped(stopping, first_after):
            return
        while not stopping.is_set():
            try:
                if await lease.hold():
                    await round_()
            except Exception:  # noqa: BLE001 - the job must outlive one bad round; it is logged
                log.exception("job %s: a round failed", lease.name)
            await _stopped(stopping, every)
    finally:
        if lease.held:
            try:
                await lease.release()
            except Exception:  # noqa: BLE001 - it expires anyway
                log.exception("job %s: the lease could not be handed back; it expires", lease.name)


async def _stopped(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds` or until `stopping` is set: True when it is."""
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        return False
    return True
