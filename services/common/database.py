"""One database dependency for every service: a unit of work per ``transaction()``.

PostgreSQL goes through psycopg2 with psycogreen, so a query waits on the eventlet hub
instead of blocking every worker of the service. SQLite (the one-machine default) has a
blocking C driver and a single writer, so each process gets one connection that workers
take in turn from a green pool: no worker ever sleeps inside the driver waiting for a lock
another worker of the same process holds.

Rule for every caller: never hold a transaction open across an RPC call.
"""
from __future__ import annotations

import contextlib
import threading
import zlib

import structlog
from nameko.extensions import DependencyProvider
from sqlalchemy import create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from services.common.config import database_url, env_int
from services.common.errors import ServiceUnavailable

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
        return create_engine(
            url, pool_size=env_int("DB_POOL_SIZE", 10), max_overflow=env_int("DB_MAX_OVERFLOW", 10),
            pool_pre_ping=True, pool_timeout=5, connect_args={"connect_timeout": 3},
        )
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
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _lock_key(name)}).scalar())


def lock(session: Session, name: str) -> None:
    """Wait for the transaction-scoped lock named ``name`` (PostgreSQL advisory lock).

    For a read-then-write that concurrent workers must do one at a time. SQLite has one
    writer per file and the services one connection to it, so there is nothing to take.
    """
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(name)})


def _lock_key(name: str) -> int:
    """The advisory lock's key for a name: a signed 32-bit number, the same in every process."""
    return zlib.crc32(name.encode()) - 2**31


class UnitOfWork:
    """Hands out sessions; commits when the block ends cleanly, rolls back otherwise."""

    def __init__(self, engine, service: str, metadata=None, on_commit=None):
        self.engine = engine
        self.service = service
        self.metadata = metadata
        self.on_commit = on_commit

    @contextlib.contextmanager
    def transaction(self):
        session = Session(bind=self.engine, expire_on_commit=False)
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
        if self.on_commit and session.info.get("outbox_written"):
            self.on_commit()

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
            from services.common.outbox import OutboxRelay
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
