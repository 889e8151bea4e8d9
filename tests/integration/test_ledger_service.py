"""The ledger service over real RabbitMQ and a real database, called like other systems call it.

Run on PostgreSQL with ``TEST_DATABASE=postgres`` for the row locks that matter: there the
concurrent tests race real transactions; on SQLite they still pass, one writer at a time.
"""
from __future__ import annotations

import time
import uuid
from contextlib import contextmanager

import pytest
from kombu import Connection, Exchange, Queue
from nameko.standalone.events import event_dispatcher
from sqlalchemy import select

from services.common.database import Database
from services.common.errors import DomainError
from services.ledger.models import Base
from services.ledger.service import LedgerService
from tests.fakes import FakeProfile

pytestmark = pytest.mark.integration

# profile's ``get`` for any account, a Polish individual; ``ghost-*`` accounts do not exist.
PROFILE = FakeProfile(anyone=True, language="pl")


def eur(amount: str) -> dict:
    return {"amount": amount, "currency": "EUR"}


@contextmanager
def ledger_events(amqp_uri):
    """Everything the ledger publishes from now on: ``collect(seconds)`` -> [(type, payload)]."""
    with Connection(amqp_uri) as connection:
        exchange = Exchange("ledger.events", type="topic", durable=True)
        queue = Queue(f"test-ledger-events-{uuid.uuid4().hex[:8]}", exchange=exchange, routing_key="#",
                      durable=False, auto_delete=True)
        bound = queue(connection.channel())
        bound.declare()
        seen = []

        def collect(seconds: float = 3.0, until=None) -> list:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                message = bound.get(no_ack=True)
                if message is None:
                    if until is not None and until(seen):
                        break
                    time.sleep(0.05)
                    continue
                seen.append((message.delivery_info["routing_key"], message.payload))
            return list(seen)
        yield collect


@pytest.fixture
def orders_caller(rpc_as):
    """Charges come from the orders service alone."""
    return rpc_as("orders")


@pytest.fixture
def ledger(run_service):
    run_service(PROFILE.service())
    return run_service(LedgerService, OUTBOX_POLL_SECONDS="0.2")


def outcome(reply):
    try:
        return reply.result()
    except DomainError as error:
        return error.error_code


def test_fifty_concurrent_charges_of_one_euro_spend_ten_euros_exactly_once(ledger, rpc_client, payment_system,
                                                                           orders_caller):
    account = f"acct-{uuid.uuid4()}"
    payment_system.ledger.credit_payment(account, eur("10.00"), "pay", "P-1")
    replies = [orders_caller.ledger.charge.call_async(account, eur("1.00"), f"charge-{n}", f"order-{n}", "VPS S")
               for n in range(50)]
    outcomes = [outcome(reply) for reply in replies]
    charged = [o for o in outcomes if isinstance(o, dict)]
    assert len(charged) == 10
    assert outcomes.count("insufficient_funds") == 40
    assert rpc_client.ledger.get_balance(account) == eur("0.00")
    assert rpc_client.ledger.audit() == []
    numbers = sorted(i["number"] for i in rpc_client.ledger.list_invoices(account)["items"])
    assert numbers == [f"{numbers[0][:4]}/{n:06d}" for n in range(1, 11)]  # refused charges took no number


def test_fifty_concurrent_charges_of_different_customers_get_invoice_numbers_without_gaps(ledger, rpc_client,
                                                                                          payment_system,
                                                                                          orders_caller):
    accounts = [f"acct-{uuid.uuid4()}" for _ in range(50)]
    for account in accounts:
        payment_system.ledger.credit_payment(account, eur("5.00"), "pay", "P")
    replies = [orders_caller.ledger.charge.call_async(account, eur("5.00"), "charge", "order", "VPS S")
               for account in accounts]
    invoice_ids = [reply.result()["invoice_id"] for reply in replies]
    numbers = sorted(rpc_client.ledger.get_invoice(invoice_id)["number"] for invoice_id in invoice_ids)
    year = numbers[0][:4]
    assert numbers == [f"{year}/{n:06d}" for n in range(1, 51)]


