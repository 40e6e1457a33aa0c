"""Two `python -m bot webhook` processes behind one load balancer, on one PostgreSQL database and one Redis.

The fake Telegram posts every update to a small balancer in the test, which hands each one to
either process at random. `TWO_PROCESS_CONVERSATIONS` cardholders (default 200; about 80 s on a busy
2-core machine, so the test is a `slow` campaign) verify, accept a plan and ask for a person at
once; the waiting cases are then made old enough to be announced again, which exactly one process does (the desk watch runs under a lease, every
DESK_WATCH_SECONDS); then two agents press the claim button of every case at the same moment, and
exactly one of them gets it, whichever process each press reached.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import insert, select, update

from bot.db import create_engine, create_session_factory
from bot.db.models import Account, Arrangement, Case, CaseEvent
from bot.telegram_fake import FakeTelegram
from bot.telegram_fake.crowd import Cardholder, CrowdDriver, CrowdReport, account_rows, cardholders, settle_debt

from tests.conftest import BOT_TOKEN

pytestmark = pytest.mark.slow

CONVERSATIONS = int(os.environ.get("TWO_PROCESS_CONVERSATIONS", "200"))
DESK = -1004242424242
AGENTS = (9101, 9102)
REDIS_URL = os.environ.get("TWO_PROCESS_REDIS_URL", "redis://127.0.0.1:6379/11")
SECRET = "two-processes-secret"
APOLOGY = "Sorry, something went wrong"
REANNOUNCED = re.compile(r"^Case #(\d+) \(.*\) is still waiting for an agent")
WATCH_SECONDS = 1.0
STEP_TIMEOUT = 120.0


class Delivered:
    """Waits until the fake's webhook delivery of an update was answered 2xx: the update is handled."""

    def __init__(self, fake: FakeTelegram) -> None:
        self.fake = fake

    async def wait(self, update_id: int, timeout: float = STEP_TIMEOUT) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.fake.was_fetched(update_id):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"update {update_id} was not handled")
            try:
                await asyncio.wait_for(self.fake.change_event().wait(), remaining)
            except TimeoutError:
                pass


class Balancer:
    """Forwards each POST (headers and body) to one of the backends at random, and returns its answer."""

    def __init__(self, backends: list[str], seed: int = 7) -> None:
        self.backends = backends
        self.random = random.Random(seed)
        self.forwarded: Counter[str] = Counter()
        self.runner: web.AppRunner | None = None
        self.session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self, path: str) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        app = web.Application()
        app.router.add_post(path, self.forward)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}{path}"

    async def forward(self, request: web.Request) -> web.Response:
        assert self.session is not None
        backend = self.random.choice(self.backends)
        headers = {name: value for name, value in request.headers.items() if name.lower() in ("content-type", "x-telegram-bot-api-secret-token")}
        async with self.session.post(backend, data=await request.read(), headers=headers) as answer:
            body = await answer.read()
            self.forwarded[backend] += 1
            return web.Response(status=answer.status, body=body, content_type=answer.content_type)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.session is not None:
            await self.session.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    await client.flushdb()
    yield REDIS_URL
    await client.flushdb()
    await client.aclose()


async def start_process(env: dict[str, str], folder: Path) -> tuple[asyncio.subprocess.Process, Path]:
    folder.mkdir()
    log = folder / "stderr.log"
    with log.open("wb") as err:
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "webhook", env=env, cwd=folder, stderr=err)
    return process, log


async def until_healthy(session: aiohttp.ClientSession, base: str, process: asyncio.subprocess.Process, log: Path) -> None:
    for _ in range(600):
        assert process.returncode is None, log.read_text()
        try:
            async with session.get(f"{base}/healthz") as answer:
                if answer.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{base} did not come up: {log.read_text()}")


