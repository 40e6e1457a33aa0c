"""The FSM storage on SQL keeps state and data across engines (a restart), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from aiogram.fsm.storage.base import StorageKey

from bot.db import create_engine, create_session_factory
from bot.db.fsm_storage import SQLAlchemyStorage
from handlers.states import Verification

pytestmark = pytest.mark.database

KEY = StorageKey(bot_id=1, chat_id=42, user_id=42)
OTHER = StorageKey(bot_id=1, chat_id=43, user_id=43)


@pytest.fixture(params=["database_url", "postgres_url"], ids=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(request.param)


async def storage_on(url: str) -> tuple[SQLAlchemyStorage, object]:
    engine = create_engine(url)
    return SQLAlchemyStorage(create_session_factory(engine)), engine


async def test_state_and_data_survive_a_new_engine(url: str) -> None:
    storage, engine = await storage_on(url)
    await storage.set_state(KEY, Verification.typing_birth_date)
    await storage.set_data(KEY, {"phone": "+8613800138000", "attempt": 2, "名字": "数据"})
    await storage.update_data(KEY, {"attempt": 3})
    await engine.dispose()

    storage, engine = await storage_on(url)
    assert await storage.get_state(KEY) == "Verification:typing_birth_date"
    assert await storage.get_data(KEY) == {"phone": "+8613800138000", "attempt": 3, "名字": "数据"}
    assert await storage.get_state(OTHER) is None
    assert await storage.get_data(OTHER) == {}

    await storage.set_state(KEY, None)
    await storage.set_data(KEY, {})
    assert await storage.get_state(KEY) is None
    assert await storage.get_data(KEY) == {}
    await storage.close()
    await engine.dispose()
