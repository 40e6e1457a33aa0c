"""Webhook mode: the fake Bot API POSTs updates to the bot's server, as Telegram does.

The POST is answered once the update is handled; a POST without the secret is refused and not
handled; /healthz tells whether the database (and Redis) answer; /metrics counts what happened.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from sqlalchemy import func, insert, select

from bot.app import create_app
from bot.clock import ManualClock
from bot.db import create_engine
from bot.db.models import Account, Arrangement, AuditEvent
from bot.settings import Settings, load_settings
from bot.telegram_fake import FakeTelegram
from bot.telegram_fake.crowd import UpdateWaiter, account_rows, cardholders, run_crowd, settle_debt
from bot.telegram_fake.server import CONFLICT_WEBHOOK
from bot.webhook import WebhookServer
from tests.conftest import BOT_TOKEN, POSTGRES_URL, BotHarness, make_account, prepare_database

SECRET = "webhook-test_secret-0123456789"
PATH = "/telegram/webhook"
BIRTH_DATE = "03/07/1985"
CROWD = int(os.environ.get("WEBHOOK_CROWD", "30"))
"""Chats at once through the fake's delivery (WEBHOOK_CROWD=100 for the full check)."""


class WebhookHarness(BotHarness):
    """The bot behind its webhook server on a free port; the fake delivers to it."""

    server: WebhookServer | None = None
    url = ""

    async def start(self) -> None:
        self.app = await create_app(self.settings, clock=self.clock)
        self.server = WebhookServer(self.app)
        port = await self.server.start("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{port}"
        await self.server.set_webhook(self.url + PATH)

    async def stop(self) -> None:
        if self.app is None:
            return
        assert self.server is not None
        await self.server.stop()
        await self.app.close()
        self.app = None


def webhook_settings(fake: FakeTelegram, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "bot_token": BOT_TOKEN, "telegram_api_url": fake.base_url, "database_url": database_url,
        "webhook_secret": SECRET, "flood_burst": 1000,
    }
    values.update(overrides)
    return load_settings(_env_file=None, **values)


@pytest.fixture
async def hooked(fake: FakeTelegram, database_url: str) -> AsyncIterator[WebhookHarness]:
    harness = WebhookHarness(fake, webhook_settings(fake, database_url), ManualClock())
    await harness.start()
    await harness.add_accounts(make_account())
    yield harness
    await harness.stop()


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def bot_api(fake: FakeTelegram, method: str) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fake.base_url}/bot{BOT_TOKEN}/{method}") as response:
            return await response.json()


def sample(metrics: str, name: str, **labels: str) -> float:
    wanted = name + ("{" + ",".join(f'{key}="{value}"' for key, value in labels.items()) + "}" if labels else "")
    for line in metrics.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_cardholder_verifies_over_the_webhook_and_the_metrics_count_it(hooked: WebhookHarness) -> None:
    fake = hooked.fake
    info = await bot_api(fake, "getWebhookInfo")
    assert info["result"]["url"] == hooked.url + PATH and info["result"]["max_connections"] == 40
    assert "message" in info["result"]["allowed_updates"]
    cardholder = hooked.cardholder()
    assert "Hello!" in (await cardholder.send("/start"))[-1].text
    assert await cardholder.share_contact("+86 138 0013 8000")
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    typed = await cardholder.send(BIRTH_DATE)
    assert "you are verified" in typed[-1].text and "4321" in typed[-1].text
    plans = await cardholder.send("/plans")
    assert plans and plans[-1].labels
    button = next(label for label in plans[-1].labels if plans[-1].callback_data(label))
    await cardholder.press(button)
    fake.fail_next("sendMessage", 400, "Bad Request: chat not found")
    apology = await cardholder.send("/help")
    assert "Sorry, something went wrong" in apology[-1].text

    async with aiohttp.ClientSession() as session:
        async with session.get(f"{hooked.url}/bot{BOT_TOKEN}/getUpdates") as response:
            assert response.status == 404  # the bot serves only its path, /healthz and /metrics
    body = await bot_api(fake, "getUpdates")
    assert body["error_code"] == 409 and body["description"] == CONFLICT_WEBHOOK

    status, metrics = await get(hooked.url + "/metrics")
    assert status == 200
    assert sample(metrics, "repay_updates_total", type="message") == 5
    assert sample(metrics, "repay_updates_total", type="callback_query") == 1
    assert sample(metrics, "repay_update_handling_seconds_count") == 6
    assert sample(metrics, "repay_telegram_retry_after_total", method="sendMessage") == 1
    sent = sum(1 for call in fake.calls if call.method == "sendMessage")
    assert sample(metrics, "repay_telegram_requests_total", method="sendMessage") == sent
    assert sample(metrics, "repay_telegram_requests_total", method="setWebhook") == 1
    assert sample(metrics, "repay_update_errors_total", exception="TelegramBadRequest") == 1
    assert "repay_cases_waiting 0.0" in metrics
    assert sample(metrics, "repay_updates_in_flight") == 0


async def test_a_post_without_the_secret_is_refused_and_not_handled(hooked: WebhookHarness) -> None:
    fake = hooked.fake
    user = fake.add_user(777, first_name="Mallory")
    update = {"update_id": 4242, "message": {"message_id": 1, "date": 0, "from": user,
                                             "chat": {"id": 777, "type": "private", "first_name": "Mallory"}, "text": "/start"}}
    calls = len(fake.calls)
    async with aiohttp.ClientSession() as session:
        for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
            async with session.post(hooked.url + PATH, json=update, headers=headers) as response:
                assert response.status == 401
    async with hooked.session_factory() as session:
        recorded = await session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.update_id == 4242))
    assert recorded == 0
    assert fake.calls[calls:] == [], "nothing was said"
    assert hooked.app is not None and 4242 not in hooked.app.updates.finished


