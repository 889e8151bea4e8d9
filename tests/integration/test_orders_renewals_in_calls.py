"""The clock's automatic renewals in calls of whole accounts: one ledger call, two transactions of orders.

The orders application in this process against a real database (PostgreSQL with
TEST_DATABASE=postgres) and the shared ledger stand-in, which keeps idempotency keys like the
real one and can take the money and lose the answer (``fail_after_charge``). On the real
ledger: tests/integration/test_ledger_charge_order.py; the loop without a database:
tests/unit/test_orders_clock.py.
"""
from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from nameko.exceptions import MethodNotFound
from sqlalchemy import select

from services.common.errors import ServiceUnavailable
from services.orders.models import Order
from tests.integration.test_orders_interrupted import VPS, world  # noqa: F401 (a fixture)
from tests.support import transactions_begun

pytestmark = pytest.mark.integration


def due_for_renewal(orders, ledger, clock, funds: list[str], each: int = 2) -> list[tuple[str, list[dict]]]:
    """Accounts with these balances after ``each`` auto-renewed orders of 9.90, the clock on their last paid day."""
    placed = []
    for money in funds:
        account = str(uuid.uuid4())
        ledger.fund(account, str(9.90 * each))
        mine = [orders.place_order(account, {**VPS, "auto_renew": True}, None) for _ in range(each)]
        ledger.fund(account, money)
        placed.append((account, mine))
    paid_until = date.fromisoformat(placed[0][1][0]["paid_until"])
    clock.seconds += timedelta(days=(paid_until - clock.today()).days - 1).total_seconds()
    return placed


def renewals_of(orders, order_id: str) -> int:
    return sum(1 for e in orders.get_order(order_id)["events"] if e["kind"] == "renewed")


def calls(ledger, monkeypatch) -> dict[str, list]:
    """The ledger's charge calls from now on, by method."""
    made = {"charge_orders": [], "charge_order": []}
    for name in made:
        real = getattr(ledger, name)

        def counted(*args, _name=name, _real=real, **kwargs):
            made[_name].append(args or kwargs)
            return _real(*args, **kwargs)
        monkeypatch.setattr(ledger, name, counted)
    return made


def test_due_renewals_are_charged_in_one_call_and_written_in_two_transactions(world, monkeypatch):
    orders, ledger, clock = world
    placed = due_for_renewal(orders, ledger, clock, ["19.80", "19.80", "9.90", "19.80"])   # the third pays one
    made = calls(ledger, monkeypatch)
    with transactions_begun(orders.uow.engine) as begun:
        result = orders.tick()
    # the interrupted operations looked for, the batch, the renewals written, the renewals finished
    assert result["renewed"] == 7 and len(begun) == 4
    assert [len(call[0]) for call in made["charge_orders"]] == [8] and made["charge_order"] == []
    short = placed[2][1][1]["id"]
    assert [[renewals_of(orders, order["id"]) for order in mine] for _, mine in placed] == [[1, 1], [1, 1], [1, 0], [1, 1]]
    assert [ledger.balance(account) for account, _ in placed] == ["0.00", "0.00", "0.00", "0.00"]
    # the refused one is free at once: no operation left on it, no lease; its customer renews it by hand
    with orders.uow.transaction() as session:
        row = session.scalar(select(Order).where(Order.id == short))
        assert row.pending_operation is None and row.busy_until is None
    ledger.fund(placed[2][0], "9.90")
    assert orders.renew(placed[2][0], short, {"period_months": 1}, "by-hand")["status"] == "active"
    assert orders.tick()["renewed"] == 0   # once a day


def test_renewals_whose_call_lost_its_answer_are_finished_by_the_next_tick_and_charged_once(world, monkeypatch):
    orders, ledger, clock = world
    placed = due_for_renewal(orders, ledger, clock, ["9.90", "9.90"])
    ledger.fail_after_charge = ServiceUnavailable("ledger")   # charged, then the answer lost
    assert orders.tick()["renewed"] == 0
    every = [order["id"] for _, mine in placed for order in mine]
    assert [renewals_of(orders, order_id) for order_id in every] == [0, 0, 0, 0]
    made = calls(ledger, monkeypatch)
    # each alone, from its written operation: the first charge answered, the second refused again
    assert orders.tick()["finished"] == 2
    assert [renewals_of(orders, order_id) for order_id in every] == [1, 0, 1, 0]
    assert len(made["charge_order"]) == 4 and made["charge_orders"] == []
    for account, mine in placed:
        assert ledger.balance(account) == "0.00"
        assert ledger.charged_keys(account) == [f"order:{mine[0]['id']}:activate", f"order:{mine[1]['id']}:activate",
                                                f"order:{mine[0]['id']}:renew:1"]


