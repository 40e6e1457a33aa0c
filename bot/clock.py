"""The one source of "now", so that tests can move time forward (lockouts, idle sessions)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


class Clock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class ManualClock(Clock):
    """A clock that starts at the real time and moves only when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self._offset = timedelta()
        self._start = start

    def now(self) -> datetime:
        base = self._start or datetime.now(timezone.utc)
        return base + self._offset

    def advance(self, **delta: float) -> None:
        self._offset += timedelta(**delta)
