"""The outbox relay's round on real databases and a real broker: on PostgreSQL its batch claimed and
marked in one statement, one relay at a time; on SQLite read, published, then marked; on both kept
only once the broker confirmed it (services/common/outbox.py)."""
from __future__ import annotations

import contextlib
import uuid

import eventlet
import pytest
from amqp.exceptions import MessageNacked
from kombu import Connection, Queue
from kombu.simple import SimpleQueue
from nameko.standalone.events import get_event_exchange
from sqlalchemy import MetaData, select, update
from sqlalchemy.orm import Session

from services.common.clock import clock
from services.common.database import UnitOfWork, make_engine
from services.common.locks import try_lock
from services.common.outbox import OutboxRelay, publish_later
from services.common.tables import add_messaging_tables
from tests.support import postgres_database, statements_sent

metadata = MetaData()
add_messaging_tables(metadata)
outbox = metadata.tables["outbox"]


@contextlib.contextmanager
def database(kind: str, tmp_path):
    """A fresh database of that kind with the messaging tables, and its engine as the services make it."""
    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'relay.db'}")
        metadata.create_all(engine)
        yield engine
        engine.dispose()
        return
    with postgres_database(metadata) as (engine, _, _):
        yield engine


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    with database(request.param, tmp_path) as engine:
        yield engine


@pytest.fixture
def postgres():
    with postgres_database(metadata) as (engine, _, _):
        yield engine


def relay_on(engine, amqp_uri) -> OutboxRelay:
    return OutboxRelay(engine, {"AMQP_URI": amqp_uri}, "producer", outbox)


@pytest.fixture
def relay(engine, amqp_uri):
    relay = relay_on(engine, amqp_uri)
    yield relay
    relay.publisher.close()


@pytest.fixture
def heard(amqp_uri):
    """What the producer's event exchange delivers, in order."""
    exchange = get_event_exchange("producer", {"AMQP_URI": amqp_uri})
    with Connection(amqp_uri) as connection:
        probe = SimpleQueue(connection, Queue(f"probe-{uuid.uuid4().hex}", exchange, routing_key="#", auto_delete=True))
        yield probe
        probe.close()


def record(engine, *values) -> None:
    with UnitOfWork(engine, "producer", metadata).transaction() as session:
        for value in values:
            publish_later(session, "thing_happened", {"value": value})


def pending(engine) -> list[str]:
    with Session(engine) as session:
        return [row.event_type for row in session.execute(select(outbox).where(outbox.c.published_at.is_(None)))]


def test_a_round_s_statements_and_its_batches_oldest_first(engine, relay, heard):
    record(engine, *range(5))
    with statements_sent(engine) as sent:
        assert relay.publish_pending() == 5
    if engine.dialect.name == "postgresql":    # no lock, select or update apart
        assert len(sent) == 1 and sent[0].startswith("UPDATE OUTBOX SET PUBLISHED_AT")
    else:   # SQLite: its write lock is taken only after the broker's confirm, by the marks
        assert [statement.split()[0] for statement in sent] == ["SELECT", "UPDATE"]
    assert [heard.get(timeout=10).payload["value"] for _ in range(5)] == list(range(5))
    assert pending(engine) == [] and relay.publish_pending() == 0

    relay.batch = 2     # a full batch: the oldest first, the rest on the next rounds
    record(engine, *range(5, 10))
    assert [relay.publish_pending() for _ in range(4)] == [2, 2, 1, 0]
    assert [heard.get(timeout=10).payload["value"] for _ in range(5)] == list(range(5, 10))


def test_a_batch_the_broker_does_not_confirm_stays_pending(engine, relay, amqp_uri):
    exchange = get_event_exchange("producer", {"AMQP_URI": amqp_uri})
    with Connection(amqp_uri) as connection:
        full = Queue(f"full-{uuid.uuid4().hex}", exchange, routing_key="#", auto_delete=True,
                     queue_arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        full(connection.channel()).declare()
        record(engine, "a", "b", "c")
        with pytest.raises(MessageNacked):
            relay.publish_pending()
        assert pending(engine) == ["thing_happened"] * 3   # the marks rolled back with the batch
        full(connection.channel()).delete()
    assert relay.publish_pending() == 3


def test_one_relay_at_a_time_on_postgresql(postgres, amqp_uri, heard):
    """On SQLite a file has one relay (the ledger's document worker, which shares the ledger's, relays
    nothing), so there is no other relay to wait for there."""
    engine, relay = postgres, relay_on(postgres, amqp_uri)
    try:
        record(engine, "first")
        with Session(engine) as other, other.begin():
            assert try_lock(other, "outbox:producer")     # another replica's relay, in the middle of its round
            assert relay.publish_pending() == 0            # claims nothing while that one holds the lock
            assert pending(engine) == ["thing_happened"]
        assert relay.publish_pending() == 1
        assert heard.get(timeout=10).payload["value"] == "first"

        # A row another relay marked, committing after this round's statement began: the statement's
        # snapshot still shows it pending, and the check of its latest version leaves it out.
        record(engine, "second")
        with Session(engine) as other:
            other.begin()
            other.execute(update(outbox).where(outbox.c.published_at.is_(None)).values(published_at=clock.now()))
            round_ = eventlet.spawn(relay.publish_pending)
            eventlet.sleep(0.5)                            # the round waits for that row's lock
            other.commit()
            assert round_.wait() == 0
        with pytest.raises(SimpleQueue.Empty):             # not published a second time
            heard.get(timeout=1)
    finally:
        relay.publisher.close()


def test_on_sqlite_another_process_writes_while_a_batch_waits_for_the_broker(tmp_path, amqp_uri):
    """SQLite has one write lock per file, and the ledger's document worker writes to the ledger's
    file from a process of its own: a relay that marked its batch before publishing it would hold
    that lock across the broker's confirm (up to ``confirm_timeout``)."""
    with database("sqlite", tmp_path) as engine:
        relay, elsewhere = relay_on(engine, amqp_uri), make_engine(str(engine.url))
        publish = relay.publisher.publish_all

        def publish_while_another_writes(rows):
            record(elsewhere, "written meanwhile")    # would wait 10 s for the lock, then fail
            publish(rows)

        relay.publisher.publish_all = publish_while_another_writes
        try:
            record(engine, "first")
            assert relay.publish_pending() == 1
            assert pending(engine) == ["thing_happened"]    # the one written meanwhile, for the next round
        finally:
            relay.publisher.close()
            elsewhere.dispose()
