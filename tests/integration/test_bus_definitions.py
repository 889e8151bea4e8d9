"""The bus permissions of deploy/bus_definitions.py on a real RabbitMQ: enough for Nameko, no more.

Each role logs in as itself in a private vhost, with the resource and topic permissions that
deploy/k8s gives it (deploy/bus.py's). The services then run in-process, each logged in as itself: a registration
through a gateway stand-in must reach the ledger and the notifier as events, and the notifier
must call profile back. Then what a role must not do is refused by the broker itself.
"""
from __future__ import annotations

import uuid
from contextlib import contextmanager

import pytest
from amqp.exceptions import AccessRefused
from kombu import Connection, Exchange, Queue
from nameko.containers import ServiceContainer
from nameko.testing.services import dummy, entrypoint_hook
from prometheus_client import REGISTRY

from deploy import bus_definitions
from deploy.ports import free_port
from services.common.rpc import ClusterRpcProxy, ServiceRpc
from services.ledger.documents.service import LedgerDocumentsService
from services.ledger.service import LedgerService
from services.notifier.service import NotifierService
from services.profile.service import ProfileService
from tests.support import database_env, eventually, kill_together, role_uri

pytestmark = pytest.mark.integration


@pytest.fixture
def logins(amqp_uri):
    """``logins[role]``: an AMQP URI logging in as that role; the test vhost gives each role the
    permissions and topic permissions deploy/k8s's definitions give it (deploy/bus.py's)."""
    return {role: role_uri(amqp_uri, role) for role in bus_definitions.ROLES}


class GatewayStandIn:
    """The gateway's side of the bus: RPC calls only."""

    name = "gateway"
    profile = ServiceRpc("profile")
    notifier = ServiceRpc("notifier")
    ledger = ServiceRpc("ledger")

    @dummy
    def register(self, data):
        return self.profile.register(data)

    @dummy
    def sent(self, account_id):
        return self.notifier.list_sent(account_id)["items"]

    @dummy
    def invoice_pdf(self, account_id, invoice_id):
        return self.ledger.get_invoice_pdf(invoice_id, account_id)


@pytest.fixture
def services_as_themselves(logins, service_databases, monkeypatch, tmp_path):
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    monkeypatch.setenv("ARGON2_TIME_COST", "1")
    monkeypatch.setenv("ARGON2_MEMORY_KIB", "8192")
    monkeypatch.setenv("OUTBOX_POLL_SECONDS", "0.2")
    for name, value in database_env(service_databases).items():
        monkeypatch.setenv(name, value)
    containers = {}
    for cls in (ProfileService, LedgerService, LedgerDocumentsService, NotifierService, GatewayStandIn):
        container = ServiceContainer(cls, {"AMQP_URI": logins[cls.name], "serializer": "json", "max_workers": 10,
                                           "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}"})
        container.start()
        containers[cls.name] = container
    yield containers
    kill_together(containers.values())


def handled(service: str, queue: str) -> float:
    return REGISTRY.get_sample_value("introserv_events_total",
                                     {"service": service, "queue": queue, "outcome": "handled"}) or 0.0


def test_each_service_logged_in_as_itself_serves_calls_and_events(services_as_themselves):
    ledger_queue = "evt-profile-account_registered--ledger.on_account_registered"
    before = handled("ledger", ledger_queue)
    login = f"c{uuid.uuid4().hex[:12]}"
    with entrypoint_hook(services_as_themselves["gateway"], "register") as register:
        account = register({"login": login, "password": "a long and unusual passphrase 7",
                            "email": f"{login}@example.com", "first_name": "Anna", "last_name": "Nowak",
                            "city": "Warszawa", "address": "ul. Prosta 1", "country": "PL"})
    # profile published through its own exchange; the ledger consumed from its own queue
    eventually(lambda: handled("ledger", ledger_queue) > before)

    def confirmation_recorded():   # the notifier consumed the event and called profile back
        with entrypoint_hook(services_as_themselves["gateway"], "sent") as sent:
            return sent(account["id"])
    assert eventually(confirmation_recorded)[0]["kind"] == "email_confirmation"


