"""The pika client (clients/) against real RabbitMQ and real services run in this process:
what the payment system and the support desk see when they call without Nameko.

pika blocks, but on the sockets eventlet patched (the root conftest), so the services in this
process answer while a call waits.
"""
from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from urllib.parse import quote, unquote, urlparse

import eventlet
import pika
import pytest
import requests
from nameko.rpc import rpc

from introserv_clients import (BrokerUnavailable, CallTimedOut, IdempotencyConflict, Ledger, Money, NotFound,
                               Profile, Refused, RemoteFailure, RpcClient, UnknownService, ValidationError)
from services.ledger.service import LedgerService
from services.profile.service import ProfileService
from tests.support import RABBIT_API, RABBIT_AUTH, rabbit_vhost, role_uri

PASSWORD = "a long and unusual passphrase 7"


class SlowService:
    """A service that answers when it likes, fails on request, and has no method ``nope``."""

    name = "slow"

    @rpc
    def ping(self):
        return "pong"

    @rpc
    def wait(self, seconds):
        eventlet.sleep(seconds)
        return "done"

    @rpc
    def crash(self):
        raise ValueError("boom")


@pytest.fixture
def amqp_uri():
    """The roles' logins without their topic permissions: the tests' own service, ``slow``, is no
    method of the role table, and the client is the subject here, not the broker's second layer."""
    with rabbit_vhost(topic_permissions=False) as uri:
        yield uri


@pytest.fixture
def payments_amqp_uri(amqp_uri):
    """The payment system's login."""
    return role_uri(amqp_uri, "payments")


@pytest.fixture
def client(payments_amqp_uri):
    with RpcClient(payments_amqp_uri, timeout=10, name="payments-test") as client:
        yield client


@pytest.fixture
def staff(amqp_uri):
    """Support staff's tools (the ``operator`` login)."""
    with RpcClient(role_uri(amqp_uri, "operator"), timeout=10, name="operator-test") as client:
        yield client


@pytest.fixture
def customer(run_service, rpc_as):
    """A registered customer's id, with the profile and ledger services running."""
    run_service(ProfileService)
    run_service(LedgerService)
    login = f"c{uuid.uuid4().hex[:12]}"
    return rpc_as("gateway").profile.register({"login": login, "password": PASSWORD, "email": f"{login}@example.com",
                                        "first_name": "Anna", "last_name": "Nowak", "city": "Warszawa",
                                        "address": "ul. Prosta 1", "country": "PL"})["id"]


def eur(amount: str) -> Money:
    return Money(Decimal(amount), "EUR")


def test_a_payment_credits_once_per_key_and_answers_money_as_decimal(client, staff, customer):
    ledger = Ledger(client)
    key = f"bank:{uuid.uuid4()}"
    paid = ledger.credit_payment(customer, eur("12.50"), idempotency_key=key, reference="2026/11/0042")
    assert paid["kind"] == "payment" and paid["reference"] == "2026/11/0042"
    assert paid["amount"] == Money(Decimal("12.50"), "EUR") and paid["balance_after"] == eur("12.50")
    assert isinstance(paid["amount"].amount, Decimal)

    again = ledger.credit_payment(customer, eur("12.50"), idempotency_key=key, reference="2026/11/0042")
    assert again == paid and ledger.get_balance(customer) == eur("12.50")
    with pytest.raises(IdempotencyConflict) as conflict:
        ledger.credit_payment(customer, eur("13.00"), idempotency_key=key, reference="2026/11/0042")
    assert conflict.value.code == "idempotency_conflict" and conflict.value.message
    assert ledger.get_balance(customer) == eur("12.50")
    assert [t["amount"] for t in Ledger(staff).list_transactions(customer)] == [eur("12.50")]
    with pytest.raises(TypeError):
        ledger.credit_payment(customer, 12.5, idempotency_key=f"bank:{uuid.uuid4()}", reference="float")


def test_refusals_come_back_as_the_exception_of_their_code(client, staff, customer):
    profile, ledger = Profile(staff), Ledger(client)
    with pytest.raises(NotFound) as missing:
        profile.get(str(uuid.uuid4()))
    assert missing.value.code == "not_found"
    with pytest.raises(ValidationError) as invalid:
        profile.change_country(customer, "Narnia", "T-1")
    assert invalid.value.code == "validation_error" and "country" in invalid.value.fields
    with pytest.raises(Refused) as refused:
        ledger.credit_payment(customer, eur("5.00"), idempotency_key=f"bank:{uuid.uuid4()}", reference="P",
                              method="no-such-method")
    assert refused.value.code == "method_not_offered"
    assert ledger.get_balance(customer) == eur("0.00")
    assert profile.find_by_login(profile.get(customer)["login"])["id"] == customer


def test_a_failure_that_is_no_refusal_and_an_unknown_method_are_remote_failures(client, run_service):
    run_service(SlowService)
    with pytest.raises(RemoteFailure) as crashed:
        client.call("slow", "crash")
    assert crashed.value.code == "internal_error" and "boom" in crashed.value.message
    with pytest.raises(RemoteFailure) as unknown:
        client.call("slow", "nope")
    assert unknown.value.code == "method_not_found"


