"""What every service's tables share: the serial key type and the tables of the shared machinery.

A service declares the shared tables in its own metadata (``add_messaging_tables(Base.metadata)``),
so they live in its database beside its own and commit in the same transactions. The code that
works on them is in ``outbox.py`` (outbox and inbox) and ``idempotency.py`` (idempotency keys).
Each table is created by the service's own Alembic history (``migrations.py`` has the steps).
"""
from __future__ import annotations

from sqlalchemy import (BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint)

# A growing integer key: BIGINT on PostgreSQL; SQLite autoincrements only an INTEGER PRIMARY KEY.
Serial = BigInteger().with_variant(Integer, "sqlite")


def add_messaging_tables(metadata: MetaData) -> None:
    """Declare the ``outbox`` and ``processed_messages`` tables in a service's metadata."""
    outbox = Table(
        "outbox", metadata,
        Column("id", Serial, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(64), nullable=False),
        Column("payload", Text, nullable=False),
        Column("headers", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
    )
    Index("ix_outbox_pending", outbox.c.id, postgresql_where=outbox.c.published_at.is_(None),
          sqlite_where=outbox.c.published_at.is_(None))
    Table(
        "processed_messages", metadata,
        Column("consumer", String(120), primary_key=True),
        Column("message_id", String(64), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )


def add_idempotency_table(metadata: MetaData) -> None:
    """Declare ``idempotency_keys``: the first answer to each keyed request (see ``idempotency.py``).

    ``account_id`` is whoever the key belongs to (an account, or a calling system by name) and
    ``route`` what was asked (a route or an operation): a key is only ever compared within both.
    """
    Table(
        "idempotency_keys", metadata,
        Column("id", Serial, primary_key=True, autoincrement=True),
        Column("account_id", String(36), nullable=False),
        Column("route", String(64), nullable=False),
        Column("key", String(200), nullable=False),
        Column("request_hash", String(64), nullable=False),
        Column("response", Text, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        UniqueConstraint("account_id", "route", "key", name="uq_idempotency_scope"),
    )
