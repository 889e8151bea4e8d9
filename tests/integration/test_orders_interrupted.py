"""An order operation interrupted between the ledger's charge and the order's write is finished, once.

The orders application runs in this process against a real database (migrated; PostgreSQL with
TEST_DATABASE=postgres) and a ledger stand-in that keeps idempotency keys like the real one
(same key and arguments: the first result). The stand-in can take the money and then lose the
answer (the ledger killed after its commit) or the worker can die right after the charge; the
lifecycle timer's tick must then complete the operation with the money already taken, and a
retry of the request with its Idempotency-Key must get that answer and move nothing again.
The ledger and profile stand-ins are the shared ones (tests/fakes.py), called in-process.
"""
from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from services.common.clock import Clock
from services.common.database import UnitOfWork, make_engine
from services.common.errors import DomainError, ServiceUnavailable
from services.orders.application import Orders
from services.orders.models import Base
from services.orders.service import CatalogueProvider
from tests.fakes import FakeLedger, FakeProfile

VPS = {"plan_id": "vps-s", "period_months": 1, "fields": {"hostname": "web1.example.com", "os_template": "debian-12"}}


class WorkerKilled(BaseException):
    """What a kill -9 looks like from inside: nothing after it runs, no handler catches it."""


class MovableClock(Clock):
    def __init__(self):
        super().__init__()
        self.seconds = 0.0

    def offset(self) -> float:
        return self.seconds


@pytest.fixture
def world(service_databases, monkeypatch, tmp_path):
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    url = service_databases["orders"]
    engine = make_engine(url, green=False)
    provider = CatalogueProvider()
    provider.setup()
    clock, ledger = MovableClock(), FakeLedger()
    orders = Orders(UnitOfWork(engine, "orders", Base.metadata), provider.catalogue, ledger, FakeProfile(anyone=True),
                    clock)
    orders.sync_plans()
    yield orders, ledger, clock
    engine.dispose()


def events_about(orders: Orders, order_id: str) -> list[tuple[str, dict]]:
    """(type, payload) of the events the outbox holds about ``order_id``, in order."""
    outbox = Base.metadata.tables["outbox"]
    with orders.uow.transaction() as session:
        rows = session.execute(select(outbox.c.event_type, outbox.c.payload).order_by(outbox.c.id)).all()
    return [(kind, payload) for kind, payload in ((kind, json.loads(text)) for kind, text in rows)
            if payload.get("order_id") == order_id]


def published(orders: Orders, order_id: str) -> list[str]:
    return [kind for kind, _ in events_about(orders, order_id)]


def test_a_charge_whose_answer_was_lost_is_completed_by_the_next_tick_and_not_charged_again(world):
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    ledger.fund(account, "50.00")
    order = orders.place_order(account, VPS, "new-1")
    ledger.fail_after_charge = ServiceUnavailable("ledger")
    with pytest.raises(DomainError) as refused:
        orders.renew(account, order["id"], {"period_months": 1}, "renew-1")
    assert refused.value.error_code == "service_unavailable"
    assert orders.get_order(order["id"])["paid_until"] == order["paid_until"]  # not written yet

    clock.seconds += 1
    assert orders.tick()["finished"] == 1
    renewed = orders.get_order(order["id"], account)
    assert renewed["paid_until"] > order["paid_until"]
    assert [e["kind"] for e in renewed["events"]] == ["created", "paid", "renewed"]
    assert ledger.charged_keys(account) == [f"order:{order['id']}:activate", f"order:{order['id']}:renew:1"]

    retry = orders.renew(account, order["id"], {"period_months": 1}, "renew-1")
    assert retry["paid_until"] == renewed["paid_until"]
    assert len(ledger.charged_keys(account)) == 2 and ledger.balance(account) == "30.20"


