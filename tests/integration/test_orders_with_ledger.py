"""Orders with the real ledger and profile services over real RabbitMQ: the money adds up.

Order, renew, upgrade, downgrade and cancel with refund; afterwards the balance is what the
answers said, each charge has its invoice and each refund its credit note, and the ledger's
audit is clean. A hundred upgrades each followed at once by the downgrade back leave the
balance where it was (issue 16, item 8).
"""
from __future__ import annotations

import uuid
from datetime import date, datetime, timezone
from types import SimpleNamespace

import pytest

from services.common.clock import clock
from services.common.errors import DomainError
from services.common.money import Money
from services.ledger.service import LedgerService
from services.orders.service import OrdersService
from services.profile.service import ProfileService

VPS = {"plan_id": "vps-s", "period_months": 1, "fields": {"hostname": "web1.example.com", "os_template": "debian-12"}}


@pytest.fixture
def stack(run_service, rpc_as):
    """The three services, and their callers: the gateway, the payment system, support staff."""
    run_service(ProfileService)
    run_service(LedgerService)
    run_service(OrdersService, ORDERS_TICK_SECONDS=3600)
    return SimpleNamespace(gateway=rpc_as("gateway"), payments=rpc_as("payments"), staff=rpc_as("operator"))


def register(stack, **overrides) -> str:
    login = f"c{uuid.uuid4().hex[:12]}"
    profile = stack.gateway.profile.register({
        "login": login, "password": "a long and unusual passphrase 7", "email": f"{login}@example.com",
        "first_name": "Anna", "last_name": "Nowak", "city": "Warszawa", "address": "ul. Prosta 1",
        "country": "PL", "postal_address": {"line1": "ul. Prosta 1", "city": "Warszawa", "postcode": "00-001",
                                            "country": "PL"}, **overrides})
    return profile["id"]


def money(wire) -> Money:
    return Money.from_wire(wire)


def set_today(monkeypatch, day: date):
    """Move every in-process service's clock (the one module-level clock) to ``day``, noon UTC."""
    target = datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc)
    monkeypatch.setattr(clock, "offset", lambda: (target - datetime.now(timezone.utc)).total_seconds())


def test_order_renew_upgrade_downgrade_cancel_keep_the_books_sound(stack):
    orders, ledger = stack.gateway.orders, stack.staff.ledger
    account = register(stack)
    stack.payments.ledger.credit_payment(account, {"amount": "100.00", "currency": "EUR"}, f"pay-{account}", "bank-1")
    order = orders.place_order(account, VPS, "new-1")
    assert order["status"] == "active"
    renewed = orders.renew(account, order["id"], {"period_months": 3}, "renew-1")
    assert renewed["period_months"] == 3
    up_quote = orders.change_plan_quote(account, order["id"], "vps-m")
    up = orders.change_plan(account, order["id"], {"plan_id": "vps-m"}, "up-1")
    assert up["charge"] == up_quote["charge"] and money(up["charge"]).minor > 0
    down_quote = orders.change_plan_quote(account, order["id"], "vps-s")
    down = orders.change_plan(account, order["id"], {"plan_id": "vps-s"}, "down-1")
    assert down["credit"] == down_quote["credit"] and money(down["credit"]).minor > 0
    refund_quote = orders.cancel_quote(account, order["id"], "now")
    cancelled = orders.cancel(account, order["id"], {"when": "now"}, "cancel-1")
    assert cancelled["refund"] == refund_quote["refund"]
    assert cancelled["order"]["status"] == "cancelled"

    # replays move nothing
    assert orders.renew(account, order["id"], {"period_months": 3}, "renew-1") == renewed
    assert orders.cancel(account, order["id"], {"when": "now"}, "cancel-1") == cancelled

    expected = (Money.of("100.00", "EUR") - Money.of("9.90", "EUR") - Money.of("28.81", "EUR")
                - money(up["charge"]) + money(down["credit"]) + money(cancelled["refund"]))
    assert money(ledger.get_balance(account)) == expected
    kinds = [t["kind"] for t in ledger.list_transactions(account)["items"]]
    assert kinds.count("charge") == 3 and kinds.count("payment") == 1
    assert kinds.count("refund") >= 2
    invoices = ledger.list_invoices(account)["items"]
    assert {i["kind"] for i in invoices} == {"invoice", "credit_note"}
    assert all(i["order_id"] == order["id"] for i in invoices)
    assert ledger.audit() == []
    events = [e["kind"] for e in stack.staff.orders.get_order(order["id"])["events"]]
    assert events == ["created", "paid", "renewed", "plan_changed", "plan_changed", "refunded",
                      "cancelled", "refunded"]


