"""Under faults on every call to Telegram, every journey completes and nothing happens twice.

The fake answers a share of all calls (getUpdates included) with 429, 500, a 502 page, no answer
in time or a dropped connection, and delivers a share of updates twice. `FAULT_JOURNEYS` sets how
many cardholders run (default 50); each verifies, accepts a plan, asks for a person, and writes
once to the agent who claimed the case, who writes once back.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.db.models import Arrangement, AuditEvent, Case, Relay
from bot.telegram_fake import FakeTelegram
from bot.telegram_fake.crowd import desk_journey, relay_text, run_crowd
from bot.telegram_fake.server import Faults
from tests.test_many_at_once import start_bot, stop_bot

pytestmark = pytest.mark.slow  # a campaign: `make test-slow`, run by .ci/run

JOURNEYS = int(os.environ.get("FAULT_JOURNEYS", "50"))
DESK = -1009876543210
AGENT = 9001
APOLOGY = "Sorry, something went wrong"


async def test_every_journey_completes_under_ten_percent_faults_and_nothing_happens_twice(
    fake: FakeTelegram, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_forum_group(DESK)
    fake.add_user(AGENT, first_name="Agent")
    app, waiter, polling, people = await start_bot(
        fake, database_url, JOURNEYS, agent_chat_id=DESK, agent_ids=str(AGENT), telegram_timeout=1.0
    )
    fake.faults = Faults(rate=0.10, duplicates=0.10, timeout_seconds=3.0, seed=12)
    caplog.set_level(logging.ERROR)
    try:
        report = await run_crowd(fake, waiter, people, desk_journey(DESK, AGENT))
        faults, fake.faults = fake.faults, Faults()
        app.courier.grace = timedelta(0)
        completed_later = await app.courier.run_once()
        async with app.session_factory() as session:
            arrangements = Counter((await session.scalars(select(Arrangement.account_pk))).all())
            relays = (await session.execute(select(Relay.direction, Relay.status))).all()
            cases = (await session.scalars(select(Case.status))).all()
            inbound = await session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.update_id.is_not(None)))
    finally:
        await stop_bot(app, polling)

    assert report.completed == JOURNEYS, report.unanswered
    assert completed_later == 0, "every effect was completed by its own update"
    print(f"\n{JOURNEYS} journeys, {report.updates} updates, {len(fake.calls)} calls, faults injected {faults.injected} "
          f"({faults.total}), updates delivered twice {faults.duplicated}, in {report.seconds:.1f} s")
    assert faults.total > JOURNEYS and faults.duplicated > JOURNEYS // 2
    assert len(arrangements) == JOURNEYS and set(arrangements.values()) == {1}
    assert Counter(relays) == {("to_agents", "sent"): JOURNEYS, ("to_cardholder", "sent"): JOURNEYS}
    assert cases == ["claimed"] * JOURNEYS
    assert inbound == report.updates, "each update recorded once, however often it came"
    for person in people:
        assert sum(1 for m in fake.bot_messages(person.user_id) if m.text.startswith("Done")) == 1
        assert sum(1 for m in fake.bot_messages(person.user_id) if m.text == relay_text(person, "agent")) == 1
        assert sum(1 for m in fake.bot_messages(DESK) if m.text == relay_text(person, "cardholder")) == 1
        assert not [m for m in fake.bot_messages(person.user_id) if APOLOGY in m.text]
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []
