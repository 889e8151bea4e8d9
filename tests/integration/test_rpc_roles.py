"""Every RPC method answers only its roles: the services' own check, on a real broker.

The vhost here leaves out the broker's topic permissions (its second layer, tested in
test_bus_permissions.py), so that every refusal below is the service's: the five services run
in-process, each logged in as itself, and each caller logs in as its role, as ``guest``, or sends
no ``user_id`` at all.
"""
from __future__ import annotations

import time
import uuid
from urllib.parse import quote

import pyotp
import pytest
import requests
from kombu import Connection, Producer
from nameko.standalone.rpc import ClusterRpcProxy as UnsignedClusterRpcProxy
from nameko.exceptions import IncorrectSignature
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from deploy.bus import rpc_methods
from deploy.ports import free_port
from services.common.errors import DomainError
from services.common.roles import ROLES
from services.common.rpc import ClusterRpcProxy
from services.ledger.documents.service import LedgerDocumentsService
from services.ledger.service import LedgerService
from services.notifier.service import NotifierService
from services.orders.service import OrdersService
from services.profile.service import ProfileService
from services.verification.service import VerificationService
from tests.support import RABBIT_API, RABBIT_AUTH, rabbit_vhost, role_uri

PASSWORD = "a long and unusual passphrase 7"


@pytest.fixture
def amqp_uri():
    """A vhost with the roles' permissions but not their topic permissions: the services decide."""
    with rabbit_vhost(topic_permissions=False) as uri:
        yield uri


@pytest.fixture
def services(run_service):
    # No mail relay listens on the port the notifier is given: nothing here is mailed anywhere.
    for service in (ProfileService, LedgerService, LedgerDocumentsService, OrdersService, NotifierService,
                    VerificationService):
        run_service(service, ORDERS_TICK_SECONDS=3600, SMTP_HOST="127.0.0.1", SMTP_PORT=free_port())


@pytest.fixture
def guest(amqp_uri):
    """Anything that can reach the broker: RabbitMQ's own guest, signing as itself."""
    with ClusterRpcProxy({"AMQP_URI": amqp_uri, "serializer": "json"}, timeout=10) as client:
        yield client


def answer(call, *args):
    """"forbidden", or "answered" when the call got through to the method (which may refuse it)."""
    try:
        call(*args)
    except DomainError as refusal:
        return "forbidden" if refusal.error_code == "forbidden" else "answered"
    except IncorrectSignature:
        pass   # past the role check: the method itself found no arguments
    return "answered"


def test_every_method_of_every_service_refuses_every_caller_outside_its_roles(services, rpc_as, amqp_uri, guest):
    methods = rpc_methods()
    assert len(methods) > 60 and all(methods.values())
    clients = {role: rpc_as(role) for role in ROLES}
    with UnsignedClusterRpcProxy({"AMQP_URI": amqp_uri, "serializer": "json"}, timeout=10) as unsigned:
        wrong = []
        for method, roles in sorted(methods.items()):
            service, name = method.split(".")
            # Called without arguments: a caller with a role gets as far as the method's signature.
            for role in sorted(ROLES):
                expected = "answered" if role in roles else "forbidden"
                if answer(getattr(clients[role][service], name)) != expected:
                    wrong.append((method, role))
            for caller, client in (("guest", guest), ("no user_id", unsigned)):
                if answer(getattr(client[service], name)) != "forbidden":
                    wrong.append((method, caller))
    assert wrong == []


def register(gateway, **overrides) -> dict:
    login = f"c{uuid.uuid4().hex[:12]}"
    return gateway.profile.register({
        "login": login, "password": PASSWORD, "email": f"{login}@example.com", "first_name": "Anna",
        "last_name": "Nowak", "city": "Warszawa", "address": "ul. Prosta 1", "country": "PL",
        "postal_address": {"line1": "ul. Prosta 1", "city": "Warszawa", "postcode": "00-001", "country": "PL"},
        **overrides})


def eur(amount: str) -> dict:
    return {"amount": amount, "currency": "EUR"}


def test_the_probe_s_attacks_from_a_login_with_no_role_are_refused_and_change_nothing(services, rpc_as, guest):
    gateway, staff = rpc_as("gateway"), rpc_as("operator")
    anna = register(gateway)
    account = anna["id"]
    attacks = {
        "credit 1,000.00": lambda: guest.ledger.adjust(account, eur("1000.00"), "k-1", "bonus", "nobody"),
        "set a credit limit": lambda: guest.ledger.set_credit_limit(account, eur("500.00"), "nobody"),
        "charge without an order": lambda: guest.ledger.charge(account, eur("9.90"), "k-2", "none", "VPS S"),
        "credit a payment": lambda: guest.ledger.credit_payment(account, eur("50.00"), "k-3", "P-1"),
        "change the country": lambda: guest.profile.change_country(account, "DE", "T-1"),
        "approve a company": lambda: guest.profile.review_company(account, True, "nobody"),
        "freeze the account": lambda: guest.profile.freeze(account),
        "unfreeze the account": lambda: guest.profile.unfreeze(account, "nobody"),
        "turn on 2FA for someone else": lambda: guest.profile.start_two_factor(account),
        "send a support reply": lambda: guest.notifier.notify(
            account, "support_reply", {"subject": "Your server", "text": "Pay at https://evil.example"}, "k-4"),
        "read the profile": lambda: guest.profile.get(account),
    }
    outcomes = {}
    for attack, call in attacks.items():
        with pytest.raises(DomainError) as refused:
            call()
        outcomes[attack] = refused.value.error_code
    assert set(outcomes.values()) == {"forbidden"}, outcomes
    assert staff.ledger.get_balance(account) == eur("0.00")
    assert staff.ledger.list_transactions(account)["items"] == []
    assert staff.profile.get(account)["country"] == "PL"
    assert staff.profile.security_overview(account)["two_factor_enabled"] is False
    assert staff.profile.security_events(account)["items"] == []
    assert "support_reply" not in {mail["kind"] for mail in staff.notifier.list_sent(account)["items"]}


