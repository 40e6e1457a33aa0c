"""aiogram FSM storage on SQLAlchemy: conversation state survives a restart of the process.

Inside an update the state lives in the update's unit of work: read once, written with the rest
of the update's work and only when it changed. Outside an update (tools, tests) each call is a
short transaction of its own.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, KeyBuilder, StateType, StorageKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.unit_of_work import UnitOfWork, current_unit, unit_of_work


class SQLAlchemyStorage(BaseStorage):
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        key_builder: KeyBuilder | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._key_builder = key_builder or DefaultKeyBuilder(with_destiny=True)

    @asynccontextmanager
    async def _unit(self) -> AsyncIterator[UnitOfWork]:
        """The update's unit of work, or a unit of this call's own outside an update."""
        unit = current_unit.get()
        if unit is not None:
            yield unit
            return
        async with unit_of_work(self._session_factory) as own:
            yield own

    def key_string(self, key: StorageKey) -> str:
        """The record's key for this storage key, as stored in `fsm_records`."""
        return self._key_builder.build(key)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        async with self._unit() as unit:
            await unit.set_fsm_state(self._key_builder.build(key), value)

    async def get_state(self, key: StorageKey) -> str | None:
        async with self._unit() as unit:
            return await unit.fsm_state(self._key_builder.build(key))

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        json.dumps(dict(data))  # data that cannot be stored is refused here, not at the commit
        async with self._unit() as unit:
            await unit.set_fsm_data(self._key_builder.build(key), data)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        async with self._unit() as unit:
            return await unit.fsm_data(self._key_builder.build(key))

    async def close(self) -> None:
        """The engine belongs to the composition root, which disposes of it."""
