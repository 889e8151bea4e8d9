"""What a customer reads and confirms about an order over HTTP (issue 18): the renewal quote is
exactly what a renewal takes, auto-renew is switched after ordering, every order has a short
number and its host name, and the plans say which datacenters have stock.
"""
from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from tests.support import error_code

POSTAL = {"line1": "ul. Prosta 1", "city": "Warszawa", "postcode": "00-001", "country": "PL"}
VPS = {"plan_id": "vps-s", "period_months": 1, "fields": {"hostname": "web1.example.com", "os_template": "debian-12"}}

pytestmark = pytest.mark.e2e


def pay(payments, account_id: str, amount: str) -> None:
    payments.ledger.credit_payment(account_id, {"amount": amount, "currency": "EUR"}, f"pay-{uuid.uuid4()}", "bank")


def key() -> dict:
    return {"Idempotency-Key": str(uuid.uuid4())}


def balance(who) -> Decimal:
    return Decimal(who.get("/api/v1/balance").json()["balance"]["amount"])


def test_the_renewal_quote_is_what_the_renewal_takes_also_after_plan_changes(customer, payments):
    anna = customer(postal_address=POSTAL)
    pay(payments, anna.profile["id"], "300.00")
    order = anna.post("/api/v1/orders", {**VPS, "plan_id": "vps-l"}, headers=key()).json()
    for plan_id in ("vps-xl", "vps-l"):  # the sequence that once left the old plan's price on the page
        changed = anna.post(f"/api/v1/orders/{order['id']}/change-plan", {"plan_id": plan_id}, headers=key())
        assert changed.status_code == 200, changed.text

    quote = anna.get(f"/api/v1/orders/{order['id']}/renew/quote?period_months=3")
    assert quote.status_code == 200, quote.text
    quote = quote.json()
    plans = {plan["id"]: plan for plan in anna.get("/api/v1/plans?kind=vps").json()["items"]}
    three_months = next(p["price"] for p in plans["vps-l"]["prices"] if p["period_months"] == 3)
    assert quote["charge"] == three_months                         # an individual pays the list price
    assert [line["amount"] for line in quote["lines"]] == [quote["charge"]]
    assert quote["lines"][0]["months"] == 3 and "VPS L" in quote["lines"][0]["description"]

    before = balance(anna)
    renewed = anna.post(f"/api/v1/orders/{order['id']}/renew", {"period_months": 3}, headers=key())
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["paid_until"] == quote["paid_until"]
    assert before - balance(anna) == Decimal(quote["charge"]["amount"])
    charge = anna.get("/api/v1/balance/transactions").json()["items"][0]
    assert charge["kind"] == "charge" and charge["amount"]["amount"] == f"-{quote['charge']['amount']}"


def test_a_renewal_quote_refuses_what_a_renewal_would_refuse(customer, payments):
    anna, piotr = customer(postal_address=POSTAL), customer(postal_address=POSTAL)
    pay(payments, anna.profile["id"], "50.00")
    order = anna.post("/api/v1/orders", VPS, headers=key()).json()
    path = f"/api/v1/orders/{order['id']}/renew/quote"
    assert error_code(piotr.get(f"{path}?period_months=1")) == "not_found"
    for query in ("", "?period_months=two", "?period_months=0", "?period_months=1&x=1"):
        refused = anna.get(f"{path}{query}")
        assert refused.status_code == 400 and error_code(refused) == "validation_error", (query, refused.text)
    not_offered = anna.get(f"{path}?period_months=5")
    assert not_offered.status_code == 400 and "period_months" in not_offered.json()["error"]["fields"]
    anna.post(f"/api/v1/orders/{order['id']}/cancel", {"when": "end_of_period"}, headers=key())
    ended = anna.get(f"{path}?period_months=1")
    assert ended.status_code == 409 and error_code(ended) == "not_renewable"


def test_auto_renew_is_switched_after_ordering_by_its_owner_only(customer, payments):
    anna, piotr = customer(postal_address=POSTAL), customer(postal_address=POSTAL)
    pay(payments, anna.profile["id"], "50.00")
    order = anna.post("/api/v1/orders", VPS, headers=key()).json()
    assert order["auto_renew"] is False
    path = f"/api/v1/orders/{order['id']}"

    switched = anna.patch(path, {"auto_renew": True})
    assert switched.status_code == 200, switched.text
    assert switched.json()["auto_renew"] is True
    shown = anna.get(path).json()
    assert shown["auto_renew"] is True and shown["events"][-1]["kind"] == "auto_renew_changed"
    assert anna.get("/api/v1/orders").json()["items"][0]["auto_renew"] is True

    refused = piotr.patch(path, {"auto_renew": False})
    assert refused.status_code == 404 and error_code(refused) == "not_found"
    for body in ({"auto_renew": "false"}, {"auto_renew": 0}, {"auto_renew": None}, {}, {"auto_renew": False, "plan_id": "x"}):
        bad = anna.patch(path, body)
        assert bad.status_code == 400 and error_code(bad) == "validation_error", (body, bad.text)
    assert anna.get(path).json()["auto_renew"] is True            # nothing half-written

    assert anna.patch(path, {"auto_renew": False}).json()["auto_renew"] is False
    anna.post(f"{path}/cancel", {"when": "now"}, headers=key())
    ended = anna.patch(path, {"auto_renew": True})
    assert ended.status_code == 409 and error_code(ended) == "conflict"