def test_a_ledger_without_the_call_renews_them_one_by_one(world, monkeypatch):
    orders, ledger, clock = world
    placed = due_for_renewal(orders, ledger, clock, ["19.80"])

    def older_ledger(charges):
        raise MethodNotFound("charge_orders")
    monkeypatch.setattr(ledger, "charge_orders", older_ledger)
    made = calls(ledger, monkeypatch)
    assert orders.tick()["renewed"] == 2
    assert len(made["charge_order"]) == 2 and ledger.balance(placed[0][0]) == "0.00"


def test_an_order_whose_auto_renew_was_switched_off_since_the_batch_is_not_renewed(world):
    orders, ledger, clock = world
    (account, mine), = due_for_renewal(orders, ledger, clock, ["19.80"])
    orders.update_order(account, mine[0]["id"], {"auto_renew": False})
    assert orders.lifecycle.renewal.renew_many([(order["id"], 1) for order in mine]) == 1
    assert [renewals_of(orders, order["id"]) for order in mine] == [0, 1] and ledger.balance(account) == "9.90"


def test_orders_listed_by_the_batch_of_a_clock_that_died_are_renewed_by_the_next_tick(world):
    orders, ledger, clock = world
    (account, mine), = due_for_renewal(orders, ledger, clock, ["19.80"])
    with orders.uow.transaction() as session:   # the batch committed, then the process was killed
        batch = orders.lifecycle.advance_batch(session, None, clock.today(), clock.now())
    assert [order_id for _, order_id, _ in batch.due] == [order["id"] for order in mine]
    assert orders.tick()["renewed"] == 2 and ledger.balance(account) == "0.00"


def test_orders_listed_twice_by_two_replicas_clocks_are_renewed_once(world):
    orders, ledger, clock = world
    (account, mine), = due_for_renewal(orders, ledger, clock, ["100.00"])
    due = [(order["id"], 1) for order in mine]
    assert orders.lifecycle.renewal.renew_many(due) == 2
    assert orders.lifecycle.renewal.renew_many(due) == 0   # tried today already: and due no more
    assert [renewals_of(orders, order["id"]) for order in mine] == [1, 1] and ledger.balance(account) == "80.20"


def test_a_tick_reads_only_the_orders_it_may_have_something_to_do_for(world):
    """Active orders paid for more than a week ahead are not read; each is read again from the day
    of its first reminder (a cancelled one too, to be closed at its end), an unpaid one every tick."""
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    ledger.fund(account, "29.70")
    paid, renewing, cancelled = (orders.place_order(account, {**VPS, "auto_renew": auto}, None)
                                 for auto in (False, True, False))
    orders.cancel(account, cancelled["id"], {"when": "end_of_period"}, "cancel-at-end")
    unpaid = orders.place_order(account, VPS, None)   # the balance is spent: pending payment

    def read_by_a_tick() -> int:
        """How many orders a tick now would read; what it would do with them is undone."""
        with orders.uow.transaction() as session:
            read = orders.lifecycle.advance_batch(session, None, clock.today(), clock.now()).read
            session.rollback()
        return read

    assert read_by_a_tick() == 1   # the unpaid one
    paid_until = date.fromisoformat(paid["paid_until"])
    clock.seconds += timedelta(days=(paid_until - clock.today()).days - 8).total_seconds()
    assert read_by_a_tick() == 1 and orders.tick()["moved"] == 1   # the unpaid one: a week unpaid, cancelled
    assert orders.get_order(unpaid["id"], account)["status"] == "cancelled"
    assert read_by_a_tick() == 0
    clock.seconds += timedelta(days=1).total_seconds()   # seven days left: the first reminder
    assert read_by_a_tick() == 3
    assert orders.tick()["reminded"] == 2   # the order cancelled at its end gets none
    ledger.fund(account, "9.90")
    clock.seconds += timedelta(days=6).total_seconds()   # the last paid day: the automatic renewal
    assert orders.tick()["renewed"] == 1
    clock.seconds += timedelta(days=1).total_seconds()
    orders.tick()
    assert [orders.get_order(order["id"], account)["status"] for order in (paid, renewing, cancelled)] == \
        ["overdue", "active", "closed"]
