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
import socket
import threading
import uuid
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from functools import lru_cache

import structlog
from amqp.exceptions import MessageNacked
from kombu import Connection, Producer
from nameko.constants import HEADER_PREFIX, PERSISTENT
from nameko.standalone.events import get_event_exchange
from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from services.common.clock import clock, iso
from services.common.config import amqp_uri, env_float
from services.common.locks import InsertIfAbsent, insert_first, is_postgres, lock_key

log = structlog.get_logger(__name__)


def publish_later(session: Session, event_type: str, data: dict) -> str:
    """Record an event in this transaction's outbox; the relay publishes it after commit."""
    row = outbox_row(session, event_type, data)
    # The values as parameters, not in the statement: one cached statement, a third of the cost.
    session.execute(insert(_table(session, "outbox")), row)
    return row["event_id"]


def publish_all(session: Session, rows: list[dict]) -> None:
    """Record many events (their :func:`outbox_row`, in order) in this transaction's outbox, in one statement."""
    if rows:
        session.execute(insert(_table(session, "outbox")), rows)


def outbox_row(session: Session, event_type: str, data: dict) -> dict:
    """The outbox row of an event, for a caller that writes it in a statement of its own.

    The ledger writes ``invoice_issued`` in the statement that takes the invoice's number, so that
    the year's counter is the last thing its transaction touches; everyone else calls
    :func:`publish_later`.
    """
    event_id = str(uuid.uuid4())
    now = clock.now()
    payload = {"event_id": event_id, "occurred_at": iso(now), **data}
    context = structlog.contextvars.get_contextvars()
    headers = {f"{HEADER_PREFIX}.{key}": context[key] for key in ("request_id",) if context.get(key)}
    session.info["outbox_written"] = True
    return {"event_id": event_id, "event_type": event_type, "payload": json.dumps(payload),
            "headers": json.dumps(headers), "created_at": now, "published_at": None}


def first_delivery(session: Session, consumer: str, message_id: str) -> bool:
    """True the first time ``consumer`` sees ``message_id``; records it in this transaction.

    One insert that does nothing when the row is there: of two deliveries racing, exactly one
    is first, and the other waits for it on PostgreSQL's unique index instead of failing.
    """
    return insert_first(session, _table(session, "processed_messages"),
                        consumer=consumer, message_id=message_id, processed_at=clock.now())


def first_delivery_writing(session: Session, consumer: str, message_id: str, table: Table, row: dict) -> bool:
    """:func:`first_delivery`, and ``row`` inserted into ``table`` only when this is the first.

    PostgreSQL: one statement, the inbox's insert a CTE that the row's insert selects from, so in
    a read session (autocommit) it commits itself with no BEGIN and no COMMIT around it; a
    redelivery's inbox insert returns nothing and the row's insert writes nothing. SQLite: the two
    inserts, in the session's transaction.
    """
    if not is_postgres(session):
        if not first_delivery(session, consumer, message_id):
            return False
        session.execute(insert(table), row)
        return True
    statement = _written_on_first_delivery(_table(session, "processed_messages"), table, tuple(row))
    return session.execute(statement, {**row, "inbox_consumer": consumer, "inbox_message_id": message_id,
                                       "inbox_processed_at": clock.now()}).rowcount == 1


@lru_cache(maxsize=None)
def _written_on_first_delivery(inbox: Table, table: Table, columns: tuple[str, ...]):
    """:func:`first_delivery_writing`'s statement on PostgreSQL, built once, all of it bound parameters."""
    first = InsertIfAbsent(inbox).values(
        consumer=bindparam("inbox_consumer"), message_id=bindparam("inbox_message_id"),
        processed_at=bindparam("inbox_processed_at", type_=inbox.c.processed_at.type),
    ).returning(inbox.c.message_id).cte("first")
    row = select(*(bindparam(name, type_=table.c[name].type) for name in columns)).select_from(first)
    return insert(table).from_select(list(columns), row).add_cte(first)


