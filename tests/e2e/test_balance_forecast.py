"""The forecast against the lifecycle clock run forward (docs/requirements.md A7, N2).

The whole stack, its clock moved through CLOCK_FILE to each day the forecast says the clock
charges a renewal: every renewal the forecast counted is charged on that day, for that amount,
leaving that balance, in that order, and the order it says stops falls overdue on the day it
says. Orders of different plans and periods, one with auto-renew off, a credit limit and an
order waiting for payment. Then the alert in days: one e-mail per crossing.
"""
from __future__ import annotations

import time
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
import requests

from services.common.clock import move_clock
from services.common.money import Money
from tests.support import eventually

POSTAL = {"line1": "ul. Prosta 1", "city": "Warszawa", "postcode": "00-001", "country": "PL"}


def vps(plan_id: str, months: int, auto_renew: bool = True) -> dict:
    return {"plan_id": plan_id, "period_months": months, "auto_renew": auto_renew,
            "fields": {"hostname": f"h{uuid.uuid4().hex[:6]}.example.com", "os_template": "debian-12"}}


def eur(amount: str) -> dict:
    return {"amount": amount, "currency": "EUR"}


@pytest.fixture
def set_today(stack):
    """``set_today(day)``: every process's clock at noon UTC of ``day``; put back afterwards."""
    def move(day: date):
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc)
        move_clock(stack.env["CLOCK_FILE"], (noon - datetime.now(timezone.utc)).total_seconds())
    yield move
    move_clock(stack.env["CLOCK_FILE"], 0.0)


def charges(staff, account_id: str) -> list[dict]:
    """The account's charges, oldest first."""
    items = staff.ledger.list_transactions(account_id, 100)["items"]
    return [tx for tx in reversed(items) if tx["kind"] == "charge"]


def test_the_forecast_is_what_the_clock_then_does_to_the_cent(customer, staff, payments, set_today):
    anna = customer(postal_address=POSTAL)
    account = anna.profile["id"]
    payments.ledger.credit_payment(account, eur("30.00"), f"pay-{uuid.uuid4()}", "bank")
    monthly = anna.post("/api/v1/orders", vps("vps-s", 1)).json()          # 9.90
    assert monthly["status"] == "active"
    # Too dear for the balance: it waits for payment, and it blocks the forecast first.
    waiting = anna.post("/api/v1/orders", vps("vps-m", 3)).json()
    assert waiting["status"] == "pending_payment"
    blocked = anna.get("/api/v1/balance/forecast").json()
    today = date.fromisoformat(blocked["stops"]["charge_on"])
    assert blocked["renewals"] == [] and blocked["stops"]["order_id"] == waiting["id"]
    assert blocked["stops"]["kind"] == "payment" and blocked["days"] == 0

    # A credit limit and a payment: the pending order is paid (the first thing the balance pays).
    staff.ledger.set_credit_limit(account, eur("15.00"), "tests")
    payments.ledger.credit_payment(account, eur("150.00"), f"pay-{uuid.uuid4()}", "bank")
    eventually(lambda: staff.orders.get_order(waiting["id"])["status"] == "active")
    quarterly = staff.orders.get_order(waiting["id"])
    two_months = anna.post("/api/v1/orders", vps("vps-m", 1)).json()   # 18.90 a month
    idle = anna.post("/api/v1/orders", vps("vps-s", 1, auto_renew=False)).json()
    assert idle["status"] == "active"

    forecast = anna.get("/api/v1/balance/forecast").json()
    balance = Money.from_wire(forecast["balance"])
    assert forecast["credit_limit"] == eur("15.00") and forecast["horizon_days"] == 366
    renewed = {r["order_id"] for r in forecast["renewals"]}
    assert idle["id"] not in renewed and {monthly["id"], quarterly["id"], two_months["id"]} & renewed
    assert len(forecast["renewals"]) >= 3 and forecast["stops"] is not None
    assert forecast["days"] == (date.fromisoformat(forecast["covered_until"]) - today).days
    for renewal in forecast["renewals"]:   # the balance after each is the one before less the amount
        balance = balance - Money.from_wire(renewal["amount"])
        assert renewal["balance_after"] == balance.to_wire()

    before = len(charges(staff, account))
    for day in sorted({date.fromisoformat(r["on"]) for r in forecast["renewals"]}):
        set_today(day)
        expected = [r for r in forecast["renewals"] if date.fromisoformat(r["on"]) <= day]
        eventually(lambda: len(charges(staff, account)) - before >= len(expected), timeout=20)
    made = charges(staff, account)[before:]
    counted = len(forecast["renewals"])
    assert [(tx["reference"], tx["amount"]["amount"].lstrip("-"), tx["balance_after"], tx["at"][:10])
            for tx in made[:counted]] == [(r["order_id"], r["amount"]["amount"], r["balance_after"], r["on"])
                                for r in forecast["renewals"]]

    stops = forecast["stops"]
    # Nothing is forecast past the first renewal the balance cannot pay: on that day a cheaper order due
    # after it may still be renewed, and that is all the clock did besides.
    assert all(tx["at"][:10] == stops["charge_on"] and tx["reference"] != stops["order_id"] for tx in made[counted:])
    set_today(date.fromisoformat(stops["on"]))
    eventually(lambda: staff.orders.get_order(stops["order_id"])["status"] == "overdue", timeout=20)
    paid_for = [tx for tx in charges(staff, account)[before:] if tx["reference"] == stops["order_id"]]
    assert len(paid_for) == len([r for r in forecast["renewals"] if r["order_id"] == stops["order_id"]])
    assert staff.ledger.audit() == []