async def ask_for_a_person(driver: CrowdDriver, person: Cardholder) -> bool:
    """The journey up to the handoff: verified, a plan accepted, a person asked for, the case announced."""
    uid = person.user_id
    if not await settle_debt(driver, person):
        return False
    asked = await driver.step("handoff", uid, lambda: driver.send(uid, "/agent"), lambda replies: any("queue" in (r.get("text") or "") for r in replies))
    if asked is None:
        return False
    return driver.case_card(DESK, f"CROWD-{uid}") is not None


async def both_agents_claim(fake: FakeTelegram, waiter: Delivered, person: Cardholder) -> tuple[str, str]:
    """Both agents press the case's claim button at the same moment; the two callback queries' ids."""
    card = CrowdDriver(fake, waiter, CrowdReport()).case_card(DESK, f"CROWD-{person.user_id}")  # type: ignore[arg-type]
    assert card is not None
    message_id, claim, _ = card
    queries = []
    for agent in AGENTS:
        queries.append(fake.member_presses(DESK, agent, message_id, claim))
        queries.append(fake.last_update_id)  # type: ignore[arg-type]
    first, first_update, second, second_update = queries
    await asyncio.gather(waiter.wait(int(first_update)), waiter.wait(int(second_update)))
    return str(first), str(second)


def reannounced(fake: FakeTelegram) -> Counter[int]:
    """How often each case was announced again in the desk group."""
    found: Counter[int] = Counter()
    for message in fake.bot_messages(DESK):
        matched = REANNOUNCED.match(message.text or "")
        if matched:
            found[int(matched.group(1))] += 1
    return found


