"""What RabbitMQ itself refuses each login (deploy/bus.py): the second layer, and the only one for events.

A vhost as ``make run`` and the tests provision it, every role's login with its permissions and
topic permissions; no service needs to run for the broker to refuse (the last test runs one, to
see a service's failed events retried and parked under its own login).
"""
from __future__ import annotations

import json
import time
import uuid
from contextlib import contextmanager

import pytest
from amqp.exceptions import AccessRefused, PreconditionFailed
from kombu import Connection, Exchange, Producer, Queue

from deploy.bus import rpc_methods
from services.common.errors import DomainError
from services.common.events import handle_event
from services.common.roles import ROLES, SERVICES
from services.common.rpc import ClusterRpcProxy
from tests.support import role_uri

RPC = Exchange("nameko-rpc", type="topic", durable=True)


def events(service: str) -> Exchange:
    return Exchange(f"{service}.events", type="topic", durable=True)


@pytest.fixture
def bus(amqp_uri):
    """The exchanges and a service's queue as the running services would have declared them (as guest)."""
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        for exchange in (RPC, *(events(service) for service in sorted(SERVICES))):
            exchange(channel).declare()
        Queue("evt-verification-phone_verified--profile.on_phone_verified", exchange=events("verification"),
              routing_key="phone_verified", durable=True)(channel).declare()
    return amqp_uri


@contextmanager
def logged_in(vhost_uri: str, role: str):
    """``send(exchange, routing_key, body, **properties)`` as ``role``, with publisher confirms:
    None when the broker took the message, else the name of its refusal."""
    with Connection(role_uri(vhost_uri, role), transport_options={"confirm_publish": True}) as connection:
        channel = [connection.channel()]

        def send(exchange, routing_key, body=None, **properties):
            try:
                Producer(channel[0]).publish(body or {}, exchange=exchange, routing_key=routing_key, retry=False,
                                             serializer="json", **properties)
                return None
            except (AccessRefused, PreconditionFailed) as refusal:
                channel[0] = connection.channel()   # the broker closed that one
                return "ACCESS_REFUSED" if isinstance(refusal, AccessRefused) else "PRECONDITION_FAILED"
        yield send


def test_a_login_may_publish_only_the_rpc_requests_its_role_may_make(bus):
    wrong = []
    for role in sorted(ROLES):
        with logged_in(bus, role) as send:
            for method, roles in sorted(rpc_methods().items()):
                outcome = send(RPC, method, {"args": [], "kwargs": {}}, user_id=role)
                if outcome != (None if role in roles else "ACCESS_REFUSED"):
                    wrong.append((role, method, outcome))
    assert wrong == []


def test_a_forged_user_id_is_refused_by_the_broker_and_reaches_no_one(bus):
    with Connection(bus) as connection:
        queue = Queue("rpc-ledger", exchange=RPC, routing_key="ledger.*", durable=True)(connection.channel())
        queue.declare()
        queue.purge()
    request = {"args": ["acct-1"], "kwargs": {}}
    with logged_in(bus, "gateway") as send:
        # The gateway may ask for a balance, but not in the payment system's name.
        assert send(RPC, "ledger.get_balance", request, user_id="payments") == "PRECONDITION_FAILED"
        assert send(RPC, "ledger.get_balance", request, user_id="gateway") is None
    with Connection(bus) as connection:
        channel = connection.channel()
        delivered = []
        while (message := channel.basic_get("rpc-ledger", no_ack=True)) is not None:
            delivered.append(message.properties.get("user_id"))
    assert delivered == ["gateway"]


def test_only_a_service_may_publish_its_events_so_a_forged_event_is_refused(bus):
    wrong = []
    for role in sorted(ROLES):
        with logged_in(bus, role) as send:
            for source in sorted(SERVICES):
                outcome = send(events(source), "phone_verified", {"event_id": str(uuid.uuid4())})
                if outcome != (None if role == source else "ACCESS_REFUSED"):
                    wrong.append((role, source, outcome))
    assert wrong == []


