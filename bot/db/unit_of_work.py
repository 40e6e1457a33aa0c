"""One update's database work: one session, one transaction, committed before the bot speaks.

The update middleware opens a `UnitOfWork` for each update and makes it current. Everything the
update reads or writes goes through its session: the FSM storage, the services and the audit
trail. Services never commit. The unit commits once when the handler returns (rolled back on
error), and also right before any call to Telegram made while it holds writes: what the bot tells
someone is always already recorded, and no HTTP call waits inside a write transaction (on SQLite a
write transaction locks the whole database). That rule lives in one place,
`bot.services.audit.OutboundMiddleware`, which commits the current unit before every call.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Base, FsmRecord
from bot.db.upsert import insert_for

EMPTY_DATA = "{}"


class UpdateHandledBefore(Exception):
    """This update was recorded by an earlier delivery: nothing of this one is written or said."""


def _names_the_update(error: IntegrityError) -> bool:
    """The violated constraint is one audit row per update (SQLite names the column, PostgreSQL the index)."""
    text = str(error.orig)
    return "audit_events.update_id" in text or "ux_audit_update" in text


@dataclass
class _FsmEntry:
    """One FSM key as loaded in this unit, and as it stands now."""

    loaded_state: str | None
    loaded_data: str
    state: str | None
    data: str

    @property
    def changed(self) -> bool:
        return (self.state, self.data) != (self.loaded_state, self.loaded_data)


class UnitOfWork:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._fsm: dict[str, _FsmEntry] = {}
        self._rows: dict[type[Base], list[dict[str, Any]]] = {}
        self.handled_before = False
        session.info[_UNIT] = self

    # -- append-only rows (the audit trail), written in one INSERT per table --------------------------

    def insert_later(self, model: type[Base], row: dict[str, Any]) -> None:
        """A row nobody reads back in this update: written with the others at the next commit."""
        self._rows.setdefault(model, []).append(row)

    async def write_rows(self) -> None:
        rows, self._rows = self._rows, {}
        for model, values in rows.items():
            await self.session.execute(insert(model), values)

    # -- the FSM state of this update, read at most once and written only when it changed ---------

    async def _fsm_entry(self, key: str) -> _FsmEntry:
        entry = self._fsm.get(key)
        if entry is None:
            row = (await self.session.execute(select(FsmRecord.state, FsmRecord.data).where(FsmRecord.key == key))).first()
            if row is None:
                entry = _FsmEntry(None, EMPTY_DATA, None, EMPTY_DATA)
            else:
                entry = _FsmEntry(row.state, row.data, row.state, row.data)
            self._fsm[key] = entry
        return entry

    def loaded_fsm(self, key: str, state: str | None, data: str | None) -> None:
        """The FSM record of `key` as another query of this unit read it (None: there is none)."""
        if key not in self._fsm:
            data = EMPTY_DATA if data is None else data
            self._fsm[key] = _FsmEntry(state, data, state, data)

    async def fsm_state(self, key: str) -> str | None:
        return (await self._fsm_entry(key)).state

    async def fsm_data(self, key: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((await self._fsm_entry(key)).data)
        return data

    async def set_fsm_state(self, key: str, state: str | None) -> None:
        (await self._fsm_entry(key)).state = state

    async def set_fsm_data(self, key: str, data: Mapping[str, Any]) -> None:
        (await self._fsm_entry(key)).data = json.dumps(dict(data), ensure_ascii=False, sort_keys=True)

    async def _write_fsm(self) -> None:
        insert = insert_for(self.session)
        for key, entry in self._fsm.items():
            if not entry.changed:
                continue
            values = {"state": entry.state, "data": entry.data}
            await self.session.execute(
                insert(FsmRecord).values(key=key, **values).on_conflict_do_update(index_elements=["key"], set_=values)
            )
            entry.loaded_state, entry.loaded_data = entry.state, entry.data

    # -- the transaction ----------------------------------------------------------------------------

    @property
    def open(self) -> bool:
        """True while a transaction is open or something waits to be written."""
        session = self.session
        return bool(
            session.in_transaction()
            or session.new
            or session.dirty
            or session.deleted
            or self._rows
            or any(entry.changed for entry in self._fsm.values())
        )

    async def commit(self) -> None:
        """Write and commit what this unit holds, and hand its connection back to the pool.

        A unit with nothing open does nothing; work after a commit opens a new transaction.
        """
        if self.handled_before:
            raise UpdateHandledBefore
        if not self.open:
            return
        try:
            await self._write_fsm()
            await self.write_rows()
            await self.session.commit()
        except IntegrityError as error:
            if not _names_the_update(error):
                raise
            self.handled_before = True
            await self.rollback()
            raise UpdateHandledBefore from None

    async def rollback(self) -> None:
        self._fsm.clear()
        self._rows.clear()
        await self.session.rollback()


_UNIT = "unit_of_work"


def unit_of(session: AsyncSession) -> UnitOfWork | None:
    """The unit of work this session belongs to, if any."""
    unit = session.info.get(_UNIT)
    return unit if isinstance(unit, UnitOfWork) else None


async def write_pending_rows(session: AsyncSession) -> None:
    """Write the rows a unit holds for later, when a query of this update must see them."""
    unit = unit_of(session)
    if unit is not None:
        await unit.write_rows()


current_unit: contextvars.ContextVar[UnitOfWork | None] = contextvars.ContextVar("current_unit", default=None)
"""The unit of work of the update being handled, if any (background work has none)."""


@asynccontextmanager
async def unit_of_work(session_factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[UnitOfWork]:
    """Open a unit, make it current, commit it when the block ends and roll it back on error."""
    async with session_factory() as session:
        unit = UnitOfWork(session)
        token = current_unit.set(unit)
        try:
            yield unit
            await unit.commit()
        except BaseException:
            await unit.rollback()
            raise
        finally:
            current_unit.reset(token)
