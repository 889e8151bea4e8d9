"""The shared machinery on a real broker and database: outbox, inbox, retries, dead letters,
RPC timeouts, and a PostgreSQL driver that does not block eventlet (services/common)."""
from __future__ import annotations

import json
import socket
import time
import uuid
from types import SimpleNamespace
from urllib.parse import quote

import eventlet
import pytest
import requests
from amqp.exceptions import MessageNacked
from kombu import Connection, Queue
from kombu.messaging import Producer as KombuProducer
from kombu.simple import SimpleQueue
from nameko.containers import ServiceContainer
from nameko.rpc import rpc
from nameko.standalone.events import get_event_exchange
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select, text

from deploy.ports import free_port
from services.common.database import Database
from services.common.errors import DomainError
from services.common.events import handle_event
from services.common.outbox import ConfirmedBatches, first_delivery, publish_later
from services.common.tables import add_messaging_tables
from services.common.rpc import ServiceRpc
from tests.support import (POSTGRES_ADMIN_URL, RABBIT_API, RABBIT_AUTH, databases, eventually, kill_together,
                           passes_eventually, rabbit_vhost)

metadata = MetaData()
add_messaging_tables(metadata)
received = Table("received", metadata, Column("id", Integer, primary_key=True, autoincrement=True),
                 Column("event_id", String(64)), Column("value", String(64)))
FAILURES: dict[str, int] = {}


class Producer:
    name = "producer"
    db = Database(metadata)

    @rpc
    def record(self, value):
        with self.db.transaction() as session:
            publish_later(session, "thing_happened", {"value": value})

    @rpc
    def sleep(self, seconds):
        eventlet.sleep(seconds)
        return "late"

    @rpc
    def pg_sleep(self, seconds):
        with self.db.transaction() as session:
            started = time.monotonic()
            session.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})
            return [started, time.monotonic()]


class Consumer:
    name = "consumer"
    db = Database(metadata)
    producer = ServiceRpc("producer", timeout=1.0)
    ghost = ServiceRpc("ghost", timeout=1.0)

    @handle_event("producer", "thing_happened")
    def on_thing(self, event):
        value = event["value"]
        if value.startswith("poison"):
            raise ValueError("cannot digest this")
        if value.startswith("flaky") and FAILURES.get(value, 0) < 2:
            FAILURES[value] = FAILURES.get(value, 0) + 1
            raise RuntimeError("not yet")
        with self.db.transaction() as session:
            if first_delivery(session, "consumer.on_thing", event["event_id"]):
                session.execute(insert(received).values(event_id=event["event_id"], value=value))

    @rpc
    def ask_slow_producer(self):
        return self.producer.sleep(3)

    @rpc
    def ask_ghost(self):
        return self.ghost.anything()

    @rpc
    def ask_producer(self, seconds):
        return self.producer.sleep(seconds)


@pytest.fixture
def stack(tmp_path, monkeypatch):
    monkeypatch.setenv("OUTBOX_POLL_SECONDS", "0.1")
    monkeypatch.setenv("EVENT_RETRY_BASE_SECONDS", "0.1")
    monkeypatch.setenv("EVENT_MAX_ATTEMPTS", "3")
    with rabbit_vhost() as amqp, databases(tmp_path, ("producer", "consumer")) as urls:
        for name, url in urls.items():
            monkeypatch.setenv(f"{name.upper()}_DATABASE_URL", url)
            engine = create_engine(url)
            metadata.create_all(engine)
            engine.dispose()
        containers = {}

        def start(cls):
            container = ServiceContainer(cls, {"AMQP_URI": amqp, "serializer": "json",
                                               "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}"})
            container.start()
            containers[cls.name] = container
            return container
        yield start, urls, amqp
        kill_together(containers.values())


def rows(url, table=received):
    engine = create_engine(url)
    with engine.connect() as connection:
        result = connection.execute(select(table)).all()
    engine.dispose()
    return result


def call(container, method, *args):
    from nameko.standalone.rpc import ServiceRpcProxy
    with ServiceRpcProxy(container.service_name, container.config, timeout=10) as proxy:
        return getattr(proxy, method)(*args)


def test_event_committed_while_the_relay_was_down_is_published_when_it_returns(stack):
    start, urls, _ = stack
    start(Consumer)
    engine = create_engine(urls["producer"])
    with engine.begin() as connection:  # committed, never published: the relay "died"
        connection.execute(insert(metadata.tables["outbox"]).values(
            event_id=str(uuid.uuid4()), event_type="thing_happened",
            payload='{"event_id": "e-1", "value": "survivor"}', headers="{}",
            created_at=__import__("datetime").datetime.now(__import__("datetime").timezone.utc)))
    engine.dispose()
    start(Producer)
    assert eventually(lambda: rows(urls["consumer"]))[0].value == "survivor"
    assert eventually(lambda: all(r.published_at for r in rows(urls["producer"], metadata.tables["outbox"])))


