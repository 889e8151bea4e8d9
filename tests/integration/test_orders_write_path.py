"""A paid order's write path (issue 16, items 1, 2, 6, 9): what it costs and what it no longer waits for.

The orders application in this process on a real database (SQLite, or PostgreSQL with
TEST_DATABASE=postgres), the shared ledger and profile stand-ins called in-process
(tests/fakes.py), as in test_orders_interrupted.py.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from services.common.errors import DomainError, ServiceUnavailable
from services.common.locks import is_postgres
from services.common.money import Money
from services.orders.models import IpAssignment, Order, OrderCharge, OrderPeriod
from tests.fakes import profile_event
from tests.integration.test_orders_interrupted import VPS, events_about, published, world  # noqa: F401 (fixture)
from tests.support import statements_executed, statements_sent, transactions_begun


def test_a_paid_order_takes_three_transactions_one_ledger_call_and_no_call_to_profile(world):
    orders, ledger, clock = world
    profile = orders.parts.profile
    account = str(uuid.uuid4())
    orders.on_profile_changed(profile_event(account))
    ledger.fund(account, "50.00")
    calls = []
    charge_order = ledger.charge_order
    ledger.charge_order = lambda *args: calls.append(args[2]) or charge_order(*args)
    with transactions_begun(orders.uow.engine) as begun:
        keyed = orders.place_order(account, VPS, "new-1")
    assert len(begun) == 3 and keyed["status"] == "active"
    with transactions_begun(orders.uow.engine) as begun:
        plain = orders.place_order(account, VPS)
    assert len(begun) == 3 and plain["status"] == "active"
    assert calls == [f"order:{keyed['id']}:activate", f"order:{plain['id']}:activate"]
    assert profile.calls == 0
    with transactions_begun(orders.uow.engine) as begun:
        assert orders.place_order(account, VPS, "new-1") == keyed  # the replay: the answer kept once
    assert len(begun) == 1


def test_an_order_s_placement_and_activation_are_each_one_statement_on_postgresql_built_once(world):
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    orders.on_profile_changed(profile_event(account))
    ledger.fund(account, "50.00")
    placed, built = [], []
    for key in ("new-1", "new-2"):
        with statements_sent(orders.uow.engine) as sent, statements_executed(orders.uow.engine) as executed:
            placed.append(orders.place_order(account, VPS, key))
        built.append([statement for statement in executed if statement_name(statement) in ("held", "paid")])
    sent = [" ".join(statement.split()[:3]) for statement in sent]
    if is_postgres(orders.uow.engine):
        assert sent == [
            "INSERT INTO IDEMPOTENCY_KEYS", "SELECT ORDERS.ID", "SELECT PROFILE_COPIES.PROFILE",  # claimed, read
            "DELETE FROM IP_FREE_ADDRESSES",   # an address taken
            "WITH HELD AS",                    # the order, its address held and its history's entry
            "SELECT ORDERS.ID AS",             # after the ledger's charge: the order locked
            "WITH PAID AS",                    # the row, its period, its charge, its history, its events
            "UPDATE IDEMPOTENCY_KEYS SET"], sent
        assert [len(statements) for statements in built] == [2, 2] and all(
            mine is first for mine, first in zip(*built)), built   # built once
    else:
        activation = sent[sent.index("SELECT ORDERS.ID AS") + 1:]
        assert sorted(activation) == [
            "INSERT INTO ORDER_CHARGES", "INSERT INTO ORDER_EVENTS", "INSERT INTO ORDER_PERIODS", "INSERT INTO OUTBOX",
            "UPDATE IDEMPOTENCY_KEYS SET", "UPDATE ORDERS SET"], sent
    order = placed[-1]
    assert order["status"] == "active" and order["ip_address"] and orders.place_order(account, VPS, "new-2") == order
    with orders.uow.transaction() as session:
        row = session.get(Order, order["id"])
        assert (row.status, row.ip_address, row.pending_operation, row.busy_until, row.busy_with) == (
            "active", order["ip_address"], None, None, None)
        periods = session.scalars(select(OrderPeriod).where(OrderPeriod.order_id == order["id"])).all()
        charge = session.scalars(select(OrderCharge).where(OrderCharge.order_id == order["id"])).one()
        history = [entry["kind"] for entry in orders.parts.repository.events(session, order["id"])]
        held = session.scalars(select(IpAssignment).where(IpAssignment.ip_address == order["ip_address"])).all()
    cost = Money.from_wire(order["cost"]).minor
    assert [(p.starts, p.ends.isoformat(), p.paid_minor) for p in periods] == [
        (clock.today(), order["paid_until"], cost)]
    taken = ledger.keys[account, f"order:{order['id']}:activate"][1]
    assert (charge.transaction_id, charge.amount_minor, charge.refunded_minor, charge.reason) == (
        taken["id"], cost, 0, "activate")
    assert history == ["created", "paid"]
    assert [(a.order_id, a.datacenter) for a in held] == [(order["id"], row.datacenter)]
    assert [o["number"] for o in placed] == [placed[0]["number"], f"ORD-{int(placed[0]['number'][4:]) + 1:06d}"]
    assert published(orders, order["id"]) == ["order_created", "order_activated"]
    assert events_about(orders, order["id"])[0][1]["status"] == "active"   # announced as it is now


def statement_name(statement) -> str | None:
    """The name of a statement's first CTE, if it has one."""
    ctes = getattr(statement, "_independent_ctes", ())
    return ctes[0].name if ctes else None