def test_insufficient_funds_renewal_changes_nothing_at_either_side(stack):
    orders, ledger = stack.gateway.orders, stack.staff.ledger
    account = register(stack)
    stack.payments.ledger.credit_payment(account, {"amount": "10.00", "currency": "EUR"}, f"pay-{account}", "bank-1")
    order = orders.place_order(account, VPS, None)
    with pytest.raises(DomainError) as excinfo:
        orders.renew(account, order["id"], {"period_months": 1}, "r")
    assert excinfo.value.error_code == "insufficient_funds"
    assert stack.staff.orders.get_order(order["id"])["paid_until"] == order["paid_until"]
    assert ledger.get_balance(account) == {"amount": "0.10", "currency": "EUR"}
    assert ledger.audit() == []


def test_unreviewed_company_is_refused_and_nothing_is_charged(stack):
    account = register(stack, profile_type="company", company_name="Nowak sp. z o.o.", vat_id="PL5260250274")
    stack.payments.ledger.credit_payment(account, {"amount": "50.00", "currency": "EUR"},
                                         f"pay-{account}", "bank-1")
    with pytest.raises(DomainError) as excinfo:
        stack.gateway.orders.place_order(account, VPS, None)
    assert excinfo.value.error_code == "payments_blocked"
    assert stack.staff.ledger.get_balance(account) == {"amount": "50.00", "currency": "EUR"}
    assert stack.staff.orders.list_orders(account)["items"] == []


def test_a_hundred_upgrades_each_downgraded_at_once_leave_the_balance_where_it_was(stack, monkeypatch):
    orders, ledger = stack.gateway.orders, stack.staff.ledger
    # Bought on March 1 (31 days) and changed on March 15: 16 unused days, where the old
    # rule charged 9.00 x 16 / 31 = 4.6451... as 4.64 and credited it back as 4.65.
    set_today(monkeypatch, date(2026, 3, 1))
    account = register(stack)
    stack.payments.ledger.credit_payment(account, {"amount": "279.00", "currency": "EUR"}, f"pay-{account}", "bank-1")
    order = orders.place_order(account, VPS, "new-1")
    set_today(monkeypatch, date(2026, 3, 15))
    before = money(ledger.get_balance(account))
    refund_before = orders.cancel_quote(account, order["id"], "now")
    assert before == Money.of("269.10", "EUR") and refund_before["refund"]["amount"] == "5.11"

    for trip in range(100):
        up = orders.change_plan(account, order["id"], {"plan_id": "vps-m"}, f"up-{trip}")
        down = orders.change_plan(account, order["id"], {"plan_id": "vps-s"}, f"down-{trip}")
        assert (up["charge"]["amount"], down["credit"]["amount"]) == ("4.64", "4.64")

    assert money(ledger.get_balance(account)) == before
    assert orders.cancel_quote(account, order["id"], "now") == refund_before
    invoices, cursor = [], None
    while True:
        page = ledger.list_invoices(account, 100, cursor)
        invoices += page["items"]
        if not (cursor := page["next_cursor"]):
            break
    # one invoice for the order and one per upgrade; one credit note per downgrade, not two
    assert sum(i["kind"] == "invoice" for i in invoices) == 101
    assert sum(i["kind"] == "credit_note" for i in invoices) == 100
    assert ledger.audit() == []