def test_events_are_published_in_order_and_a_redelivery_has_no_second_effect(stack):
    start, urls, amqp = stack
    start(Consumer)
    producer = start(Producer)
    with Connection(amqp) as connection:
        # A queue of our own on the producer's exchange, read by one reader, sees the order the
        # relay published in. (The consumer's workers run side by side, so the order in which
        # they finish is not the order of the events.)
        exchange = get_event_exchange("producer", {"AMQP_URI": amqp})
        probe = SimpleQueue(connection, Queue(f"probe-{uuid.uuid4().hex}", exchange, routing_key="thing_happened",
                                              auto_delete=True))
        for n in range(5):
            call(producer, "record", f"v{n}")
        assert [probe.get(timeout=10).payload["value"] for _ in range(5)] == [f"v{n}" for n in range(5)]
        probe.close()
    eventually(lambda: len(rows(urls["consumer"])) == 5)
    assert sorted(r.value for r in rows(urls["consumer"])) == [f"v{n}" for n in range(5)]
    # the broker delivers the first event again (a relay crash after publish does this)
    first = rows(urls["producer"], metadata.tables["outbox"])[0]
    with Connection(amqp) as connection:
        connection.Producer().publish(__import__("json").loads(first.payload), exchange="producer.events",
                                      routing_key="thing_happened", serializer="json")
    time.sleep(1.0)
    assert len(rows(urls["consumer"])) == 5


def outbox_rows(values, kind="thing_happened"):
    return [SimpleNamespace(event_id=f"e-{value}", event_type=kind, payload=json.dumps({"value": value}),
                            headers=json.dumps({"nameko.request_id": f"r-{value}"})) for value in values]


def test_the_relay_publishes_a_batch_in_order_and_returns_once_the_broker_confirmed_it(amqp_uri):
    exchange = get_event_exchange("producer", {"AMQP_URI": amqp_uri})
    batches = ConfirmedBatches(amqp_uri, exchange)
    with Connection(amqp_uri) as connection:
        probe = SimpleQueue(connection, Queue(f"probe-{uuid.uuid4().hex}", exchange, routing_key="#",
                                              auto_delete=True))
        try:
            batches.publish_all(outbox_rows(range(200)))
            batches.publish_all(outbox_rows(range(200, 250)))
            assert batches._unconfirmed == set() and batches._sent == 250   # every delivery tag acked
            # Three events nobody listens to: the broker acks each alone, and all three are awaited.
            unheard = ConfirmedBatches(amqp_uri, get_event_exchange("nobody", {"AMQP_URI": amqp_uri}))
            unheard.confirm_timeout = 2
            unheard.publish_all(outbox_rows(range(3)))
            unheard.publish_all(outbox_rows(range(3, 4)))
            assert unheard._unconfirmed == set() and unheard._sent == 4
            unheard.close()
            received = [probe.get(timeout=10) for _ in range(250)]
            assert [message.payload["value"] for message in received] == list(range(250))
            first = received[0]
            assert first.properties["message_id"] == "e-0" and first.headers == {"nameko.request_id": "r-0"}
            assert first.properties["delivery_mode"] == 2 and first.content_type == "application/json"
            assert first.delivery_info["routing_key"] == "thing_happened"

            # A connection that broke between two batches: the next batch fails whole, the one after
            # goes out on a new connection.
            batches._connection.connection.transport.sock.shutdown(socket.SHUT_RDWR)
            with pytest.raises(Exception):
                batches.publish_all(outbox_rows(["lost"]))
            assert batches._connection is None
            batches.publish_all(outbox_rows(["again"]))
            assert probe.get(timeout=10).payload["value"] == "again"
        finally:
            batches.close()
            probe.close()


def test_a_batch_is_written_corked_and_the_socket_uncorked_once_it_is_out(amqp_uri, monkeypatch):
    """Every message of a batch is written while the relay's socket is corked, and the socket is
    uncorked before the confirms are awaited: corked, the broker would see the batch only after
    Linux's 200 ms ceiling, and a socket left corked would hold the next batch as well."""
    exchange = get_event_exchange("producer", {"AMQP_URI": amqp_uri})
    batches = ConfirmedBatches(amqp_uri, exchange)

    def cork(connection):
        return connection.connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK)

    written, awaited = [], []   # the cork at each message written, and at each wait for the confirms
    publish, drain = KombuProducer.publish, Connection.drain_events

    def publish_seen(producer, *args, **kwargs):
        written.append(cork(batches._connection))
        return publish(producer, *args, **kwargs)

    def drain_seen(connection, **kwargs):
        awaited.append(cork(connection))
        return drain(connection, **kwargs)

    monkeypatch.setattr(KombuProducer, "publish", publish_seen)
    monkeypatch.setattr(Connection, "drain_events", drain_seen)
    try:
        batches.publish_all(outbox_rows(range(3)))
        assert written == [1, 1, 1] and awaited and set(awaited) == {0}
        assert cork(batches._connection) == 0
        written.clear()
        awaited.clear()
        batches.publish_all(outbox_rows([3]))
        assert written == [1] and awaited and set(awaited) == {0}
    finally:
        batches.close()


