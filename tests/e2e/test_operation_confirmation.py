"""Confirming sensitive operations by phone call (issue 8, item 6): once a customer turns it on,
cancelling an order, changing the password and changing the IP list each need a fresh phone
verification of purpose ``operation``, spent once."""
from __future__ import annotations

import time
import uuid

import pytest
import requests
from tests.support import error_code, eventually

POSTAL = {"line1": "ul. Prosta 1", "city": "Warszawa", "postcode": "00-001", "country": "PL"}
VPS = {"plan_id": "vps-s", "period_months": 1, "fields": {"hostname": "web1.example.com", "os_template": "debian-12"}}


@pytest.fixture
def rpc(staff):
    return staff


@pytest.fixture
def call_me(stack):
    """Verify by flash call: start, read the caller id the stand-in used, type its last four digits."""
    primary = stack.url("telephony_primary")

    def verify(who, phone, purpose, operation=None):
        body = {"channel": "flash_call", "purpose": purpose}
        if operation:
            body["operation"] = operation
        started = who.post("/api/v1/verifications", body)
        assert started.status_code == 201, started.text
        calls = requests.get(f"{primary}/calls", params={"to": phone}, timeout=5).json()["items"]
        checked = who.post(f"/api/v1/verifications/{started.json()['id']}/check", {"code": calls[0]["caller_id"][-4:]})
        assert checked.status_code == 200, checked.text
        return started.json()["id"]
    return verify


def test_confirmations_guard_password_ip_list_and_cancel_until_turned_off(customer, call_me, rpc, payments,
                                                                         move_time):
    phone = f"+48601{uuid.uuid4().int % 1_000_000:06d}"
    anna = customer(phone=phone, postal_address=POSTAL)
    switch = {"enabled": True, "password": anna.password}
    assert error_code(anna.put("/api/v1/security/operation-confirmation", switch)) == "phone_missing"

    call_me(anna, phone, "phone")
    deadline = time.monotonic() + 10
    while not anna.get("/api/v1/profile").json()["phone_verified"] and time.monotonic() < deadline:
        time.sleep(0.2)
    turned_on = anna.put("/api/v1/security/operation-confirmation", switch)
    assert turned_on.status_code == 200 and turned_on.json()["operation_confirmation"] is True

    new_password = {"current_password": anna.password, "new_password": "a brand new long passphrase 9",
                    "new_password_confirmation": "a brand new long passphrase 9"}
    refused = anna.put("/api/v1/security/password", new_password)
    assert refused.status_code == 422 and error_code(refused) == "verification_required"

    proof = call_me(anna, phone, "operation", "change_password")
    wrong_use = anna.put("/api/v1/security/ip-restriction", {"rules": [], "password": anna.password,
                                                            "verification_id": proof})
    assert error_code(wrong_use) == "verification_required"  # the proof names another operation
    assert anna.put("/api/v1/security/password", {**new_password, "verification_id": proof}).status_code == 204
    again = anna.put("/api/v1/security/password", {**new_password, "current_password": new_password["new_password"],
                                                   "verification_id": proof})
    assert again.status_code == 410 and error_code(again) == "verification_expired"  # spent once

    payments.ledger.credit_payment(anna.profile["id"], {"amount": "100.00", "currency": "EUR"}, f"pay-{uuid.uuid4()}", None)
    order = anna.post("/api/v1/orders", VPS)
    assert order.status_code == 201 and order.json()["status"] == "active", order.text
    cancel = f"/api/v1/orders/{order.json()['id']}/cancel"
    assert error_code(anna.post(cancel, {"when": "now"})) == "verification_required"
    assert anna.get(f"/api/v1/orders/{order.json()['id']}").json()["status"] == "active"  # nothing changed
    cancelled = anna.post(cancel, {"when": "now", "verification_id": call_me(anna, phone, "operation", "cancel_order")})
    assert cancelled.status_code == 200 and cancelled.json()["order"]["status"] == "cancelled"

    password = new_password["new_password"]
    off_without_proof = anna.put("/api/v1/security/operation-confirmation", {"enabled": False, "password": password})
    assert error_code(off_without_proof) == "verification_required"
    move_time(minutes=11)  # at most 3 calls to one number in 10 minutes
    off = anna.put("/api/v1/security/operation-confirmation", {
        "enabled": False, "password": password,
        "verification_id": call_me(anna, phone, "operation", "change_operation_confirmation")})
    assert off.status_code == 200 and off.json()["operation_confirmation"] is False
    assert anna.put("/api/v1/security/ip-restriction", {"rules": [], "password": password}).status_code == 200
    assert rpc.ledger.audit() == []

