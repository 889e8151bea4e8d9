"""The pending-operation mechanism and the operations the command families write, without a database.

The store of leases and written operations is an in-memory one with the real store's methods;
the finishers are plain functions that succeed, refuse or lose the answer like the ledger.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pytest

from services.common.errors import DomainError, ServiceUnavailable
from services.common.idempotency import KeyedRequest
from services.common.money import Money
from services.orders.catalogue import load_catalogue
from services.orders.domain import activate, new_order
from services.orders.operations import PendingOperations, keyed_request, reply_to
from services.orders.placement import activation, check_payments_allowed, money_arrived, order_id_for
from services.orders.renewal import renewal

CATALOGUE = load_catalogue()
VPS_S = CATALOGUE.plan("vps-s")      # 9.90 a month
MARCH_1 = date(2026, 3, 1)
FIELDS = {"hostname": "web1.example.com", "os_template": "debian-12"}


@dataclass
class Row:
    id: str = "order-1"
    renewals: int = 0
    pending_operation: dict | None = None
    busy_until: object = "leased"
    busy_with: str | None = "activate"


@dataclass
class Store:
    """The lease and the written operation of each order, in memory."""

    written: dict[str, dict] = field(default_factory=dict)
    expired: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    leased_by_others: set[str] = field(default_factory=set)

    def write(self, order_id, operation):
        self.written[order_id] = operation

    def forget(self, order_id):
        self.written.pop(order_id, None)

    def expire_lease(self, order_id):
        self.expired.append(order_id)

    def release_lease(self, order_id):
        if order_id not in self.written:
            self.released.append(order_id)

    def interrupted(self):
        return list(self.written)

    def take_over(self, order_id):
        return None if order_id in self.leased_by_others else self.written[order_id]


class Keys:
    def __init__(self):
        self.kept = []

    def remember(self, session, keyed, answer):
        self.kept.append((keyed, answer))


def mechanism(finish):
    store, keys = Store(), Keys()
    pending = PendingOperations(store, keys)
    pending.finishers["activate"] = finish
    return pending, store, keys


def test_a_finished_operation_answers_what_its_finisher_wrote():
    pending, store, _ = mechanism(lambda order_id, operation: {"id": order_id, "status": "active"})
    assert pending.carry_out("order-1", {"kind": "activate"}) == {"id": "order-1", "status": "active"}
    assert store.expired == []


def test_a_refusal_by_the_ledger_forgets_the_operation_nothing_being_left_to_finish():
    def refused(order_id, operation):
        raise DomainError("insufficient_funds", "Not enough money.")
    pending, store, _ = mechanism(refused)
    with pytest.raises(DomainError):
        pending.carry_out("order-1", {"kind": "activate"})
    assert store.written == {} and store.expired == []


@pytest.mark.parametrize("lost", [ServiceUnavailable("ledger"), ConnectionResetError("reset")])
def test_an_unknown_outcome_keeps_the_operation_and_hands_it_to_the_clock_at_once(lost):
    def answer_lost(order_id, operation):
        raise lost
    pending, store, _ = mechanism(answer_lost)
    with pytest.raises(type(lost)):
        pending.carry_out("order-1", {"kind": "activate"})
    assert store.written == {"order-1": {"kind": "activate"}} and store.expired == ["order-1"]


def test_the_clock_finishes_interrupted_operations_except_those_another_replica_took():
    finished = []

    def finish(order_id, operation):
        finished.append(order_id)
        store.forget(order_id)
        return {"id": order_id, "status": "active"}
    pending, store, _ = mechanism(finish)
    store.written = {"order-1": {"kind": "activate"}, "order-2": {"kind": "activate"}}
    store.leased_by_others = {"order-2"}
    assert pending.finish_interrupted() == 1
    assert finished == ["order-1"] and store.released == ["order-1"]


def test_done_drops_the_operation_and_the_lease_and_keeps_the_answer_for_its_key():
    pending, _, keys = mechanism(None)
    keyed = KeyedRequest.of("acc-1", "place_order", "key-1", {"plan_id": "vps-s"})
    row = Row(pending_operation={"kind": "activate"})
    answer = pending.done(None, row, {"kind": "activate", "reply_to": reply_to(keyed)}, {"status": "active"})
    assert answer == {"status": "active"}
    assert (row.pending_operation, row.busy_until, row.busy_with) == (None, None, None)
    assert keys.kept == [(keyed, {"status": "active"})]


def test_an_operation_without_a_key_keeps_no_answer():
    pending, _, keys = mechanism(None)
    pending.done(None, Row(), {"kind": "activate", "reply_to": reply_to(keyed_request("acc-1", "x", None, {}))}, {})
    assert keys.kept == []


def test_an_activation_charges_the_list_price_under_the_order_s_key_with_one_line_for_its_period():
    state = new_order(VPS_S, 1, FIELDS, MARCH_1)
    operation = activation("order-1", state, MARCH_1, None, announce=True)
    assert operation["charge"] == {
        "amount": {"amount": "9.90", "currency": "EUR"}, "key": "order:order-1:activate",
        "description": "VPS S, 1 months",
        "lines": [{"description": "VPS S, 1 months", "gross": {"amount": "9.90", "currency": "EUR"},
                   "period_from": "2026-03-01", "period_to": "2026-03-31"}]}
    assert "charged" not in operation  # the ledger prices it for the customer, in the same call
    assert operation["announce"] is True and operation["reply_to"] is None


def test_each_renewal_of_an_order_has_its_own_key():
    state = activate(new_order(VPS_S, 1, FIELDS, MARCH_1), MARCH_1)
    first = renewal(Row(renewals=0), state, MARCH_1, 1, False, None)
    third = renewal(Row(renewals=2), state, MARCH_1, 3, True, None)
    assert first["charge"]["key"] == "order:order-1:renew:1" and first["number"] == 1
    assert third["charge"]["key"] == "order:order-1:renew:3" and third["automatic"] is True
    assert third["charge"]["lines"][0]["period_from"] == "2026-04-01"


@pytest.mark.parametrize("payload, looks", [
    ({"kind": "payment", "amount": {"amount": "10.00", "currency": "EUR"}}, True),
    ({"kind": "refund", "amount": {"amount": "3.00", "currency": "EUR"}}, True),
    ({"kind": "charge", "amount": {"amount": "-9.90", "currency": "EUR"}}, False),
    ({"kind": "adjustment", "amount": {"amount": "-1.00", "currency": "EUR"}}, False),
])
def test_only_money_coming_in_makes_orders_look_for_pending_orders(payload, looks):
    assert money_arrived(payload) is looks


def test_a_keyed_order_has_the_same_id_on_every_retry_and_an_unkeyed_one_a_new_id():
    assert order_id_for("acc-1", "key-1") == order_id_for("acc-1", "key-1")
    assert order_id_for("acc-1", "key-1") != order_id_for("acc-2", "key-1")
    assert order_id_for("acc-1", None) != order_id_for("acc-1", None)


@pytest.mark.parametrize("profile, code", [
    ({"payments_blocked": True, "postal_address": {"city": "Warsaw"}}, "payments_blocked"),
    ({"payments_blocked": False, "postal_address": None}, "postal_address_required"),
])
def test_an_account_orders_only_with_payments_allowed_and_a_postal_address(profile, code):
    with pytest.raises(DomainError) as refused:
        check_payments_allowed(profile)
    assert refused.value.error_code == code
    check_payments_allowed({"payments_blocked": False, "postal_address": {"city": "Warsaw"}})