@pytest.fixture
def mailbox(stack):
    url = stack.url("mail_http")

    def to(address):
        return requests.get(f"{url}/messages", params={"to": address}, timeout=5).json()["items"]
    return to


def test_the_alert_in_days_is_mailed_once_per_crossing_with_what_to_pay(customer, payments, mailbox):
    anna = customer(postal_address=POSTAL)
    account = anna.profile["id"]
    billing = f"billing-{uuid.uuid4().hex[:8]}@firma.example"
    assert anna.get("/api/v1/profile/notifications").json()["low_balance_days"] is None
    for bad in (0, 367, 1.5, "7"):
        refused = anna.put("/api/v1/profile/notifications", {"low_balance_days": bad})
        assert refused.status_code == 400 and "low_balance_days" in refused.json()["error"]["fields"], bad
    saved = anna.put("/api/v1/profile/notifications", {"low_balance_days": 40, "emails": {"invoices": billing}})
    assert saved.status_code == 200 and saved.json()["low_balance_days"] == 40
    time.sleep(1)  # money mail is addressed from the notifier's copy, which profile's event updates (README)

    def alerts():
        anna.get("/api/v1/balance/forecast")   # a forecast read decides the alert too
        return [m for m in mailbox(billing) if "Your balance pays your services" in m["subject"]]

    payments.ledger.credit_payment(account, eur("10.00"), f"pay-{uuid.uuid4()}", "bank")
    first = anna.post("/api/v1/orders", vps("vps-s", 1)).json()      # 0.10 left: the renewal in a month fails
    [mail] = eventually(alerts, timeout=30)
    forecast = anna.get("/api/v1/balance/forecast").json()
    assert forecast["stops"]["order_id"] == first["id"] and forecast["days"] < 40
    assert first["id"] in mail["text"] and f"{forecast['days']} more days" in mail["subject"]
    assert "EUR 9.80" in mail["text"]   # 9.90 renews the order within the next 40 days; 0.10 is there

    payments.ledger.credit_payment(account, eur("1.00"), f"pay-{uuid.uuid4()}", "bank")   # still under: no mail
    time.sleep(3)
    assert len(alerts()) == 1

    payments.ledger.credit_payment(account, eur("30.00"), f"pay-{uuid.uuid4()}", "bank")  # recovered: re-armed
    eventually(lambda: anna.get("/api/v1/balance/forecast").json()["days"] > 40)
    second = anna.post("/api/v1/orders", vps("vps-m", 1)).json()     # 12.20 left: under again
    again, _ = eventually(lambda: len(alerts()) == 2 and alerts(), timeout=30)   # newest first
    assert second["id"] in again["text"]
    # within 40 days: vps-s 9.90 and vps-m 18.90 renew; 12.20 is there
    assert "EUR 16.60" in again["text"]
    time.sleep(3)
    assert len(alerts()) == 2


def test_the_days_falling_with_time_alone_bring_the_alert_from_the_daily_check(customer, payments, mailbox,
                                                                                set_today):
    anna = customer(postal_address=POSTAL)
    billing = f"billing-{uuid.uuid4().hex[:8]}@firma.example"
    assert anna.put("/api/v1/profile/notifications", {"low_balance_days": 40,
                                                      "emails": {"invoices": billing}}).status_code == 200
    payments.ledger.credit_payment(anna.profile["id"], eur("20.00"), f"pay-{uuid.uuid4()}", "bank")
    order = anna.post("/api/v1/orders", vps("vps-s", 1)).json()   # 10.10 left: one renewal, then the stop
    forecast = anna.get("/api/v1/balance/forecast").json()
    assert forecast["days"] > 40 and len(forecast["renewals"]) == 1

    def alerts():   # no forecast read here: only the orders service's daily check may decide
        return [m for m in mailbox(billing) if "Your balance pays your services" in m["subject"]]
    time.sleep(2)
    assert alerts() == []
    covered_until = date.fromisoformat(forecast["covered_until"])
    set_today(covered_until - timedelta(days=35))   # before the renewal: nothing moves, the days fall under 40
    [mail] = eventually(alerts, timeout=30)
    assert order["id"] in mail["text"] and "35 more days" in mail["subject"]
