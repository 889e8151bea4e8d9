"""Orders over HTTP against the whole stack: order, renew, upgrade, downgrade, cancel with refund,
replays and bad input; the lifecycle clock moved through CLOCK_FILE; the ledger's audit stays clean.
Payments arrive over RPC, as they do from Introserv's payment systems.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime, timezone

import pytest
from services.common.money import Money
from tests.support import error_code, eventually

POSTAL = {"line1": "ul. Prosta 1", "city": "Warszawa", "postcode": "00-001", "country": "PL"}
VPS = {"plan_id": "vps-s", "period_months": 1, "fields": {"hostname": "web1.example.com", "os_template": "debian-12"}}


@pytest.fixture(scope="module")
def rpc(staff):
    return staff


def pay(payments, account_id: str, amount: str) -> None:
    payments.ledger.credit_payment(account_id, {"amount": amount, "currency": "EUR"}, f"pay-{uuid.uuid4()}", "bank")


def money(wire) -> Money:
    return Money.from_wire(wire)


def key() -> dict:
    return {"Idempotency-Key": str(uuid.uuid4())}


def test_plans_are_listed_per_kind_and_a_bad_kind_is_refused(api):
    for kind in ("vps", "dedicated"):
        response = api.get(f"/api/v1/plans?kind={kind}")
        assert response.status_code == 200
        plans = response.json()["items"]
        assert len(plans) >= 4 and {plan["kind"] for plan in plans} == {kind}
        assert all(price["price"]["amount"].count(".") == 1 for plan in plans for price in plan["prices"])
    assert error_code(api.get("/api/v1/plans?kind=boat")) == "validation_error"


def test_order_renew_upgrade_downgrade_cancel_over_http_with_clean_books(customer, rpc, payments):
    anna = customer(postal_address=POSTAL)
    account = anna.profile["id"]
    pay(payments, account, "200.00")
    headers = key()
    created = anna.post("/api/v1/orders", VPS, headers=headers)
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["status"] == "active" and order["ip_address"] and order["days_left"] > 0
    assert anna.post("/api/v1/orders", VPS, headers=headers).json() == order            # replay
    conflict = anna.post("/api/v1/orders", {**VPS, "period_months": 3}, headers=headers)
    assert conflict.status_code == 422 and error_code(conflict) == "idempotency_conflict"
    assert [o["id"] for o in anna.get("/api/v1/orders").json()["items"]] == [order["id"]]

    renewed = anna.post(f"/api/v1/orders/{order['id']}/renew", {"period_months": 1}, headers=key())
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["paid_until"] > order["paid_until"]

    quote = anna.get(f"/api/v1/orders/{order['id']}/change-plan/quote?plan_id=vps-m")
    assert quote.status_code == 200, quote.text
    up = anna.post(f"/api/v1/orders/{order['id']}/change-plan", {"plan_id": "vps-m"}, headers=key())
    assert up.status_code == 200, up.text
    assert up.json()["charge"] == quote.json()["charge"] and up.json()["credit"]["amount"] == "0.00"
    down = anna.post(f"/api/v1/orders/{order['id']}/change-plan", {"plan_id": "vps-s"}, headers=key())
    assert down.status_code == 200 and money(down.json()["credit"]).minor > 0

    refund_quote = anna.get(f"/api/v1/orders/{order['id']}/cancel/quote?when=now").json()
    cancel_key = key()
    cancelled = anna.post(f"/api/v1/orders/{order['id']}/cancel", {"when": "now", "reason": "moving"},
                          headers=cancel_key)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["refund"] == refund_quote["refund"]
    assert cancelled.json()["order"]["status"] == "cancelled"
    assert anna.post(f"/api/v1/orders/{order['id']}/cancel", {"when": "now", "reason": "moving"},
                     headers=cancel_key).json() == cancelled.json()
    again = anna.post(f"/api/v1/orders/{order['id']}/cancel", {"when": "now"}, headers=key())
    assert again.status_code == 409 and error_code(again) == "not_cancellable"

    expected = (Money.of("200.00", "EUR") - Money.of("9.90", "EUR") - Money.of("9.90", "EUR")
                - money(up.json()["charge"]) + money(down.json()["credit"]) + money(cancelled.json()["refund"]))
    assert money(rpc.ledger.get_balance(account)) == expected
    detail = anna.get(f"/api/v1/orders/{order['id']}").json()
    assert [e["kind"] for e in detail["events"]][:3] == ["created", "paid", "renewed"]
    assert anna.get("/api/v1/orders").json()["items"] == []
    assert [o["id"] for o in anna.get("/api/v1/orders/history").json()["items"]] == [order["id"]]
    assert rpc.ledger.audit() == []


def test_bad_input_and_another_customers_order(customer, payments):
    anna, piotr = customer(postal_address=POSTAL), customer(postal_address=POSTAL)
    pay(payments, anna.profile["id"], "50.00")
    order = anna.post("/api/v1/orders", VPS).json()
    for path in (f"/api/v1/orders/{order['id']}", f"/api/v1/orders/{order['id']}/cancel/quote"):
        assert error_code(piotr.get(path)) == "not_found"
    refused = piotr.post(f"/api/v1/orders/{order['id']}/cancel", {"when": "now"})
    assert refused.status_code == 404
    assert anna.get(f"/api/v1/orders/{order['id']}").json()["status"] == "active"

    malformed = anna.request("POST", "/api/v1/orders", data="{not json", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and error_code(malformed) == "malformed_json"
    for body in ({**VPS, "period_months": 1.0}, {**VPS, "auto_renew": "yes"}, {**VPS, "plan_id": "x" * 100_000},
                 {**VPS, "fields": {"hostname": "y" * 10_000, "os_template": "debian-12"}}, {}):
        response = anna.post("/api/v1/orders", body)
        assert response.status_code == 400, (body, response.text)
    unknown = anna.post("/api/v1/orders", {**VPS, "plan_id": "vps-zzz"})
    assert unknown.status_code in (404, 422) and unknown.json()["error"]["fields"]
    no_address = customer()
    blocked = no_address.post("/api/v1/orders", VPS)
    assert blocked.status_code == 422 and error_code(blocked) == "postal_address_required"
    assert len(anna.get("/api/v1/orders/history").json()["items"]) == 1
    assert error_code(anna.get("/api/v1/orders?limit=0")) == "validation_error"
    assert error_code(anna.get("/api/v1/orders?cursor=garbage")) == "validation_error"


def wait_for_status(api, order_id: str, status: str, seconds: float = 20.0) -> dict:
    """The order once the clock has moved it to ``status``."""
    def moved():
        order = api.get(f"/api/v1/orders/{order_id}").json()
        return order if order.get("status") == status else None
    return eventually(moved, timeout=seconds)


def test_the_clock_makes_an_unrenewed_order_overdue_then_suspended_then_closed(customer, api, rpc, payments,
                                                                             move_time):
    anna = customer(postal_address=POSTAL)
    pay(payments, anna.profile["id"], "9.90")
    order = anna.post("/api/v1/orders", VPS).json()
    today = datetime.now(timezone.utc).date()
    to_paid_until = (date.fromisoformat(order["paid_until"]) - today).days

    def relogin():
        token = api.post("/api/v1/sessions", {"login": anna.profile["login"], "password": anna.password}).json()
        return api.as_customer(token["token"], profile=anna.profile, password=anna.password)

    move_time(days=to_paid_until)
    anna = relogin()
    overdue = wait_for_status(anna, order["id"], "overdue")
    assert overdue["days_left"] == 0 and overdue["actions"] == ["renew", "cancel"]
    move_time(days=3)
    anna = relogin()
    wait_for_status(anna, order["id"], "suspended")
    move_time(days=14)
    anna = relogin()
    closed = wait_for_status(anna, order["id"], "closed")
    assert closed["actions"] == []
    assert [e["kind"] for e in closed["events"]][-3:] == ["overdue", "suspended", "closed"]
    assert rpc.orders.get_order(order["id"])["status"] == "closed"


def test_retries_racing_the_first_request_with_its_key_are_never_refused(customer, payments):
    # A client that does not hear back retries with the same Idempotency-Key at once: each retry
    # either waits for nothing and replays the order, or is told the first is still running
    # (409 request_in_progress with Retry-After), never the generic "conflict".
    from concurrent.futures import ThreadPoolExecutor
    anna = customer(postal_address=POSTAL)
    pay(payments, anna.profile["id"], "100.00")
    headers = key()
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: anna.post("/api/v1/orders", VPS, headers=headers), range(6)))
    placed = [a.json() for a in answers if a.status_code == 201]
    waiting = [a for a in answers if a.status_code == 409]
    assert len(placed) + len(waiting) == 6, [(a.status_code, a.text) for a in answers]
    assert all(error_code(a) == "request_in_progress" and int(a.headers["Retry-After"]) >= 1 for a in waiting)
    order = eventually(lambda: (lambda r: r.json() if r.status_code == 201 else None)(
        anna.post("/api/v1/orders", VPS, headers=headers)), timeout=20)
    assert order["status"] == "active" and all(p == order for p in placed)
    assert [o["id"] for o in anna.get("/api/v1/orders").json()["items"]] == [order["id"]]