def test_an_order_the_copy_would_refuse_is_asked_of_profile_before_it_is_refused(world):
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    orders.on_profile_changed(profile_event(account))
    orders.on_profile_changed(profile_event(account, profile_type="company", company_name="Firma",
                                            vat_id="PL1234563218", company_verification="pending",
                                            payments_blocked=True))
    # A late event older than the copy changes nothing.
    orders.on_profile_changed(profile_event(account, at=datetime.now(timezone.utc) - timedelta(minutes=1)))
    ledger.fund(account, "50.00")
    profile = orders.parts.profile
    profile.add(account, profile_type="company", company_name="Firma", vat_id="PL1234563218",
                company_verification="pending", payments_blocked=True)
    with pytest.raises(DomainError) as refused:
        orders.place_order(account, VPS, "new-1")
    assert refused.value.error_code == "payments_blocked"
    assert profile.calls == 1  # a refusal is asked of profile again: the copy may be behind an approval
    profile.accounts[account].update(company_verification="verified", payments_blocked=False)
    assert orders.place_order(account, VPS, "new-1")["status"] == "active"  # approved seconds ago: not refused
    assert profile.calls == 2


def test_an_order_allowed_by_the_copy_asks_profile_nothing(world):
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    orders.on_profile_changed(profile_event(account, postal_address=None))
    orders.on_profile_changed(profile_event(account))  # the address added
    ledger.fund(account, "50.00")
    assert orders.place_order(account, VPS)["status"] == "active" and orders.parts.profile.calls == 0


def test_without_a_copy_profile_is_asked_once_and_its_answer_kept(world):
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    ledger.fund(account, "50.00")
    orders.place_order(account, VPS)
    orders.place_order(account, VPS)
    assert orders.parts.profile.calls == 1


def test_an_order_s_own_charge_does_not_make_orders_look_for_pending_orders(world):
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    with transactions_begun(orders.uow.engine) as begun:
        orders.on_balance_changed({"event_id": str(uuid.uuid4()), "account_id": account, "kind": "charge",
                                   "amount": {"amount": "-9.90", "currency": "EUR"}})
    assert begun == []


def test_a_pending_order_whose_charge_failed_is_paid_by_the_next_payment_without_waiting_for_its_lease(world):
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    ledger.fund(account, "50.00")
    ledger.fail_after_charge = ServiceUnavailable("ledger")  # the money taken, the answer lost
    with pytest.raises(DomainError):
        orders.place_order(account, VPS, "new-1")
    [order] = orders.list_orders(account)["items"]
    assert order["status"] == "pending_payment"
    ledger.fund(account, "100.00")
    orders.on_balance_changed({"event_id": str(uuid.uuid4()), "account_id": account, "kind": "payment",
                               "amount": {"amount": "50.00", "currency": "EUR"}})
    assert orders.get_order(order["id"], account)["status"] == "active"
    assert ledger.charged_keys(account) == [f"order:{order['id']}:activate"]