def test_orders_have_a_short_unique_number_and_their_host_name(customer, payments):
    anna = customer(postal_address=POSTAL)
    pay(payments, anna.profile["id"], "50.00")
    first = anna.post("/api/v1/orders", VPS, headers=key()).json()
    second = anna.post("/api/v1/orders", {**VPS, "fields": {**VPS["fields"], "hostname": "db1.example.com"}},
                       headers=key()).json()
    for order in (first, second):
        assert order["number"].startswith("ORD-") and len(order["number"]) <= 12
    assert int(second["number"][4:]) > int(first["number"][4:])
    assert (first["hostname"], second["hostname"]) == ("web1.example.com", "db1.example.com")
    listed = {o["id"]: (o["number"], o["hostname"]) for o in anna.get("/api/v1/orders/history").json()["items"]}
    assert listed == {o["id"]: (o["number"], o["hostname"]) for o in (first, second)}


def datacenters(who, plan_id: str) -> dict:
    plan = next(p for p in who.get("/api/v1/plans?kind=dedicated").json()["items"] if p["id"] == plan_id)
    choice = next(field for field in plan["required_fields"] if field["name"] == "datacenter")
    return {option["value"]: option["available"] for option in choice["options"]}


def test_a_sold_out_datacenter_is_listed_as_such_until_a_server_there_is_free_again(customer, payments, api):
    anna = customer(postal_address=POSTAL)
    pay(payments, anna.profile["id"], "700.00")
    plan_id = "ded-e2388g"                                 # 4 servers in AMS1
    body = {"plan_id": plan_id, "period_months": 1,
            "fields": {"hostname": "db.example.com", "os_template": "debian-12", "datacenter": "AMS1"}}
    assert set(datacenters(api, plan_id)) == {"WAW1", "FRA1", "AMS1"}      # public, no session needed
    placed = []
    while datacenters(anna, plan_id)["AMS1"] and len(placed) < 5:
        created = anna.post("/api/v1/orders", body, headers=key())
        assert created.status_code == 201, created.text
        placed.append(created.json())
    shown = datacenters(api, plan_id)
    assert shown["AMS1"] is False and shown["WAW1"] is True and shown["FRA1"] is True
    refused = anna.post("/api/v1/orders", body, headers=key())
    assert refused.status_code == 422 and error_code(refused) == "out_of_stock"
    plan = next(p for p in api.get("/api/v1/plans?kind=dedicated").json()["items"] if p["id"] == plan_id)
    assert plan["available"] is True                       # other datacenters still have stock

    anna.post(f"/api/v1/orders/{placed[0]['id']}/cancel", {"when": "now"}, headers=key())
    assert datacenters(api, plan_id)["AMS1"] is True


def test_invoices_over_http_carry_the_sale_date_the_settlement_and_the_corrected_number(customer, payments):
    anna = customer(postal_address=POSTAL)
    pay(payments, anna.profile["id"], "50.00")
    order = anna.post("/api/v1/orders", VPS, headers=key()).json()
    anna.post(f"/api/v1/orders/{order['id']}/cancel", {"when": "now"}, headers=key())
    documents = anna.get("/api/v1/invoices").json()["items"]
    invoice = next(d for d in documents if d["kind"] == "invoice")
    note = next(d for d in documents if d["kind"] == "credit_note")
    assert invoice["sale_date"] == invoice["issued_at"][:10] and invoice["settled_at"]
    assert invoice["corrects_number"] is None
    assert note["corrects_number"] == invoice["number"] and note["corrects_issued_at"] == invoice["issued_at"]
    assert note["sale_date"] == invoice["sale_date"]
    assert anna.get(f"/api/v1/invoices/{note['id']}").json() == note


def test_order_mails_name_the_order_by_number_and_host_name_in_the_subject(customer, payments, stack):
    import requests

    from tests.support import eventually
    anna = customer(postal_address=POSTAL)
    pay(payments, anna.profile["id"], "50.00")
    order = anna.post("/api/v1/orders", VPS, headers=key()).json()

    def order_mails():
        items = requests.get(f"{stack.url('mail_http')}/messages", params={"to": anna.profile["email"]},
                             timeout=5).json()["items"]
        return [m for m in items if order["number"] in m["subject"]]
    mails = eventually(order_mails, timeout=30)
    assert all(f"{order['number']} ({order['hostname']})" in m["subject"] for m in mails)
    assert not any(order["id"] in m["subject"] for m in mails)


def test_the_new_order_quote_is_what_placing_the_order_takes(customer, payments):
    anna = customer(postal_address=POSTAL)
    pay(payments, anna.profile["id"], "100.00")
    quote = anna.get("/api/v1/orders/quote?plan_id=vps-m&period_months=3")
    assert quote.status_code == 200, quote.text
    quote = quote.json()
    assert quote["lines"][0]["amount"] == quote["charge"] and quote["period_months"] == 3
    before = balance(anna)
    order = anna.post("/api/v1/orders", {**VPS, "plan_id": "vps-m", "period_months": 3}, headers=key()).json()
    assert order["status"] == "active" and order["paid_until"] == quote["paid_until"]
    assert before - balance(anna) == Decimal(quote["charge"]["amount"])

    assert error_code(anna.get("/api/v1/orders/quote?plan_id=vps-m&period_months=5")) == "validation_error"
    assert error_code(anna.get("/api/v1/orders/quote?plan_id=vps-m")) == "validation_error"
    unknown = anna.get("/api/v1/orders/quote?plan_id=boat&period_months=1")
    assert unknown.status_code == 422 and error_code(unknown) == "unknown_plan"