def test_no_login_may_put_a_message_into_a_queue_by_its_name(bus):
    # The default exchange reaches every queue: a fake phone_verified straight into profile's queue.
    default = Exchange("", type="direct")
    for role in sorted(ROLES):
        with logged_in(bus, role) as send:
            assert send(default, "evt-verification-phone_verified--profile.on_phone_verified",
                        {"account_id": "acct-1", "phone": "+48600000000"}) == "ACCESS_REFUSED", role


def test_no_login_may_listen_to_everyone_s_calls_or_read_another_s_replies(bus):
    with Connection(role_uri(bus, "gateway")) as connection:
        for routing_key in ("#", "ledger.*", "profile.log_in"):
            with pytest.raises(AccessRefused):
                Queue(f"rpc.reply-gateway-{uuid.uuid4()}", exchange=RPC, routing_key=routing_key,
                      auto_delete=True)(connection.channel()).declare()
        with pytest.raises(AccessRefused):   # the operator's reply queue
            Queue(f"rpc.reply-operator-{uuid.uuid4()}", exchange=RPC, routing_key=str(uuid.uuid4()),
                  auto_delete=True)(connection.channel()).declare()
        with pytest.raises(AccessRefused):   # the ledger's requests
            Queue("rpc-ledger", exchange=RPC, routing_key="ledger.*", durable=True)(connection.channel()).declare()
        # Its own reply queue, bound with a reply key, it may have.
        Queue(f"rpc.reply-gateway-{uuid.uuid4()}", exchange=RPC, routing_key=str(uuid.uuid4()),
              auto_delete=True)(connection.channel()).declare()


def test_a_service_may_listen_only_to_the_events_it_handles(bus):
    # The ledger handles account_registered; profile's e-mail tokens are not for it to read.
    with Connection(role_uri(bus, "ledger")) as connection:
        Queue("evt-profile-account_registered--ledger.on_account_registered", exchange=events("profile"),
              routing_key="account_registered", durable=True)(connection.channel()).declare()
        with pytest.raises(AccessRefused):
            Queue("evt-profile-email_confirmation_requested--ledger.snoop", exchange=events("profile"),
                  routing_key="email_confirmation_requested", durable=True)(connection.channel()).declare()


def test_the_project_s_proxy_reports_the_broker_s_refusal_as_forbidden(bus):
    with ClusterRpcProxy({"AMQP_URI": role_uri(bus, "gateway"), "serializer": "json"}, timeout=5) as gateway:
        with pytest.raises(DomainError) as refusal:
            gateway.notifier.notify("acct-1", "support_reply", {"subject": "s", "text": "t"}, "k")
        assert refusal.value.error_code == "forbidden"


ATTEMPTS: dict[str, int] = {}


class FlakyNotifier:
    """A notifier whose handler fails twice, or always for a poison event: it runs as ``notifier``."""

    name = "notifier"

    @handle_event("orders", "order_activated")
    def order_activated(self, payload):
        ATTEMPTS[payload["id"]] = ATTEMPTS.get(payload["id"], 0) + 1
        if payload["id"].startswith("poison") or ATTEMPTS[payload["id"]] < 3:
            raise RuntimeError("not yet")


def test_a_service_retries_and_parks_its_failed_events_under_its_own_login(bus, run_service, monkeypatch):
    monkeypatch.setenv("EVENT_RETRY_BASE_SECONDS", "0.1")
    monkeypatch.setenv("EVENT_MAX_ATTEMPTS", "3")
    run_service(FlakyNotifier)
    flaky, poison = f"flaky-{uuid.uuid4()}", f"poison-{uuid.uuid4()}"
    with logged_in(bus, "orders") as send:
        assert send(events("orders"), "order_activated", {"id": flaky}) is None
        assert send(events("orders"), "order_activated", {"id": poison}) is None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (ATTEMPTS.get(flaky, 0) < 3 or ATTEMPTS.get(poison, 0) < 3):
        time.sleep(0.1)
    assert ATTEMPTS[flaky] == 3 and ATTEMPTS[poison] == 3
    with Connection(bus) as connection:
        parked = connection.channel().basic_get("evt-orders-order_activated--notifier.order_activated.dead",
                                                no_ack=True)
    assert parked is not None and json.loads(parked.body) == {"id": poison}