def test_the_roles_that_are_not_the_customer_s_cannot_turn_on_2fa_for_someone_else(services, rpc_as):
    gateway = rpc_as("gateway")
    anna = register(gateway)
    for role in ("operator", "support_desk", "payments", "orders", "ledger", "notifier", "verification"):
        with pytest.raises(DomainError) as refused:
            rpc_as(role).profile.start_two_factor(anna["id"])
        assert refused.value.error_code == "forbidden", role
    # The gateway, which serves the customer, may: the customer's own enrolment.
    secret = gateway.profile.start_two_factor(anna["id"], PASSWORD)["secret"]
    gateway.profile.confirm_two_factor(anna["id"], pyotp.TOTP(secret).now())
    assert rpc_as("operator").profile.security_overview(anna["id"])["two_factor_enabled"] is True


def test_the_gateway_cannot_mail_as_support_or_move_money_outside_an_order(services, rpc_as):
    gateway = rpc_as("gateway")
    account = register(gateway)["id"]
    for call in (lambda: gateway.notifier.notify(account, "support_reply", {"subject": "s", "text": "t"}, "k"),
                 lambda: gateway.ledger.credit_payment(account, eur("10.00"), "k", "P"),
                 lambda: gateway.ledger.charge(account, eur("1.00"), "k", "order", "VPS"),
                 lambda: gateway.ledger.adjust(account, eur("10.00"), "k", "why", "me"),
                 lambda: gateway.orders.get_order(str(uuid.uuid4()))):
        with pytest.raises(DomainError) as refused:
            call()
        assert refused.value.error_code == "forbidden"
    assert "support_reply" not in {mail["kind"] for mail in rpc_as("operator").notifier.list_sent(account)["items"]}
    assert rpc_as("operator").ledger.get_balance(account) == eur("0.00")


def test_operator_actions_keep_the_broker_login_beside_the_operator_s_name(services, rpc_as, service_databases):
    gateway, staff = rpc_as("gateway"), rpc_as("operator")
    anna = register(gateway, profile_type="company", company_name="Nowak sp. z o.o.", vat_id="PL5260250274")
    account = anna["id"]
    rpc_as("payments").ledger.credit_payment(account, eur("10.00"), f"bank-{account}", "2026/12/0001")
    staff.ledger.credit_payment(account, eur("5.00"), f"matched-{account}", "transfer matched by hand")
    staff.ledger.adjust(account, eur("25.00"), f"goodwill-{account}", "goodwill for the outage", "support:ola")
    staff.ledger.set_credit_limit(account, eur("10.00"), "support:jan")
    staff.profile.change_country(account, "DE", "TICKET-42")
    staff.profile.review_company(account, False, "support:jan")
    gateway.profile.freeze(account)
    staff.profile.unfreeze(account, "support:ola")

    ledger = create_engine(service_databases["ledger"], poolclass=NullPool)
    with ledger.connect() as connection:
        journal = connection.execute(text(
            "SELECT kind, operator, caller FROM transactions WHERE account_id = :a ORDER BY seq"),
            {"a": account}).all()
        limit = connection.execute(text(
            "SELECT credit_limit_operator, credit_limit_caller FROM balances WHERE account_id = :a"),
            {"a": account}).one()
    ledger.dispose()
    assert [tuple(row) for row in journal] == [("payment", None, "payments"), ("payment", None, "operator"),
                                               ("adjustment", "support:ola", "operator")]
    assert tuple(limit) == ("support:jan", "operator")

    timeline = {event["kind"]: event["details"] for event in staff.profile.security_events(account)["items"]}
    assert timeline["account_unfrozen"] == {"operator": "support:ola", "caller": "operator"}
    assert timeline["country_changed"] == {"from": "PL", "to": "DE", "ticket_id": "TICKET-42", "caller": "operator"}
    assert timeline["company_reviewed"] == {"approved": False, "operator": "support:jan", "caller": "operator"}


def test_a_request_whose_reply_could_not_be_sent_is_dropped_and_blocks_nothing(services, rpc_as, amqp_uri):
    # A reply to "ledger.adjust" would be refused by the broker (services answer on reply keys
    # only) and leave the request unacked, holding a worker's place, for ever.
    with Connection(role_uri(amqp_uri, "gateway"), transport_options={"confirm_publish": True}) as connection:
        Producer(connection.channel()).publish(
            {"args": ["acct-1"], "kwargs": {}}, exchange="nameko-rpc", routing_key="profile.get",
            reply_to="ledger.adjust", correlation_id="c-1", user_id="gateway", serializer="json")
    vhost = quote(amqp_uri.rsplit("/", 1)[1], safe="")
    deadline = time.monotonic() + 10
    while True:
        queue = requests.get(f"{RABBIT_API}/queues/{vhost}/rpc-profile", auth=RABBIT_AUTH, timeout=5).json()
        if queue.get("messages_unacknowledged") == 0 and queue.get("messages_ready") == 0 or \
                time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (queue["messages_ready"], queue["messages_unacknowledged"]) == (0, 0)
    with pytest.raises(DomainError) as answer:
        rpc_as("gateway").profile.get(str(uuid.uuid4()))
    assert answer.value.error_code == "not_found"   # the service answers as before