async def test_two_processes_behind_a_balancer_share_the_crowd_and_do_each_thing_once(
    fake: FakeTelegram, postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    test_began = asyncio.get_running_loop().time()
    fake.add_forum_group(DESK)
    for agent in AGENTS:
        fake.add_user(agent, first_name=f"Agent{agent}")
    people = cardholders(CONVERSATIONS)
    engine = create_engine(postgres_url)
    session_factory = create_session_factory(engine)
    async with session_factory() as session, session.begin():
        await session.execute(insert(Account), account_rows(people))

    ports = [free_port(), free_port()]
    path = "/hook"
    balancer = Balancer([f"http://127.0.0.1:{port}{path}" for port in ports])
    await balancer.start(path)
    base_env = {
        "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path)), "BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_API_URL": fake.base_url or "", "DATABASE_URL": postgres_url, "REDIS_URL": redis_url,
        "PRIVACY_KEY": "two-processes-key-0123456789abcdef0123", "WEBHOOK_URL": balancer.url, "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_HOST": "127.0.0.1", "WEBHOOK_PATH": path, "AGENT_CHAT_ID": str(DESK), "AGENT_IDS": ",".join(map(str, AGENTS)),
        "FLOOD_BURST": "10000", "MAX_CONCURRENT_UPDATES": "16", "DESK_WATCH_SECONDS": str(WATCH_SECONDS),
        "LOG_LEVEL": os.environ.get("WEBHOOK_LOG_LEVEL", "WARNING"),
        **{name: os.environ[name] for name in ("OUTBOUND_BOT_PER_SECOND", "OUTBOUND_CHAT_PER_SECOND", "OUTBOUND_GROUP_PER_MINUTE")},
    }
    processes: list[tuple[asyncio.subprocess.Process, Path]] = []
    waiter = Delivered(fake)
    try:
        for index, port in enumerate(ports):
            processes.append(await start_process({**base_env, "WEBHOOK_PORT": str(port)}, tmp_path / f"process{index}"))
        async with aiohttp.ClientSession() as probe:
            for port, (process, log) in zip(ports, processes):
                await until_healthy(probe, f"http://127.0.0.1:{port}", process, log)
        for _ in range(600):
            if fake.api_getWebhookInfo(None)["url"] == balancer.url:  # type: ignore[arg-type]
                break
            await asyncio.sleep(0.05)

        loop = asyncio.get_running_loop()
        started = loop.time()
        phases: dict[str, float] = {"start": started - test_began}
        report = CrowdReport()
        driver = CrowdDriver(fake, waiter, report)  # type: ignore[arg-type]
        for person in people:
            fake.add_user(person.user_id, first_name="Crowd", language_code="en")
        began = loop.time()
        handed_off = await asyncio.gather(*(ask_for_a_person(driver, person) for person in people))
        phases["journeys"] = loop.time() - began
        assert sum(handed_off) == CONVERSATIONS, report.unanswered

        async with session_factory() as session, session.begin():
            waiting = set((await session.scalars(select(Case.id).where(Case.status == "waiting"))).all())
            await session.execute(update(Case).where(Case.status == "waiting").values(announced_at=datetime.now(timezone.utc) - timedelta(hours=1)))
        assert len(waiting) == CONVERSATIONS
        began = loop.time()
        while set(reannounced(fake)) != waiting and loop.time() - began < 60:
            await asyncio.sleep(0.1)
        assert set(reannounced(fake)) == waiting, f"{len(reannounced(fake))} of {len(waiting)} cases announced again"
        await asyncio.sleep(3 * WATCH_SECONDS)  # rounds of both processes' watches come and go meanwhile
        reannouncements = reannounced(fake)
        phases["announced again"] = loop.time() - began
        began = loop.time()

        claims = await asyncio.gather(*(both_agents_claim(fake, waiter, person) for person in people))
        async with session_factory() as session:
            arrangements = Counter((await session.scalars(select(Arrangement.account_pk))).all())
            cases = (await session.execute(select(Case.id, Case.status, Case.agent_id))).all()
            claim_events = Counter((await session.scalars(select(CaseEvent.case_id).where(CaseEvent.kind == "claim"))).all())
        phases["claims"] = loop.time() - began
    finally:
        stopping = asyncio.get_running_loop().time()
        for process, _ in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        exits = []
        for process, log in processes:
            try:
                exits.append(await asyncio.wait_for(process.wait(), 30))
            except TimeoutError:
                process.kill()
                exits.append(await process.wait())
        await balancer.stop()
        await engine.dispose()

    phases["stop"] = asyncio.get_running_loop().time() - stopping
    print(f"\n{CONVERSATIONS} conversations, {report.updates} updates before the claims; forwarded {dict(balancer.forwarded)}; "
          f"seconds: {', '.join(f'{name} {seconds:.1f}' for name, seconds in phases.items())}")
    logs = [log.read_text() for _, log in processes]
    assert exits == [0, 0], logs
    assert all("Traceback" not in text for text in logs), logs
    shares = [balancer.forwarded[backend] for backend in balancer.backends]
    assert min(shares) > 0.3 * sum(shares), f"each process handled a fair share of the updates: {shares}"
    assert report.unanswered_total == 0, report.unanswered
    for person in people:
        assert not [m for m in fake.bot_messages(person.user_id) if APOLOGY in (m.text or "")]
    assert not [m for m in fake.bot_messages(DESK) if APOLOGY in (m.text or "")]
    assert len(arrangements) == CONVERSATIONS and set(arrangements.values()) == {1}, "one arrangement per account"
    assert set(reannouncements) == waiting and set(reannouncements.values()) == {1}, (
        f"each case announced again once: {Counter(reannouncements.values())}"
    )
    assert reannounced(fake) == reannouncements, "nothing announced again after the claims began"
    assert len(cases) == CONVERSATIONS and {status for _, status, _ in cases} == {"claimed"}
    assert claim_events == {case_id: 1 for case_id, _, _ in cases}, "every case claimed exactly once"
    for (first, second), person in zip(claims, people):
        answers = [fake.callback_answer(first), fake.callback_answer(second)]
        refused = [answer for answer in answers if answer and "Already taken" in (answer.get("text") or "")]
        assert len(refused) == 1, (person.user_id, answers)
        joined = [m for m in fake.bot_messages(person.user_id) if m.text.startswith("A person from the bank has joined")]
        assert len(joined) == 1
    winners = Counter(agent for _, _, agent in cases)
    assert set(winners) <= set(AGENTS)