def test_an_interrupted_order_is_finished_by_the_next_retry_round_not_the_next_lifecycle_tick(world):
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    ledger.fund(account, "50.00")
    ledger.fail_after_charge = ServiceUnavailable("ledger")
    with pytest.raises(DomainError):
        orders.place_order(account, VPS)
    assert orders.finish_interrupted() == 1  # what the service's 5-second timer runs
    [order] = orders.list_orders(account)["items"]
    assert order["status"] == "active" and ledger.balance(account) == "40.10"


def test_a_retry_of_an_order_whose_ledger_call_failed_finishes_it_and_answers_it(world):
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    ledger.fund(account, "50.00")
    ledger.fail_after_charge = ServiceUnavailable("ledger")
    with pytest.raises(DomainError) as unavailable:
        orders.place_order(account, VPS, "new-1")
    assert unavailable.value.error_code == "service_unavailable"
    retry = orders.place_order(account, VPS, "new-1")
    assert retry["status"] == "active" and ledger.charged_keys(account) == [f"order:{retry['id']}:activate"]
    assert orders.place_order(account, VPS, "new-1") == retry


def test_a_retry_while_another_worker_still_holds_the_order_is_in_progress_not_a_conflict(world):
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    ledger.fund(account, "50.00")
    ledger.fail_after_charge = ServiceUnavailable("ledger")
    with pytest.raises(DomainError):
        orders.place_order(account, VPS, "new-1")
    [order] = orders.list_orders(account)["items"]
    with orders.uow.transaction() as session:  # the clock's worker has just taken it over
        session.execute(update(Order).where(Order.id == order["id"])
                        .values(busy_until=clock.now() + timedelta(seconds=30), busy_with="finish_interrupted"))
    with pytest.raises(DomainError) as busy:
        orders.place_order(account, VPS, "new-1")
    assert (busy.value.error_code, busy.value.status) == ("request_in_progress", 409)
    assert busy.value.details["retry_after"] >= 1


def test_a_renewal_charges_in_one_ledger_call_and_writes_its_answer_once(world):
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    orders.on_profile_changed(profile_event(account))
    ledger.fund(account, "50.00")
    order = orders.place_order(account, VPS)
    with statements_sent(orders.uow.engine) as statements, transactions_begun(orders.uow.engine) as begun:
        renewed = orders.renew(account, order["id"], {"period_months": 1}, "renew-1")
    assert renewed["paid_until"] > order["paid_until"]
    assert ledger.charged_keys(account)[-1] == f"order:{order['id']}:renew:1"
    # The key claimed, the lease taken, the operation written, the order read, the renewal written:
    # the answer is kept in the last of them, not again, and no lease is dropped twice.
    assert len(begun) == 5
    assert sum(s.startswith("UPDATE IDEMPOTENCY_KEYS") for s in statements) == 1


def test_a_retried_renewal_whose_ledger_call_failed_is_finished_by_the_retry_not_refused(world):
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    ledger.fund(account, "50.00")
    order = orders.place_order(account, VPS)
    ledger.fail_after_charge = ServiceUnavailable("ledger")
    with pytest.raises(DomainError):
        orders.renew(account, order["id"], {"period_months": 1}, "renew-1")
    with pytest.raises(DomainError) as other:  # another request on the order meanwhile: a real conflict
        orders.renew(account, order["id"], {"period_months": 1}, "renew-2")
    assert other.value.error_code == "conflict"
    retry = orders.renew(account, order["id"], {"period_months": 1}, "renew-1")
    assert retry["paid_until"] > order["paid_until"]
    assert ledger.charged_keys(account) == [f"order:{order['id']}:activate", f"order:{order['id']}:renew:1"]
    assert orders.renew(account, order["id"], {"period_months": 1}, "renew-1") == retry


def test_a_payment_to_an_account_with_nothing_pending_costs_orders_one_statement(world):
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    built = []
    for _ in range(2):
        with statements_sent(orders.uow.engine) as sent, statements_executed(orders.uow.engine) as executed:
            # a read: no BEGIN or COMMIT on PostgreSQL either
            orders.on_balance_changed({"event_id": str(uuid.uuid4()), "account_id": account, "kind": "payment",
                                       "amount": {"amount": "50.00", "currency": "EUR"}})
        assert len(sent) == 1 and sent[0].startswith("SELECT ORDERS.ID"), sent
        built += executed
    assert len(built) == 2 and built[0] is built[1], built   # built once, not for each payment
