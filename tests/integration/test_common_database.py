"""The database dependency on real PostgreSQL: one round trip a read, and a connection the server
dropped costs no request (services/common/database.py)."""
from __future__ import annotations

import psycopg2.extensions
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text

from services.common.database import UnitOfWork
from services.common.errors import DomainError
from services.common.locks import insert_first
from tests.support import postgres_database, statements_compiled, statements_sent

metadata = MetaData()
notes = Table("notes", metadata, Column("id", Integer, primary_key=True), Column("text", String(50)))


@pytest.fixture
def postgres():
    """A database of our own and an administrator's engine on it, to end its connections."""
    with postgres_database(metadata) as database:
        yield database


def terminate_connections(admin, database: str) -> int:
    """End every server process on ``database`` (a restart, an idle timeout, an operator)."""
    with admin.connect() as connection:
        return len(connection.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"),
            {"name": database}).all())


def test_a_read_is_one_statement_without_a_ping_or_a_transaction(postgres):
    engine, _, _ = postgres
    uow = UnitOfWork(engine, "common", metadata)
    with uow.transaction() as session:
        session.execute(insert(notes).values(id=1, text="hello"))
    with statements_sent(engine) as sent, uow.read() as session:
        assert session.scalar(select(notes.c.text).where(notes.c.id == 1)) == "hello"
        # psycopg2 sends BEGIN (and later COMMIT) by itself, unseen by SQLAlchemy's events; the
        # server's word: after the select no transaction is open on this connection.
        status = session.connection().connection.dbapi_connection.info.transaction_status
    assert status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    assert len(sent) == 1 and sent[0].startswith("SELECT NOTES.TEXT")   # no "SELECT 1" ping
    with uow.read() as session:
        session.scalar(select(notes.c.text))
        raw = session.connection().connection.dbapi_connection
        assert raw.autocommit is True
    assert raw.autocommit is False    # back in the pool: the next unit of work has its transaction
    with uow.transaction() as session:    # while a unit of work keeps its transaction
        session.scalar(select(notes.c.text))
        status = session.connection().connection.dbapi_connection.info.transaction_status
    assert status == psycopg2.extensions.TRANSACTION_STATUS_INTRANS


def test_a_read_answers_after_its_pooled_connection_was_terminated(postgres):
    engine, admin, name = postgres
    uow = UnitOfWork(engine, "common", metadata)
    with uow.transaction() as session:
        session.execute(insert(notes).values(id=1, text="kept"))
    with uow.read() as session:           # the pool now holds a connection ...
        session.scalar(select(notes.c.text))
    assert terminate_connections(admin, name) >= 1   # ... that the server ends
    with uow.read() as session:
        assert session.scalar(select(notes.c.text).where(notes.c.id == 1)) == "kept"


def test_a_transaction_answers_after_its_pooled_connection_was_terminated(postgres):
    engine, admin, name = postgres
    uow = UnitOfWork(engine, "common", metadata)
    with uow.transaction() as session:
        session.execute(insert(notes).values(id=1, text="first"))
    assert terminate_connections(admin, name) >= 1
    with uow.transaction() as session:    # its first statement meets the dead connection
        assert session.scalar(select(notes.c.text).where(notes.c.id == 1)) == "first"
        session.execute(insert(notes).values(id=2, text="second"))
    with uow.read() as session:
        assert session.scalars(select(notes.c.text).order_by(notes.c.id)).all() == ["first", "second"]


def test_a_connection_lost_inside_a_transaction_is_not_retried(postgres):
    """Past its first statement a transaction may have written: the caller hears 503, nothing half-kept."""
    engine, admin, name = postgres
    uow = UnitOfWork(engine, "common", metadata)
    with pytest.raises(DomainError) as refused:
        with uow.transaction() as session:
            session.execute(insert(notes).values(id=1, text="lost"))
            terminate_connections(admin, name)
            session.execute(insert(notes).values(id=2, text="lost too"))
    assert refused.value.args[0] == "service_unavailable"
    with uow.read() as session:
        assert session.scalars(select(notes.c.id)).all() == []


def test_a_row_only_the_first_insert_writes_is_written_once_and_compiled_once(postgres):
    engine, _, _ = postgres
    uow = UnitOfWork(engine, "common", metadata)
    with statements_compiled(engine) as sent, uow.transaction() as session:
        firsts = [insert_first(session, notes, id=n, text=f"note {n}, try {t}") for t, n in enumerate((1, 2, 1))]
    assert firsts == [True, True, False]
    with uow.read() as session:
        assert session.execute(select(notes.c.id, notes.c.text).order_by(notes.c.id)).all() == [
            (1, "note 1, try 0"), (2, "note 2, try 1")]
    # SQLAlchemy's cache at work: the dialect's own on_conflict_do_nothing() was compiled on every use.
    assert [line.endswith("ON CONFLICT DO NOTHING") for line, _ in sent] == [True] * 3, sent
    assert sent[0][1] is sent[1][1] is sent[2][1]