def test_a_batch_the_broker_refuses_part_of_is_an_error(amqp_uri):
    """A queue full with ``reject-publish`` makes the broker nack: ``publish_all`` raises, so the relay's
    ``publish_pending``, which marks a batch only after it returns, leaves all of it pending."""
    exchange = get_event_exchange("producer", {"AMQP_URI": amqp_uri})
    batches = ConfirmedBatches(amqp_uri, exchange)
    with Connection(amqp_uri) as connection:
        full = Queue(f"full-{uuid.uuid4().hex}", exchange, routing_key="#", auto_delete=True,
                     queue_arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
        full(connection.channel()).declare()
        try:
            with pytest.raises(MessageNacked):
                batches.publish_all(outbox_rows(range(5)))
            assert batches._connection is None
        finally:
            batches.close()


def test_a_failing_handler_is_retried_until_it_succeeds(stack):
    start, urls, _ = stack
    start(Consumer)
    producer = start(Producer)
    call(producer, "record", "flaky-1")
    assert eventually(lambda: rows(urls["consumer"]))[0].value == "flaky-1"
    assert FAILURES["flaky-1"] == 2


def test_a_poison_event_is_dead_lettered_and_does_not_block_the_next(stack):
    start, urls, amqp = stack
    start(Consumer)
    producer = start(Producer)
    call(producer, "record", "poison-1")
    call(producer, "record", "after-poison")
    assert eventually(lambda: rows(urls["consumer"]))[0].value == "after-poison"
    queue = "evt-producer-thing_happened--consumer.on_thing.dead"
    vhost = amqp.rsplit("/", 1)[1]

    def dead_count():
        info = requests.get(f"http://127.0.0.1:15672/api/queues/{vhost}/{queue}", auth=("guest", "guest"),
                            timeout=5).json()
        return info.get("messages", 0)
    assert eventually(dead_count, timeout=20) == 1


def test_rpc_to_a_silent_or_missing_service_is_unavailable_within_its_timeout(stack):
    start, _, _ = stack
    start(Producer)
    consumer = start(Consumer)
    started = time.monotonic()
    with pytest.raises(DomainError) as slow:
        call(consumer, "ask_slow_producer")
    assert slow.value.args[0] == "service_unavailable"
    assert slow.value.args[3] == {"service": "producer"}
    assert time.monotonic() - started < 3
    with pytest.raises(DomainError) as missing:
        call(consumer, "ask_ghost")
    assert missing.value.args[0] == "service_unavailable"


def test_a_service_takes_its_rpc_replies_without_acks_and_still_acks_each_request(stack):
    start, _, amqp = stack
    start(Producer)
    consumer = start(Consumer)
    assert [call(consumer, "ask_producer", 0) for _ in range(5)] == ["late"] * 5
    vhost = quote(amqp.rsplit("/", 1)[1], safe="")

    def consumers():
        listed = requests.get(f"{RABBIT_API}/consumers/{vhost}", auth=RABBIT_AUTH, timeout=5).json()
        acks = {item["queue"]["name"]: item["ack_required"] for item in listed}
        replies = [ack for name, ack in acks.items() if name.startswith("rpc.reply-consumer-")]
        assert replies == [False], acks          # the ServiceRpc's listener: the broker counts a reply sent
        assert acks["rpc-producer"] is True and acks["rpc-consumer"] is True   # a request is acked once answered
    passes_eventually(consumers, timeout=10)


def test_postgres_queries_of_concurrent_workers_overlap(monkeypatch, tmp_path):
    """psycopg2 is greened: ten workers each sleeping in PostgreSQL are all in flight at once."""
    name = f"t{uuid.uuid4().hex[:8]}_green"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    monkeypatch.setenv("PRODUCER_DATABASE_URL", url)
    try:
        with rabbit_vhost() as amqp:
            container = ServiceContainer(Producer, {"AMQP_URI": amqp, "serializer": "json", "max_workers": 10,
                                                    "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}"})
            container.start()
            try:
                from nameko.standalone.rpc import ServiceRpcProxy
                with ServiceRpcProxy("producer", container.config, timeout=30) as proxy:
                    replies = [proxy.pg_sleep.call_async(0.5) for _ in range(10)]
                    spans = [reply.result() for reply in replies]
            finally:
                container.stop()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    latest_start = max(start for start, _ in spans)
    earliest_end = min(end for _, end in spans)
    # Every query started before the first one finished: none waited for another.
    assert latest_start < earliest_end
