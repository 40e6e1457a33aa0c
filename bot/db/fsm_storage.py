"""aiogram FSM storage on SQLAlchemy: conversation state survives a restart of the process."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, KeyBuilder, StateType, StorageKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import FsmRecord
from bot.db.upsert import insert_for


class SQLAlchemyStorage(BaseStorage):
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        key_builder: KeyBuilder | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._key_builder = key_builder or DefaultKeyBuilder(with_destiny=True)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        await self._upsert(self._key_builder.build(key), {"state": value})

    async def get_state(self, key: StorageKey) -> str | None:
        record = await self._load(self._key_builder.build(key))
        return record.state if record else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._upsert(self._key_builder.build(key), {"data": json.dumps(dict(data), ensure_ascii=False)})

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        record = await self._load(self._key_builder.build(key))
        return json.loads(record.data) if record else {}

    async def close(self) -> None:
        """The engine belongs to the composition root, which disposes of it."""

    async def _load(self, key: str) -> FsmRecord | None:
        async with self._session_factory() as session:
            return await session.scalar(select(FsmRecord).where(FsmRecord.key == key))

    async def _upsert(self, key: str, values: dict[str, Any]) -> None:
        async with self._session_factory() as session, session.begin():
            insert = insert_for(session)
            row = {"key": key, "state": None, "data": "{}", **values}
            await session.execute(insert(FsmRecord).values(row).on_conflict_do_update(index_elements=["key"], set_=values))
