"""One database dependency for every service: a unit of work per ``transaction()``.

PostgreSQL goes through psycopg2 with psycogreen, so a query waits on the eventlet hub
instead of blocking every worker of the service. SQLite (the one-machine default) has a
blocking C driver and a single writer, so each process gets one connection that workers
take in turn from a green pool: no worker ever sleeps inside the driver waiting for a lock
another worker of the same process holds.

A read is one statement and one round trip. No connection is pinged when it leaves the pool
(``pool_pre_ping`` cost a round trip on every unit of work): a connection the server dropped
(a restart, ``pg_terminate_backend``, an idle timeout) fails its first statement, SQLAlchemy
invalidates it and every connection of the pool older than it, and the statement is sent once
more on a fresh connection (:class:`RetryingSession`) when nothing can have been lost: the first
statement of a transaction with nothing waiting to be flushed, or any statement of a read
(:meth:`UnitOfWork.read`, autocommit: no BEGIN and no COMMIT around a single select, where
isolation does not matter).

Rule for every caller: never hold a transaction open across an RPC call.
"""
from __future__ import annotations

import contextlib
import threading

import structlog
from nameko.extensions import DependencyProvider
from sqlalchemy import create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from services.common.config import database_url, env_int
from services.common.errors import ServiceUnavailable
from services.common.outbox import OutboxRelay

log = structlog.get_logger(__name__)
_greened = threading.Lock()
_patched = False

# Errors that mean "the database is not there right now", not "your query is wrong".
UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
               sa_exc.TimeoutError)


def green_psycopg() -> None:
    """Make psycopg2 wait on the eventlet hub (idempotent)."""
    global _patched
    with _greened:
        if not _patched:
            from psycogreen.eventlet import patch_psycopg
            patch_psycopg()
            _patched = True


def make_engine(url: str, *, green: bool = True):
    if url.startswith("postgres"):
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://"):]
        if green:
            green_psycopg()
        engine = create_engine(
            url, pool_size=env_int("DB_POOL_SIZE", 10), max_overflow=env_int("DB_MAX_OVERFLOW", 10),
            pool_timeout=5, connect_args={"connect_timeout": 3},
            # Many rows' UPDATEs and DELETEs (a flush of many orders) sent in pages, not one round trip each.
            executemany_mode="values_plus_batch",
        )
        event.listen(engine, "checkin", _transactions_again)
        return engine
    engine = create_engine(url, pool_size=1, max_overflow=0, pool_timeout=30,
                           connect_args={"check_same_thread": False, "timeout": 10})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def _autocommit_for_reads(session, _transaction, connection) -> None:
    """A read's connection in autocommit, psycopg2's own flag (a Python attribute: SQLAlchemy's
    isolation-level option resets the level on return to the pool, a round trip each time)."""
    if session.reads and connection.dialect.name == "postgresql":
        connection.connection.dbapi_connection.autocommit = True


def _transactions_again(dbapi_connection, _record) -> None:
    """Back in the pool: the next unit of work gets a transaction again."""
    if dbapi_connection is not None and getattr(dbapi_connection, "autocommit", False):
        dbapi_connection.autocommit = False


class RetryingSession(Session):
    """A session that sends a statement again, once, when its connection turned out dead.

    Safe only where the dead connection lost nothing: in autocommit (``reads``: every
    statement stands alone) or on the first statement of a transaction with nothing pending
    to flush (the server never saw a BEGIN). Anything else is the caller's
    ``ServiceUnavailable``; the pool is renewed for the next unit of work either way.
    """

    reads = False

    def __init__(self, *args, reads: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads = reads

    def _execute_internal(self, *args, **kwargs):
        transaction = self.get_transaction()
        fresh = transaction is None or not transaction._connections
        retryable = self.reads or (fresh and not (self.new or self.dirty or self.deleted))
        try:
            return super()._execute_internal(*args, **kwargs)
        except sa_exc.DBAPIError as exc:
            if not (retryable and exc.connection_invalidated):
                raise
            log.info("database connection was gone; sending the statement again", error=str(exc.orig).strip()[:200])
            self.rollback()
        return super()._execute_internal(*args, **kwargs)


event.listen(RetryingSession, "after_begin", _autocommit_for_reads)


class UnitOfWork:
    """Hands out sessions; commits when the block ends cleanly, rolls back otherwise."""

    def __init__(self, engine, service: str, metadata=None, on_commit=None):
        self.engine = engine
        self.service = service
        self.metadata = metadata
        self.on_commit = on_commit

    @contextlib.contextmanager
    def transaction(self):
        """A unit of work: every statement in one transaction, committed when the block ends."""
        with self._session(reads=False) as session:
            yield session
        if self.on_commit and session.info.get("outbox_written"):
            self.on_commit()

    @contextlib.contextmanager
    def read(self):
        """Reads whose isolation does not matter (one select, or selects that need no common
        snapshot): each statement on its own, no BEGIN/COMMIT round trips, retried once on a
        dropped connection. Nothing written here is kept unless the statement commits itself."""
        with self._session(reads=True) as session:
            yield session

    @contextlib.contextmanager
    def _session(self, reads: bool):
        session = RetryingSession(bind=self.engine, expire_on_commit=False, reads=reads)
        if self.metadata is not None:
            session.info["tables"] = self.metadata.tables
        try:
            yield session
            session.commit()
        except UNAVAILABLE as exc:
            session.rollback()
            log.warning("database unavailable", error=str(exc).splitlines()[0])
            raise ServiceUnavailable(self.service, f"The {self.service} database is unavailable; try again shortly.") from None
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))


class Database(DependencyProvider):
    """``self.db.transaction()`` in a service; starts the outbox relay when it has an outbox.

    ``service``: whose database this is, when the process is a worker of another service (the
    ledger's document worker works on the ledger's database); ``relay=False`` leaves that
    service's outbox to the service's own processes, which relay it under their lock.
    """

    def __init__(self, metadata, service: str | None = None, relay: bool = True):
        self.metadata = metadata
        self.service = service
        self.relays = relay
        self.engine = None
        self.relay = None

    def setup(self):
        service = self.service_name
        self.engine = make_engine(database_url(service))
        if self.relays and "outbox" in self.metadata.tables:
            self.relay = OutboxRelay(self.engine, self.container.config, service,
                                     self.metadata.tables["outbox"])

    def start(self):
        if self.relay is not None:
            self.container.spawn_managed_thread(self.relay.run, identifier="outbox-relay")

    def stop(self):
        if self.relay is not None:
            self.relay.stop()
        self.engine.dispose()

    @property
    def service_name(self) -> str:
        return self.service or self.container.service_name

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.engine, self.service_name, self.metadata,
                          on_commit=self.relay.kick if self.relay else None)

    def get_dependency(self, worker_ctx):
        return self.unit_of_work()