def test_a_service_nobody_runs_fails_at_once_not_after_the_timeout(client, run_service):
    run_service(SlowService)   # the RPC exchange exists; no queue is bound for "billing"
    with pytest.raises(UnknownService) as unknown:
        client.call("billing", "ping", timeout=120)   # a wait for the timeout would fail as CallTimedOut
    assert unknown.value.code == "service_unavailable" and unknown.value.details == {"service": "billing"}
    assert client.call("slow", "ping") == "pong"


def test_a_call_nobody_answers_times_out_and_expires_unexecuted(client, amqp_uri, payments_amqp_uri, run_service):
    """A queue bound for ``idle`` with no consumer: the request waits there, as Nameko would get it."""
    run_service(SlowService)
    with broker_channel(amqp_uri) as channel:   # the test's own view of the broker (guest)
        channel.queue_declare("rpc-idle", durable=True)
        channel.queue_bind("rpc-idle", "nameko-rpc", routing_key="idle.*")
        waiting = eventlet.spawn(client.call, "idle", "count", [1, "two"], {"three": eur("3.00")}, timeout=2)
        method, properties, body = next_message(channel, "rpc-idle")
        channel.basic_nack(method.delivery_tag, requeue=True)
        with pytest.raises(CallTimedOut) as timed_out:
            waiting.wait()
        assert timed_out.value.code == "service_unavailable" and timed_out.value.details["method"] == "count"

        assert method.routing_key == "idle.count" and method.exchange == "nameko-rpc"
        assert json.loads(body) == {"args": [1, "two"], "kwargs": {"three": {"amount": "3.00", "currency": "EUR"}}}
        assert properties.content_type == "application/json"
        assert properties.user_id == unquote(urlparse(payments_amqp_uri).username)
        assert properties.expiration == "2000" and properties.correlation_id and properties.reply_to
        assert properties.headers["nameko.call_id_stack"][0].startswith("payments-test.idle.count.")
        # the broker drops it once its time is up: a service starting later never runs it
        assert wait_until(lambda: channel.queue_declare("rpc-idle", passive=True).method.message_count == 0)


def test_a_dropped_connection_fails_the_call_in_flight_and_the_next_call_reconnects(client, run_service,
                                                                                    payments_amqp_uri):
    run_service(SlowService)
    assert client.call("slow", "ping") == "pong"

    close_connections(payments_amqp_uri, "payments-test")          # while idle, as in a broker restart
    assert client.call("slow", "ping") == "pong"

    closer = eventlet.spawn_after(0.5, close_connections, payments_amqp_uri, "payments-test")
    with pytest.raises(BrokerUnavailable) as lost:
        client.call("slow", "wait", [30], timeout=60)   # not CallTimedOut: the loss is known when it happens
    closer.wait()
    assert "lost" in lost.value.message and lost.value.code == "service_unavailable"
    assert client.call("slow", "ping") == "pong"


# -- the broker, seen from the test


class broker_channel:
    def __init__(self, amqp_uri):
        self.parameters = pika.URLParameters(amqp_uri)

    def __enter__(self):
        self.connection = pika.BlockingConnection(self.parameters)
        return self.connection.channel()

    def __exit__(self, *exc_info):
        self.connection.close()


def next_message(channel, queue, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        method, properties, body = channel.basic_get(queue, auto_ack=False)
        if method is not None:
            return method, properties, body
        eventlet.sleep(0.05)
    raise AssertionError(f"nothing arrived in {queue}")


def wait_until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        eventlet.sleep(0.1)
    return False


def close_connections(amqp_uri: str, client_name: str) -> None:
    """Close the client's connections through the management API, as an operator or a restart would."""
    vhost = quote(unquote(urlparse(amqp_uri).path[1:]) or "/", safe="")
    deadline = time.monotonic() + 30
    while True:   # the management API lists a new connection within its stats interval
        connections = requests.get(f"{RABBIT_API}/vhosts/{vhost}/connections", auth=RABBIT_AUTH, timeout=10).json()
        mine = [c["name"] for c in connections
                if c.get("client_properties", {}).get("connection_name", "").startswith(client_name)]
        if mine or time.monotonic() > deadline:
            break
        eventlet.sleep(0.2)
    assert mine, f"no connection of {client_name} in the management API"
    for name in mine:
        requests.delete(f"{RABBIT_API}/connections/{quote(name, safe='')}", auth=RABBIT_AUTH, timeout=10,
                        headers={"X-Reason": "test: the broker went away"}).raise_for_status()
    assert wait_until(lambda: all(closed(name) for name in mine), seconds=30)


def closed(connection_name: str) -> bool:
    """Whether the broker has closed the connection (the management API says so within its stats interval)."""
    response = requests.get(f"{RABBIT_API}/connections/{quote(connection_name, safe='')}", auth=RABBIT_AUTH, timeout=10)
    return response.status_code == 404 or response.json().get("state") == "closed"
