"""RPC requests and replies on connections kept open (services/common/publisher.py), on a real broker:
the same message as Nameko's publisher writes, one connection for many messages, and the broker's
refusals and a lost connection handled as Nameko's publisher handles them."""
from __future__ import annotations

import eventlet
import pytest
from amqp.exceptions import PreconditionFailed
from kombu import Connection, Exchange, Queue
from nameko.amqp.publish import Publisher, UndeliverableMessage

from services.common import publisher as module
from services.common.publisher import KeptOpenPublisher, OpenChannels

EXCHANGE = Exchange("calls", type="topic", durable=False)
PAYLOAD = {"args": ["Zażółć", 1], "kwargs": {"amount": "10.00"}}


@pytest.fixture
def channels(monkeypatch):
    """The process's open channels, fresh for the test, so that it can count what they open."""
    fresh = OpenChannels(limit=3)
    monkeypatch.setattr(module, "CHANNELS", fresh)
    yield fresh
    fresh.forget()


@pytest.fixture
def inbox(amqp_uri):
    """A queue bound to ``calls`` with the key ``inbox``; yields a function that takes what arrived."""
    with Connection(amqp_uri) as connection:
        queue = Queue("inbox", EXCHANGE, routing_key="inbox", channel=connection.default_channel)
        queue.declare()

        def received(expected: int, seconds: float = 5.0) -> list:
            messages = []
            with eventlet.Timeout(seconds, False):
                while len(messages) < expected:
                    message = queue.get(no_ack=True)
                    if message is None:
                        eventlet.sleep(0.02)
                    else:
                        messages.append(message)
            return messages
        yield received


def publish_both_ways(amqp_uri, **options):
    arguments = dict(exchange=EXCHANGE, routing_key="inbox", mandatory=True, reply_to="a-reply-key",
                     correlation_id="c-1", extra_headers={"nameko.call_id_stack": ["gateway.x.1"]})
    Publisher(amqp_uri, serializer="json", **options).publish(PAYLOAD, **arguments)
    KeptOpenPublisher(amqp_uri, serializer="json", **options).publish(PAYLOAD, **arguments)


def test_a_request_goes_out_as_nameko_would_write_it(amqp_uri, channels, inbox):
    publish_both_ways(amqp_uri, user_id="guest", expiration=2.5, delivery_mode=1)
    nameko, ours = inbox(2)
    assert ours.body == nameko.body
    assert ours.properties == nameko.properties
    assert ours.properties["expiration"] == "2500" and ours.properties["user_id"] == "guest"
    assert ours.headers == nameko.headers == {"nameko.call_id_stack": ["gateway.x.1"]}
    assert ours.decode() == PAYLOAD


def test_many_messages_share_one_connection(amqp_uri, channels, inbox):
    publisher = KeptOpenPublisher(amqp_uri, serializer="json")
    for n in range(20):
        publisher.publish({"n": n}, exchange=EXCHANGE, routing_key="inbox", mandatory=True)
    assert [message.decode()["n"] for message in inbox(20)] == list(range(20))
    assert channels.opened == 1


def test_concurrent_messages_borrow_at_most_the_limit(amqp_uri, channels, inbox):
    publisher = KeptOpenPublisher(amqp_uri, serializer="json")
    pool = eventlet.GreenPool(40)
    for n in range(40):
        pool.spawn(publisher.publish, {"n": n}, exchange=EXCHANGE, routing_key="inbox", mandatory=True)
    pool.waitall()
    assert sorted(message.decode()["n"] for message in inbox(40)) == list(range(40))
    assert 1 <= channels.opened <= channels.limit


def test_an_unroutable_request_is_undeliverable_and_the_next_one_is_not(amqp_uri, channels, inbox):
    publisher = KeptOpenPublisher(amqp_uri, serializer="json")
    with pytest.raises(UndeliverableMessage):
        publisher.publish({"n": 0}, exchange=EXCHANGE, routing_key="nobody.listens", mandatory=True)
    # The refused message's confirm must not be taken for the next one's: a new connection carries it.
    publisher.publish({"n": 1}, exchange=EXCHANGE, routing_key="inbox", mandatory=True)
    with pytest.raises(UndeliverableMessage):   # on the connection that carried n 1
        publisher.publish({"n": 2}, exchange=EXCHANGE, routing_key="nobody.listens", mandatory=True)
    publisher.publish({"n": 3}, exchange=EXCHANGE, routing_key="inbox", mandatory=True)
    assert [message.decode() for message in inbox(2)] == [{"n": 1}, {"n": 3}]
    assert channels.opened == 3   # each refusal's connection was dropped


def test_a_refused_user_id_is_raised_and_the_next_message_goes_out(amqp_uri, channels, inbox):
    with pytest.raises(PreconditionFailed):   # user_id must be the connection's own login
        KeptOpenPublisher(amqp_uri, serializer="json", user_id="someone-else").publish(
            {"n": 0}, exchange=EXCHANGE, routing_key="inbox", mandatory=True)
    KeptOpenPublisher(amqp_uri, serializer="json", user_id="guest").publish(
        {"n": 1}, exchange=EXCHANGE, routing_key="inbox", mandatory=True)
    assert [message.decode() for message in inbox(1)] == [{"n": 1}]


def test_a_connection_lost_while_idle_costs_no_message(amqp_uri, channels, inbox):
    publisher = KeptOpenPublisher(amqp_uri, serializer="json")
    publisher.publish({"n": 0}, exchange=EXCHANGE, routing_key="inbox", mandatory=True)
    for connections in channels._idle.values():
        for connection in connections:   # as a broker restart leaves them: the socket gone
            connection.connection.sock.close()
    publisher.publish({"n": 1}, exchange=EXCHANGE, routing_key="inbox", mandatory=True)   # Nameko's way
    publisher.publish({"n": 2}, exchange=EXCHANGE, routing_key="inbox", mandatory=True)   # a new connection
    assert [message.decode()["n"] for message in inbox(3)] == [0, 1, 2]
    assert channels.opened == 2


def test_unconfirmed_replies_share_their_own_connection(amqp_uri, channels, inbox):
    confirmed = KeptOpenPublisher(amqp_uri, serializer="json")
    unconfirmed = KeptOpenPublisher(amqp_uri, serializer="json", use_confirms=False)
    for n in range(5):
        confirmed.publish({"n": n}, exchange=EXCHANGE, routing_key="inbox")
        unconfirmed.publish({"n": n}, exchange=EXCHANGE, routing_key="inbox")
    assert len(inbox(10)) == 10
    assert channels.opened == 2