def test_a_worker_killed_after_the_charge_leaves_the_order_to_the_timer_once_its_lease_expires(world):
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    ledger.fund(account, "50.00")
    ledger.fail_after_charge = WorkerKilled()
    with pytest.raises(WorkerKilled):
        orders.place_order(account, VPS, "new-1")
    [order] = orders.list_orders(account)["items"]
    assert order["status"] == "pending_payment"
    assert orders.tick()["finished"] == 0  # the lease still runs: the worker might be alive and slow
    with pytest.raises(DomainError) as busy:
        orders.place_order(account, VPS, "new-1")
    # The customer's retry is told its first request is still being carried out, never a refusal.
    assert (busy.value.error_code, busy.value.status) == ("request_in_progress", 409)
    assert busy.value.details["retry_after"] >= 1

    clock.seconds += timedelta(minutes=2).total_seconds()
    assert orders.tick()["finished"] == 1
    active = orders.get_order(order["id"], account)
    assert active["status"] == "active" and active["ip_address"] is not None
    assert orders.place_order(account, VPS, "new-1")["status"] == "active"  # the retry sees the same order
    assert ledger.charged_keys(account) == [f"order:{order['id']}:activate"]
    # The customer hears of the order the timer finished: received, then active, once each.
    assert published(orders, order["id"]) == ["order_created", "order_activated"]
    assert ledger.balance(account) == "40.10"


def test_a_retry_while_the_first_request_with_its_key_still_runs_is_told_when_to_ask_again(world):
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    ledger.fund(account, "50.00")
    charge, meanwhile = ledger.charge_order, []

    def charge_while_the_customer_retries(*args, **kwargs):
        with pytest.raises(DomainError) as busy:
            orders.place_order(account, VPS, "new-1")
        meanwhile.append(busy.value)
        return charge(*args, **kwargs)
    ledger.charge_order = charge_while_the_customer_retries
    order = orders.place_order(account, VPS, "new-1")
    ledger.charge_order = charge
    [busy] = meanwhile
    assert (busy.error_code, busy.status) == ("request_in_progress", 409) and busy.details["retry_after"] >= 1
    assert order["status"] == "active"
    assert orders.place_order(account, VPS, "new-1") == order  # once done, the retry gets the first answer
    assert ledger.charged_keys(account) == [f"order:{order['id']}:activate"]


def test_an_interrupted_operation_the_ledger_then_refuses_is_undone(world):
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    ledger.fund(account, "0.00")
    order = orders.place_order(account, VPS, "new-1")
    assert order["status"] == "pending_payment"
    # The worker died before its ledger call: the charge is refused when the timer tries it.
    operation = {"kind": "activate", "today": clock.today().isoformat(), "charged": order["cost"], "reply_to": None,
                 "charge": {"amount": order["cost"], "key": f"order:{order['id']}:activate",
                            "description": "VPS S, 1 months", "lines": None}}
    from sqlalchemy import update
    from services.orders.models import Order
    with orders.uow.transaction() as session:
        session.execute(update(Order).where(Order.id == order["id"])
                        .values(pending_operation=operation, busy_until=clock.now() - timedelta(seconds=1)))
    assert orders.tick()["finished"] == 0
    left = orders.get_order(order["id"], account)
    assert left["status"] == "pending_payment" and ledger.charged_keys(account) == []
    ledger.fund(account, "9.90")
    assert orders.pay_pending(account) == 1  # nothing is left claimed: the order can still be paid


def test_a_new_order_is_announced_once_with_its_status_paid_or_not(world):
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    ledger.fund(account, "50.00")
    paid = orders.place_order(account, VPS, "new-1")
    assert published(orders, paid["id"]) == ["order_created", "order_activated"]
    ledger.fund(account, "0.00")
    waiting = orders.place_order(account, VPS, "new-2")
    assert waiting["status"] == "pending_payment"
    assert published(orders, waiting["id"]) == ["order_created"]
    statuses = [payload["status"] for order in (paid, waiting) for kind, payload in events_about(orders, order["id"])
                if kind == "order_created"]
    assert statuses == ["active", "pending_payment"]


def test_a_late_background_payment_takes_no_lease_on_an_order_already_active(world):
    # pay_pending lists the account's pending orders, then activates them one by one. An order
    # placed meanwhile can be on its list and already active by its turn: taking that order's
    # lease, even briefly, would answer the customer's next step (cancel, renew) with a 409.
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    ledger.fund(account, "50.00")
    order = orders.place_order(account, VPS, "new-1")
    assert order["status"] == "active"
    leases = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE ORDERS") and "busy_until" in statement:
            leases.append(statement)
    event.listen(orders.uow.engine, "before_cursor_execute", record)
    try:
        assert orders.placement.activate(order["id"]) is False   # pay_pending's step for an order it saw pending
    finally:
        event.remove(orders.uow.engine, "before_cursor_execute", record)
    assert leases == []