def already_processed(session: Session, consumer: str, message_id: str) -> bool:
    """Whether ``consumer`` recorded ``message_id``, without recording it.

    For a handler that must call other services before its transaction: it looks first, does
    its work, then records the message with :func:`first_delivery` in the transaction that
    writes the result, so a failure half-way leaves the message to be handled again.
    """
    table = _table(session, "processed_messages")
    return session.execute(select(table.c.message_id).where(
        table.c.consumer == consumer, table.c.message_id == message_id)).first() is not None


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
        self.table = table
        self.interval = env_float("OUTBOX_POLL_SECONDS", 1.0)
        self.keep = timedelta(days=env_float("OUTBOX_KEEP_DAYS", 7))
        self.publisher = ConfirmedBatches(config.get("AMQP_URI") or amqp_uri(),
                                          get_event_exchange(service, config))
        self.claim = claim_statement(table, f"outbox:{service}") if is_postgres(engine) else None
        self._wake = threading.Event()
        self._running = True
        self._last_cleanup = None

    def kick(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._running = False
        self._wake.set()

    def run(self) -> None:
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
        self.publisher.close()

    def publish_pending(self) -> int:
        """Publish up to one batch of pending events; returns how many were published.

        The batch's marks commit only once the broker has confirmed all of it; anything else rolls
        them back and the batch goes again next round (every consumer keeps an inbox). PostgreSQL:
        three round trips to the database, BEGIN, one statement that takes the relays' lock and
        marks the batch (:func:`claim_statement`), and COMMIT. SQLite holds its one write lock from
        a transaction's first write to its commit, so there the batch is read, published, and then
        marked: the lock is not held across the broker's confirm, while the ledger's document
        worker, a process of its own, writes to the same file.
        """
        t = self.table
        with Session(self.engine) as session, session.begin():
            if self.claim is not None:
                claimed = session.execute(self.claim, {"published_at": clock.now(), "batch": self.batch}).all()
                rows = sorted(claimed, key=lambda row: row.id)
                if rows:
                    self.publisher.publish_all(rows)
            else:
                rows = session.execute(select(t).where(t.c.published_at.is_(None))
                                       .order_by(t.c.id).limit(self.batch)).all()
                if rows:
                    self.publisher.publish_all(rows)
                    session.execute(update(t).where(t.c.id.in_([row.id for row in rows]))
                                    .values(published_at=clock.now()))
        return len(rows)

    def _cleanup(self) -> None:
        now = clock.now()
        if self._last_cleanup and now - self._last_cleanup < timedelta(hours=1):
            return
        self._last_cleanup = now
        with Session(self.engine) as session, session.begin():
            session.execute(delete(self.table).where(self.table.c.published_at < now - self.keep))


def claim_statement(table: Table, lock_name: str):
    """The relay's round in one statement (PostgreSQL): the oldest pending rows (at most ``:batch``),
    marked sent (``:published_at``) and returned.

    The rows are claimed only under the relays' transaction-scoped advisory lock ``lock_name``,
    taken once by the statement (an uncorrelated subquery), so that one relay at a time publishes
    and the events go out in order across replicas; a relay that does not get it claims nothing.
    The statement's snapshot is taken before the lock: rows another relay marked and committed in
    between still look pending to the subquery, and the outer condition on ``published_at``, which
    PostgreSQL checks again on a row's latest version when another transaction updated it, leaves
    them out, so they are not published twice. The rows come back in no particular order; the
    caller sorts them.
    """
    locked = select(func.pg_try_advisory_xact_lock(lock_key(lock_name))).scalar_subquery()
    pending = select(table.c.id).where(table.c.published_at.is_(None), locked) \
        .order_by(table.c.id).limit(bindparam("batch"))
    return (update(table).where(table.c.id.in_(pending), table.c.published_at.is_(None))
            .values(published_at=bindparam("published_at")).returning(*table.c))


@contextmanager
def corked(sock):
    """Hold what is written to ``sock`` in the block and send it when the block ends (Linux's ``TCP_CORK``).

    Each message written alone is a segment of its own, and on a busy machine each one wakes the
    broker, which takes a core from the writer to read it; corked, a batch's messages go out in as
    few segments as fit (README Performance). Where there is no ``TCP_CORK`` nothing changes.
    """
    cork = getattr(socket, "TCP_CORK", None)
    if cork is None:
        yield
        return
    sock.setsockopt(socket.IPPROTO_TCP, cork, 1)
    try:
        yield
    finally:
        with suppress(OSError):   # a connection that broke in the block: it is dropped, nothing to send
            sock.setsockopt(socket.IPPROTO_TCP, cork, 0)


class ConfirmedBatches:
    """Publishes outbox rows to the service's event exchange, a batch at a time, confirmed.

    Nameko's ``Publisher`` waits for each message's confirm before it sends the next, a round
    trip per event. Here one channel in confirm mode sends the whole batch (:func:`corked`: the
    broker reads it in one go), then waits once for the broker's acknowledgements (one per
    message, or one for many). The messages are those Nameko's event dispatcher sends: JSON,
    persistent, the event type as routing key. Any failure (a nack, a broken connection, no
    answer in ``confirm_timeout``) drops the connection without waiting on it and raises; the
    next batch opens a new one.
    """

    confirm_timeout = 10.0

    def __init__(self, amqp_uri: str, exchange):
        self.amqp_uri = amqp_uri
        self.exchange = exchange
        self._connection = None
        self._producer = None
        self._sent = 0            # the delivery tags this channel has given out
        self._unconfirmed = set()

    def publish_all(self, rows) -> None:
        try:
            producer = self._producer or self._open()
            with corked(self._connection.connection.sock):   # the batch reaches the broker together
                for row in rows:
                    self._sent += 1
                    self._unconfirmed.add(self._sent)
                    producer.publish(json.loads(row.payload), routing_key=row.event_type,
                                     headers=json.loads(row.headers), message_id=row.event_id,
                                     delivery_mode=PERSISTENT, serializer="json", retry=False)
            while self._unconfirmed:
                self._connection.drain_events(timeout=self.confirm_timeout)
        except BaseException:
            self._drop(lambda connection: connection.collect())   # a broker that stopped answering is not waited on
            raise

    def close(self) -> None:
        self._drop(lambda connection: connection.close())

    def _drop(self, end) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        if connection is not None:
            try:
                end(connection)
            except Exception:  # already broken: nothing to say goodbye to
                pass

    def _open(self) -> Producer:
        self._connection = Connection(self.amqp_uri, connect_timeout=5)
        channel = self._connection.channel()
        channel.events["basic_ack"].add(self._acked)
        channel.events["basic_nack"].add(self._nacked)
        channel.confirm_select()
        self._sent, self._unconfirmed = 0, set()
        self._producer = Producer(channel, exchange=self.exchange, auto_declare=True)
        return self._producer

    def _acked(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {tag for tag in self._unconfirmed if tag > delivery_tag}
        else:
            self._unconfirmed.discard(delivery_tag)

    def _nacked(self, delivery_tag: int, multiple: bool) -> None:
        raise MessageNacked(f"the broker refused event {delivery_tag} of the batch")
