"""One injectable clock for every service.

Production reads the system time. Tests move time by pointing ``CLOCK_FILE`` at a
file holding an offset in seconds (a float); every process of the stack reads it,
so a test can jump a running stack forwards (renewals, expiry, lockouts).
"""
from __future__ import annotations

import os
from datetime import date, datetime, timedelta, timezone


class Clock:
    def __init__(self, offset_file: str | None = None):
        self.offset_file = offset_file
        self._cached = (None, 0.0)  # (mtime, offset)

    def offset(self) -> float:
        if not self.offset_file:
            return 0.0
        try:
            mtime = os.stat(self.offset_file).st_mtime_ns
        except FileNotFoundError:
            return 0.0
        if self._cached[0] != mtime:
            with open(self.offset_file) as handle:
                text = handle.read().strip()
            self._cached = (mtime, float(text or 0))
        return self._cached[1]

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return datetime.now(timezone.utc) + timedelta(seconds=self.offset())

    def today(self) -> date:
        return self.now().date()


class FrozenClock(Clock):
    """A clock for unit tests: stands still until moved."""

    def __init__(self, at: datetime):
        super().__init__()
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta) -> None:
        self.at = self.at + timedelta(**delta)


def move_clock(offset_file: str, seconds: float) -> None:
    """Set the shared offset (tests only)."""
    tmp = f"{offset_file}.tmp"
    with open(tmp, "w") as handle:
        handle.write(repr(float(seconds)))
    os.replace(tmp, offset_file)


clock = Clock(os.environ.get("CLOCK_FILE") or None)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 with a zone, ``2026-11-29T10:00:00Z``."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they are UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment
