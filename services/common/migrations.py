"""Alembic, one history per service: the shared env.py body, a programmatic upgrade, and the
steps that create the tables every service shares (``tables.py``).

Those steps are written out here as they were when the revisions calling them were made, not
derived from ``tables.py``: a revision must create the same schema for ever, and a change to a
shared table is a new revision of each service's history.
"""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from services.common.config import ROOT, database_url


def alembic_config(service: str, url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ROOT / "services" / service / "migrations"))
    config.attributes["url"] = url or database_url(service)
    return config


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database (or the SQLite folder) a URL names, if missing."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return
    admin = create_engine(parsed.set(database="postgres"), poolclass=NullPool,
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                    {"n": parsed.database}).scalar()
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


def upgrade(service: str, url: str | None = None) -> None:
    config = alembic_config(service, url)
    ensure_database(config.attributes["url"])
    command.upgrade(config, "head")


def run_env(metadata) -> None:
    """The body of every service's ``migrations/env.py``."""
    url = context.config.attributes.get("url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


_UNPUBLISHED = sa.text("published_at IS NULL")


def create_messaging_tables() -> None:
    """``outbox`` and ``processed_messages``, as every service's first revision creates them."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_pending", ["id"], unique=False, postgresql_where=_UNPUBLISHED,
                              sqlite_where=_UNPUBLISHED)
    op.create_table(
        "processed_messages",
        sa.Column("consumer", sa.String(length=120), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id"),
    )


def drop_messaging_tables() -> None:
    op.drop_table("processed_messages")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_pending", postgresql_where=_UNPUBLISHED, sqlite_where=_UNPUBLISHED)
    op.drop_table("outbox")


def create_idempotency_table() -> None:
    """``idempotency_keys``, as orders' revision 0002 and the notifier's 0003 create it."""
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("route", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "route", "key", name="uq_idempotency_scope"),
    )


def drop_idempotency_table() -> None:
    op.drop_table("idempotency_keys")



def create_profile_copy_table() -> None:
    """``profile_copies`` (services/common/profile_copy.py), as the ledger's and orders' revision 0005 create it."""
    op.create_table(
        "profile_copies",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("profile", sa.JSON(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("account_id"),
    )


def drop_profile_copy_table() -> None:
    op.drop_table("profile_copies")