def test_the_ledger_asks_its_document_worker_and_the_worker_takes_the_ledgers_events_each_as_itself(
        services_as_themselves, logins):
    worker_queue = "evt-ledger-invoice_issued--ledger_documents.on_invoice_issued"
    before = handled("ledger_documents", worker_queue)
    login = f"c{uuid.uuid4().hex[:12]}"
    with entrypoint_hook(services_as_themselves["gateway"], "register") as register:
        account = register({"login": login, "password": "a long and unusual passphrase 7",
                            "email": f"{login}@example.com", "first_name": "Anna", "last_name": "Nowak",
                            "city": "Warszawa", "address": "ul. Prosta 1", "country": "PL"})
    # A payment and a charge, each by the login whose role it is: the payment system, the orders service.
    with ClusterRpcProxy({"AMQP_URI": logins["payments"], "serializer": "json"}, timeout=10) as payments:
        payments.ledger.credit_payment(account["id"], {"amount": "20.00", "currency": "EUR"}, "pay-1", "P-1")
    with ClusterRpcProxy({"AMQP_URI": logins["orders"], "serializer": "json"}, timeout=10) as orders:
        invoice_id = orders.ledger.charge(account["id"], {"amount": "9.90", "currency": "EUR"}, "charge-1",
                                          "order-1", "VPS S")["invoice_id"]
    with entrypoint_hook(services_as_themselves["gateway"], "invoice_pdf") as invoice_pdf:
        pdf = invoice_pdf(account["id"], invoice_id)
    assert pdf["invoice_id"] == invoice_id and pdf["content"].startswith("JVBER")   # base64 of "%PDF"
    eventually(lambda: handled("ledger_documents", worker_queue) > before)


@contextmanager
def channel_of(uri: str):
    with Connection(uri, connect_timeout=5) as connection:
        yield connection.channel()


def refused(uri: str, act) -> bool:
    try:
        with channel_of(uri) as channel:
            act(channel)
            channel.basic_qos(0, 0, False)   # a round trip: a refused publish closes the channel by then
    except AccessRefused:
        return True
    return False


def publish(exchange: str, routing_key: str):
    return lambda channel: channel.basic_publish(channel.prepare_message(b"{}"), exchange=exchange,
                                                 routing_key=routing_key)


def test_what_a_role_may_not_do_the_broker_refuses(logins):
    rpc = "nameko-rpc"
    with channel_of(logins["ledger"]) as channel:   # the ledger's request queue, as the service makes it
        ledgers = Queue("rpc-ledger", Exchange(rpc, type="topic", durable=True), routing_key="ledger.*", durable=True)
        ledgers(channel).declare()
    # calls to a service outside the role's table
    assert refused(logins["payments"], publish(rpc, "profile.get"))
    assert refused(logins["ledger"], publish(rpc, "orders.list_orders"))
    assert not refused(logins["payments"], publish(rpc, "ledger.get_balance"))   # waits in rpc-ledger
    # another service's events, or any queue through the default exchange
    assert refused(logins["gateway"], publish("ledger.events", "balance_changed"))
    assert refused(logins["notifier"], publish("profile.events", "account_registered"))
    assert refused(logins["gateway"], publish("", "rpc-ledger"))
    # another service's queues: neither declared, nor read, nor bound to its requests
    assert refused(logins["notifier"], lambda channel: Queue("rpc-ledger", durable=True)(channel).declare())
    assert refused(logins["orders"], lambda channel: channel.basic_get("rpc-ledger"))
    own = f"rpc.reply-profile-{uuid.uuid4()}"

    def listen_to_the_ledgers_requests(channel):
        Queue(own, auto_delete=True)(channel).declare()
        channel.queue_bind(own, exchange=rpc, routing_key="ledger.*")
    assert refused(logins["profile"], listen_to_the_ledgers_requests)
    # exchanges are not the callers' to make
    assert refused(logins["support_desk"], lambda channel: Exchange("support.events", type="topic")(channel).declare())


def test_the_gateway_hears_profiles_session_events_on_a_queue_of_its_own_and_nothing_else(logins):
    """Each gateway replica binds its own queue to ``session_access_changed``; profile's other events
    (a reset's token among them) are not the gateway's to read."""
    events = Exchange("profile.events", type="topic", durable=True)
    with channel_of(logins["profile"]) as channel:
        events(channel).declare()

    def listen(event_type: str):
        name = f"evt-profile-{event_type}--gateway.session_access_changed-{uuid.uuid4().hex}"
        return lambda channel: Queue(name, exchange=events, routing_key=event_type, durable=True,
                                     auto_delete=True, exclusive=True)(channel).declare()
    assert not refused(logins["gateway"], listen("session_access_changed"))
    assert refused(logins["gateway"], listen("password_reset_requested"))
    assert refused(logins["gateway"], publish("profile.events", "session_access_changed"))
    assert refused(logins["orders"], listen("session_access_changed"))
