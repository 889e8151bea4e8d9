"""The transactional outbox and inbox every service uses for its events.

A state change that others must hear about calls :func:`publish_later` with the session of
the same transaction, so the event row commits or rolls back with the change. The relay
(started by :class:`services.common.database.Database`) publishes pending rows in order,
with publisher confirms, and marks them sent; a crash between commit and publish only
delays the event. A crash between publish and marking sent publishes it again, which is
why every consumer records what it processed (:func:`first_delivery`).
"""
from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta

import structlog
from nameko.amqp.publish import Publisher
from nameko.constants import HEADER_PREFIX
from nameko.standalone.events import get_event_exchange
from sqlalchemy import (BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table,
                        Text, delete, func, insert, select, update)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common.clock import clock, iso
from services.common.config import amqp_uri, env_float

log = structlog.get_logger(__name__)


def add_messaging_tables(metadata: MetaData) -> None:
    """Declare the ``outbox`` and ``processed_messages`` tables in a service's metadata."""
    outbox = Table(
        "outbox", metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
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


def publish_later(session: Session, event_type: str, data: dict) -> str:
    """Record an event in this transaction's outbox; the relay publishes it after commit."""
    table = _table(session, "outbox")
    event_id = str(uuid.uuid4())
    now = clock.now()
    payload = {"event_id": event_id, "occurred_at": iso(now), **data}
    context = structlog.contextvars.get_contextvars()
    headers = {f"{HEADER_PREFIX}.{key}": context[key] for key in ("request_id",) if context.get(key)}
    session.execute(insert(table).values(
        event_id=event_id, event_type=event_type, payload=json.dumps(payload),
        headers=json.dumps(headers), created_at=now, published_at=None))
    session.info["outbox_written"] = True
    return event_id


def first_delivery(session: Session, consumer: str, message_id: str) -> bool:
    """True the first time ``consumer`` sees ``message_id``; records it in this transaction."""
    table = _table(session, "processed_messages")
    exists = session.execute(select(table.c.message_id).where(
        table.c.consumer == consumer, table.c.message_id == message_id)).first()
    if exists:
        return False
    try:
        with session.begin_nested():
            session.execute(insert(table).values(consumer=consumer, message_id=message_id,
                                                 processed_at=clock.now()))
    except IntegrityError:
        return False  # a concurrent redelivery won the race
    return True


def unpublished_events(uow) -> tuple[int, datetime | None]:
    """How many committed events wait for the relay, and when the oldest was written (``/metrics``).

    Reads the pending rows only, through the ``ix_outbox_pending`` partial index: cheap at
    every scrape while the relay keeps up, and it is the number to watch when it does not.
    """
    with uow.transaction() as session:
        t = _table(session, "outbox")
        count, oldest = session.execute(select(func.count(), func.min(t.c.created_at))
                                        .where(t.c.published_at.is_(None))).one()
    return count, oldest


def _table(session: Session, name: str) -> Table:
    tables = session.info.get("tables")
    if tables is None:
        raise RuntimeError("session has no service metadata; use Database.transaction()")
    return tables[name]


class OutboxRelay:
    """Publishes committed outbox rows in order; one relay at a time across replicas."""

    batch = 200

    def __init__(self, engine, config: dict, service: str, table: Table):
        self.engine = engine
        self.service = service
        self.table = table
        self.interval = env_float("OUTBOX_POLL_SECONDS", 1.0)
        self.keep = timedelta(days=env_float("OUTBOX_KEEP_DAYS", 7))
        self.exchange = get_event_exchange(service, config)
        self.publisher = Publisher(config.get("AMQP_URI") or amqp_uri(), use_confirms=True,
                                   declare=[self.exchange])
        self._wake = threading.Event()
        self._running = True
        self._last_cleanup = None

    def kick(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._running = False
        self._wake.set()

    def run(self) -> None:
        from services.common.database import try_lock  # avoid an import cycle
        self._try_lock = try_lock
        failures = 0
        while self._running:
            self._wake.wait(self.interval if failures == 0 else min(30.0, 2.0 ** failures))
            self._wake.clear()
            if not self._running:
                break
            try:
                while self.publish_pending() == self.batch:
                    pass
                self._cleanup()
                failures = 0
            except Exception as exc:  # the broker or the database is away: try again later
                failures += 1
                log.warning("outbox relay failed", error=repr(exc), attempt=failures)

    def publish_pending(self) -> int:
        """Publish up to one batch of pending events; returns how many were published."""
        t = self.table
        published, error = [], None
        with Session(self.engine) as session, session.begin():
            if not self._try_lock(session, f"outbox:{self.service}"):
                return 0
            rows = session.execute(select(t).where(t.c.published_at.is_(None))
                                   .order_by(t.c.id).limit(self.batch)).all()
            for row in rows:
                try:
                    self.publisher.publish(
                        json.loads(row.payload), exchange=self.exchange, routing_key=row.event_type,
                        extra_headers=json.loads(row.headers), message_id=row.event_id)
                except Exception as exc:
                    error = exc
                    break
                published.append(row.id)
            if published:
                session.execute(update(t).where(t.c.id.in_(published)).values(published_at=clock.now()))
        if error is not None:
            raise error
        return len(published)

    def _cleanup(self) -> None:
        now = clock.now()
        if self._last_cleanup and now - self._last_cleanup < timedelta(hours=1):
            return
        self._last_cleanup = now
        with Session(self.engine) as session, session.begin():
            session.execute(delete(self.table).where(self.table.c.published_at < now - self.keep))
