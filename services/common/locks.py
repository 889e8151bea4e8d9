"""Who goes first when workers and replicas race: advisory locks, and rows only the first insert writes.

PostgreSQL serialises with advisory locks and unique indexes. SQLite runs one process per
file, and the services hold one connection to it (see ``database.py``), so there is nothing
to race: its locks are always granted.
"""
from __future__ import annotations

import zlib

from sqlalchemy import Insert, Table, text
from sqlalchemy.orm import Session


def is_postgres(session_or_engine) -> bool:
    bind = session_or_engine.get_bind() if isinstance(session_or_engine, Session) else session_or_engine
    return bind.dialect.name == "postgresql"


def try_lock(session: Session, name: str) -> bool:
    """Take a transaction-scoped lock named ``name`` if free (PostgreSQL advisory lock).

    Timers that must run once across replicas call this first. SQLite runs one process
    per file, so the lock is always granted there.
    """
    if not is_postgres(session):
        return True
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": lock_key(name)}).scalar())


def lock(session: Session, name: str) -> None:
    """Wait for the transaction-scoped lock named ``name`` (PostgreSQL advisory lock).

    For a read-then-write that concurrent workers must do one at a time. SQLite has one
    writer per file and the services one connection to it, so there is nothing to take.
    """
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(name)})


def insert_first(session: Session, table: Table, **values) -> bool:
    """Insert a row unless one with the same unique key is there; True when this insert wrote it.

    One statement (``INSERT ... ON CONFLICT DO NOTHING``): on PostgreSQL a concurrent insert
    of the same key waits for the first to commit or roll back, so exactly one of them is first.
    """
    return session.execute(InsertIfAbsent(table), values).rowcount == 1


class InsertIfAbsent(Insert):
    """``INSERT ... ON CONFLICT DO NOTHING`` (PostgreSQL and SQLite alike) that SQLAlchemy compiles once.

    The dialects' own ``insert().on_conflict_do_nothing()`` has no cache key in SQLAlchemy 2.0, so
    every use was compiled afresh: most of a millisecond of a service's CPU, on every event an
    inbox records and every idempotency key claimed (README Performance). Here the clause is a
    fixed text in the place the dialects put theirs (after VALUES, before any RETURNING).
    """

    inherit_cache = True

    def __init__(self, table: Table):
        super().__init__(table)
        self._post_values_clause = _ON_CONFLICT_DO_NOTHING


_ON_CONFLICT_DO_NOTHING = text("ON CONFLICT DO NOTHING")


def lock_key(name: str) -> int:
    """The advisory lock's key for a name: a signed 32-bit number, the same in every process."""
    return zlib.crc32(name.encode()) - 2**31
