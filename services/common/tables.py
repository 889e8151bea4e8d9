"""What every service's tables share: the serial key type and the tables of the shared machinery.

A service declares the shared tables in its own metadata (``add_messaging_tables(Base.metadata)``),
so they live in its database beside its own and commit in the same transactions. The code that
works on them is in ``outbox.py`` (outbox and inbox).
Each table is created by the service's own Alembic history (``migrations.py`` has the steps).
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table, Text

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