async def test_many_chats_at_once_over_the_webhook_each_settle_once(fake: FakeTelegram, database_url: str) -> None:
    settings = webhook_settings(fake, database_url, webhook_max_connections=40)
    app = await create_app(settings, clock=ManualClock())
    people = cardholders(CROWD)
    async with app.session_factory() as session, session.begin():
        await session.execute(insert(Account), account_rows(people, app.clock.now()))
    waiter = UpdateWaiter(app.dispatcher)
    server = WebhookServer(app)
    port = await server.start("127.0.0.1", 0)
    await server.set_webhook(f"http://127.0.0.1:{port}{PATH}")
    try:
        report = await run_crowd(fake, waiter, people, settle_debt)
        async with app.session_factory() as session:
            per_account = (await session.execute(select(Arrangement.account_pk, func.count()).group_by(Arrangement.account_pk))).all()
    finally:
        await server.stop()
        await app.close()
    assert report.completed == CROWD, report.unanswered
    assert len(per_account) == CROWD and {count for _, count in per_account} == {1}
    print(f"\n{CROWD} journeys over the webhook: {report.updates} updates in {report.seconds:.1f} s")


async def test_healthz_is_503_once_the_database_is_gone(fake: FakeTelegram, postgres_url: str) -> None:
    harness = WebhookHarness(fake, webhook_settings(fake, postgres_url), ManualClock())
    await harness.start()
    try:
        status, body = await get(harness.url + "/healthz")
        assert (status, body) == (200, '{"status": "ok", "checks": {"database": "ok"}}')
        admin = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg", "postgresql"))
        try:
            await admin.execute(f'DROP DATABASE "{postgres_url.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await admin.close()
        status, body = await get(harness.url + "/healthz")
        assert status == 503 and '"database": "failed: ' in body
    finally:
        assert harness.server is not None
        await harness.server.stop()
        await harness.app.close(settle=0)  # type: ignore[union-attr]


async def test_healthz_is_503_when_redis_does_not_answer(fake: FakeTelegram, database_url: str) -> None:
    harness = WebhookHarness(fake, webhook_settings(fake, database_url, redis_url="redis://127.0.0.1:1/0"), ManualClock())
    await harness.start()
    try:
        status, body = await get(harness.url + "/healthz")
    finally:
        await harness.stop()
    assert status == 503
    assert '"database": "ok"' in body and '"redis": "failed: ' in body


@pytest.mark.slow
async def test_the_webhook_command_runs_as_a_process_and_stops_on_sigterm(fake: FakeTelegram, tmp_path: Path) -> None:
    """Only environment settings; SIGTERM lets it finish and exit 0, the webhook left in place."""
    env = {
        "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path)), "BOT_TOKEN": BOT_TOKEN, "TELEGRAM_API_URL": fake.base_url or "",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", "PRIVACY_KEY": "webhook-test-key-0123456789abcdef01",
        "WEBHOOK_URL": "http://127.0.0.1:18931/hook", "WEBHOOK_SECRET": SECRET, "WEBHOOK_HOST": "127.0.0.1",
        "WEBHOOK_PORT": "18931", "WEBHOOK_PATH": "/hook", "LOG_LEVEL": os.environ.get("WEBHOOK_LOG_LEVEL", "WARNING"),
    }
    await prepare_database(env["DATABASE_URL"])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "webhook", env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
    )
    try:
        for _ in range(300):
            if (await bot_api(fake, "getWebhookInfo"))["result"]["url"]:
                break
            assert process.returncode is None
            await asyncio.sleep(0.05)
        fake.add_user(31, first_name="Ann")
        fake.user_sends_text(31, "/start")
        for _ in range(200):
            if fake.was_fetched(fake.last_update_id):
                break
            await asyncio.sleep(0.05)
        assert any(m.text.startswith("Hello!") for m in fake.bot_messages(31))
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    assert (await bot_api(fake, "getWebhookInfo"))["result"]["url"] == "http://127.0.0.1:18931/hook"


async def test_a_shutdown_finishes_the_updates_under_way_and_leaves_the_rest_to_telegram(hooked: WebhookHarness) -> None:
    fake = hooked.fake
    sent = []
    for user_id in range(2001, 2021):
        fake.add_user(user_id, first_name="Ann")
        fake.user_sends_text(user_id, "/start")
        sent.append(fake.last_update_id)
    assert hooked.server is not None and hooked.app is not None
    while not hooked.app.updates.running:
        await asyncio.sleep(0.001)
    await hooked.server.stop()
    async with hooked.session_factory() as session:
        recorded = set((await session.scalars(select(AuditEvent.update_id).where(AuditEvent.update_id.in_(sent)))).all())
    pending = {update["update_id"] for update in fake.pending_updates()}
    answered = {update_id for update_id in sent if fake.was_fetched(update_id)}
    assert answered <= recorded, "Telegram was told only of updates that are committed"
    assert set(sent) - recorded <= pending, "what was not handled is still Telegram's to deliver"
    assert answered, f"the updates under way were finished (recorded {len(recorded)}, pending {len(pending)})"