def test_a_replayed_charge_over_rpc_returns_the_first_result(ledger, rpc_client, payment_system, orders_caller):
    account = f"acct-{uuid.uuid4()}"
    payment_system.ledger.credit_payment(account, eur("10.00"), "pay", "P-1")
    first = orders_caller.ledger.charge(account, eur("4.00"), "c-1", "order-1", "VPS S")
    replies = [orders_caller.ledger.charge.call_async(account, eur("4.00"), "c-1", "order-1", "VPS S") for _ in range(10)]
    assert all(reply.result() == first for reply in replies)
    assert rpc_client.ledger.get_balance(account) == eur("6.00")
    with pytest.raises(DomainError) as refused:
        orders_caller.ledger.charge(account, eur("5.00"), "c-1", "order-1", "VPS S")
    assert refused.value.args[0] == "idempotency_conflict"


def test_refusals_arrive_as_remote_errors_with_the_api_code(ledger, rpc_client, payment_system):
    with pytest.raises(DomainError) as refused:
        payment_system.ledger.credit_payment("ghost-1", eur("1.00"), "k", "P")
    assert refused.value.args[0] == "not_found"
    with pytest.raises(DomainError) as refused:
        payment_system.ledger.credit_payment("acct-x", {"amount": 1.0, "currency": "EUR"}, "k", "P")
    assert refused.value.args[0] == "validation_error"
    assert rpc_client.ledger.get_balance("acct-never") == eur("0.00")


def test_an_event_committed_while_the_relay_is_down_is_published_when_it_comes_back(run_service, amqp_uri,
                                                                                    payment_system):
    run_service(PROFILE.service())
    first = run_service(LedgerService, OUTBOX_POLL_SECONDS="0.2")
    database = next(d for d in first.extensions if isinstance(d, Database))
    database.relay.stop()
    time.sleep(0.5)
    account = f"acct-{uuid.uuid4()}"
    with ledger_events(amqp_uri) as collect:
        payment = payment_system.ledger.credit_payment(account, eur("10.00"), "pay", "P-1")
        assert collect(1.5) == []
        with database.unit_of_work().transaction() as session:
            outbox = Base.metadata.tables["outbox"]
            pending = session.execute(select(outbox.c.event_type).where(outbox.c.published_at.is_(None))).scalars().all()
        assert sorted(pending) == ["balance_changed", "payment_received"]
        first.stop()  # the service dies with the events committed and unpublished
        run_service(LedgerService, OUTBOX_POLL_SECONDS="0.2")
        events = collect(10, until=lambda seen: len(seen) >= 2)
    kinds = sorted(kind for kind, _ in events)
    assert kinds == ["balance_changed", "payment_received"]
    assert all(payload["transaction_id"] == payment["id"] for _, payload in events)


def test_balance_low_arrives_once_per_crossing_of_the_threshold_profile_sent(ledger, amqp_uri, payment_system,
                                                                             orders_caller):
    account = f"acct-{uuid.uuid4()}"
    payment_system.ledger.credit_payment(account, eur("20.00"), "pay", "P-1")
    dispatch = event_dispatcher({"AMQP_URI": amqp_uri, "serializer": "json"})
    dispatch("profile", "notification_settings_changed", {
        "event_id": str(uuid.uuid4()), "occurred_at": "2026-01-01T00:00:00Z", "account_id": account,
        "newsletter": False, "low_balance_threshold": eur("10.00"),
        "emails": {"invoices": None, "support": None, "complaints": None}})
    time.sleep(1.0)  # the ledger takes its copy of the threshold
    with ledger_events(amqp_uri) as collect:
        for n, amount in enumerate(["5.00", "6.00", "1.00", "1.00"]):
            orders_caller.ledger.charge(account, eur(amount), f"c-{n}", "order", "VPS S")
        events = collect(4, until=lambda seen: sum(kind == "balance_changed" for kind, _ in seen) >= 4)
    lows = [payload for kind, payload in events if kind == "balance_low"]
    assert [(low["balance"], low["threshold"]) for low in lows] == [(eur("9.00"), eur("10.00"))]
