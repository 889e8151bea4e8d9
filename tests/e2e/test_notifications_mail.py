"""Mail over the whole stack: what a customer's actions put in the mail stand-in, and the sent list."""
from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
import requests

from tests.support import error_code, eventually

pytestmark = pytest.mark.e2e

POSTAL = {"line1": "ul. Prosta 1", "city": "Warszawa", "postcode": "00-001", "country": "PL"}


@pytest.fixture(scope="module")
def mailbox(stack):
    url = stack.url("mail_http")

    def to(address):
        return requests.get(f"{url}/messages", params={"to": address}, timeout=5).json()["items"]
    return to


def sent_list(me, **query):
    response = me.get("/api/v1/notifications/sent", params=query)
    assert response.status_code == 200, response.text
    return response.json()


def order_form(plan):
    fields = {}
    for field in plan["required_fields"]:
        fields[field["name"]] = field["options"][0] if field["type"] == "choice" else "srv-1.example.com"
    return fields


def test_placing_an_order_mails_the_invoices_address_once(customer, payments, mailbox):
    anna = customer(postal_address=POSTAL)
    billing = f"billing-{uuid.uuid4().hex[:8]}@firma.example"
    saved = anna.put("/api/v1/profile/notifications", {"emails": {"invoices": billing}})
    assert saved.status_code == 200, saved.text
    time.sleep(1)  # money mail is addressed from the notifier's copy, which profile's event updates (README)
    payments.ledger.credit_payment(anna.profile["id"], {"amount": "50.00", "currency": "EUR"}, f"pay-{uuid.uuid4()}",
                              "P-1", "blik")
    plan = next(p for p in anna.get("/api/v1/plans?kind=vps").json()["items"] if p["id"] == "vps-s")
    placed = anna.post("/api/v1/orders", {"plan_id": plan["id"], "period_months": 1, "fields": order_form(plan)},
                       headers={"Idempotency-Key": f"order-{uuid.uuid4()}"})
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]

    def order_mail():
        return [m for m in mailbox(billing) if order_id in m["text"] and "VPS S" in m["subject"] + m["text"]]
    eventually(order_mail, timeout=30)
    time.sleep(3)  # several sender ticks: a second copy would have arrived by now
    subjects = Counter(m["subject"] for m in mailbox(billing))
    assert subjects and all(count == 1 for count in subjects.values()), subjects
    # The invoice for the order comes with its PDF: the one kept, which the panel downloads too.
    [invoice_mail] = eventually(lambda: [m for m in mailbox(billing) if m["attachments"]], timeout=30)
    assert [a["content_type"] for a in invoice_mail["attachments"]] == ["application/pdf"]
    [invoice] = anna.get("/api/v1/invoices").json()["items"]
    assert invoice["number"] in invoice_mail["subject"]
    download = anna.get(f"/api/v1/invoices/{invoice['id']}/pdf").content
    assert invoice_mail["attachments"][0]["size"] == len(download)
    created = [i for i in sent_list(anna)["items"] if i["kind"] == "order_created"]
    assert [(i["to"], i["state"]) for i in created] == [(billing, "sent")]
    # Order mail never reaches the main address: it only got the registration confirmation.
    assert all(order_id not in m["text"] for m in mailbox(anna.profile["email"]))


def test_a_new_customer_gets_one_confirmation_and_sees_it_in_the_sent_list(customer, mailbox):
    anna = customer(language="pl")
    [mail] = eventually(lambda: mailbox(anna.profile["email"]), timeout=30)
    assert "Dzień dobry" in mail["text"] and "/confirm-email?token=" in mail["text"]
    items = eventually(lambda: [i for i in sent_list(anna)["items"] if i["state"] == "sent"], timeout=30)
    assert [(i["kind"], i["to"], i["subject"]) for i in items] == \
        [("email_confirmation", anna.profile["email"], mail["subject"])]
    assert set(items[0]) == {"id", "at", "kind", "to", "subject", "state", "sent_at"}
    stranger = customer()
    assert all(i["to"] != anna.profile["email"] for i in sent_list(stranger)["items"])


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "abc"}, {"limit": "1.5"}, {"cursor": "forged"},
                                   {"cursor": "x" * 300}, {"unknown": "1"}])
def test_bad_paging_of_the_sent_list_answers_in_the_error_shape(customer, query):
    refused = customer().get("/api/v1/notifications/sent", params=query)
    assert refused.status_code == 400 and error_code(refused) == "validation_error"


def test_the_sent_list_needs_a_session(api):
    assert error_code(api.get("/api/v1/notifications/sent")) == "unauthenticated"