def test_a_stolen_session_cannot_move_the_confirmation_calls_to_its_own_phone(customer, call_me, rpc, stack):
    """Issue 17, item 2 replayed: the thief has the token only, sets its own phone, verifies it,
    gets a proof and cancels the order. Now the phone cannot change without the password (and,
    for a customer who confirms by call, without a call to the number on file)."""
    phone, thiefs_phone = (f"+48601{uuid.uuid4().int % 1_000_000:06d}" for _ in range(2))
    anna = customer(phone=phone, postal_address=POSTAL)
    call_me(anna, phone, "phone")
    eventually(lambda: anna.get("/api/v1/profile").json()["phone_verified"], timeout=10)
    assert anna.put("/api/v1/security/operation-confirmation", {"enabled": True, "password": anna.password}).ok
    rpc.ledger.credit_payment(anna.profile["id"], {"amount": "100.00", "currency": "EUR"}, f"pay-{uuid.uuid4()}", None)
    order = anna.post("/api/v1/orders", VPS).json()
    assert order["status"] == "active"

    thief = anna.as_customer(anna.token)  # the stolen bearer token, and nothing else
    grab = thief.patch("/api/v1/profile", {"phone": thiefs_phone})
    assert grab.status_code == 400 and list(grab.json()["error"]["fields"]) == ["password"]
    guess = thief.patch("/api/v1/profile", {"phone": thiefs_phone, "password": "a guess at the password"})
    assert guess.status_code == 422 and error_code(guess) == "wrong_password"
    after = thief.get("/api/v1/profile").json()
    assert after["phone"] == phone and after["phone_verified"] is True
    cancel = thief.post(f"/api/v1/orders/{order['id']}/cancel", {"when": "now"})
    assert cancel.status_code == 422 and error_code(cancel) == "verification_required"
    # a thief who has the password too still needs a call to the number on file
    with_password = thief.patch("/api/v1/profile", {"phone": thiefs_phone, "password": anna.password})
    assert with_password.status_code == 422 and error_code(with_password) == "verification_required"
    assert thief.get(f"/api/v1/orders/{order['id']}").json()["status"] == "active"
    assert [e for e in anna.get("/api/v1/security/events").json()["items"] if e["kind"] == "phone_changed"] == []

    # the owner moves to a new number: the password, and a call to the old one
    new_phone = f"+48601{uuid.uuid4().int % 1_000_000:06d}"
    proof = call_me(anna, phone, "operation", "change_phone")
    moved = anna.patch("/api/v1/profile", {"phone": new_phone, "password": anna.password, "verification_id": proof})
    assert moved.status_code == 200, moved.text
    assert moved.json()["phone"] == new_phone and moved.json()["phone_verified"] is False
    [event] = [e for e in anna.get("/api/v1/security/events").json()["items"] if e["kind"] == "phone_changed"]
    assert event["details"] == {"phone": f"+48 … {new_phone[-3:]}"} and event["ip"] == "127.0.0.1"
    mail = stack.url("mail_http")
    [told] = eventually(lambda: [m for m in requests.get(f"{mail}/messages", params={"to": anna.profile["email"]},
                                                        timeout=5).json()["items"]
                                 if m["subject"] == "Your mobile phone number has been changed"])
    assert new_phone[-3:] in told["text"] and new_phone not in told["text"]
