"""With REDIS_URL the conversation state lives in Redis: it survives a restart and idles out after FSM_TTL."""

from __future__ import annotations

import pytest
from aiogram.fsm.storage.base import StorageKey
from redis.asyncio import Redis

from bot.app import FSM_TTL, create_fsm_storage
from bot.settings import load_settings
from handlers.states import Verification
from tests.conftest import BACKEND_REDIS_URL, BOT_TOKEN

pytestmark = pytest.mark.database

KEY = StorageKey(bot_id=123456, chat_id=42, user_id=42)


async def test_state_in_redis_survives_a_new_storage_and_expires_when_idle(database_url: str) -> None:
    settings = load_settings(_env_file=None, bot_token=BOT_TOKEN, database_url=database_url, redis_url=BACKEND_REDIS_URL)
    client = Redis.from_url(BACKEND_REDIS_URL)
    await client.flushdb()
    storage = create_fsm_storage(settings, None)  # type: ignore[arg-type]  # Redis needs no database
    await storage.set_state(KEY, Verification.typing_birth_date)
    await storage.set_data(KEY, {"phone_hash": "ab" * 32, "accounts": [1]})
    await storage.close()

    storage = create_fsm_storage(settings, None)  # type: ignore[arg-type]
    assert await storage.get_state(KEY) == Verification.typing_birth_date.state
    assert await storage.get_data(KEY) == {"phone_hash": "ab" * 32, "accounts": [1]}
    keys = sorted(key.decode() for key in await client.keys("*"))
    assert keys == ["fsm:123456:42:42:default:data", "fsm:123456:42:42:default:state"], "keyed by bot: bots may share a Redis"
    for key in keys:
        assert 0 < await client.ttl(key) <= FSM_TTL.total_seconds()
    await storage.set_state(KEY, None)
    await storage.close()
    await client.flushdb()
    await client.aclose()
