"""Refusals in the customer's language over HTTP (issue 18, item 2): Accept-Language, else the profile's."""
from __future__ import annotations

import uuid

import pytest

POLISH = {"Accept-Language": "pl-PL,pl;q=0.9,en;q=0.5"}
ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}


def bad_registration():
    login = f"l{uuid.uuid4().hex[:10]}"
    return {"login": login, "password": "a long and unusual passphrase 7", "email": f"{login}@example.com",
            "first_name": "", "last_name": "x" * 300, "city": "Kraków", "address": "ul. Długa 1", "country": "PL",
            "favourite": "blue"}


@pytest.mark.parametrize("headers, message, required, too_long", [
    (POLISH, "Popraw zaznaczone pola.", "Wpisz od 1 do 100 znaków.", "Wpisz od 1 do 100 znaków."),
    (ENGLISH, "The request is not valid.", "must be 1 to 100 characters", "must be 1 to 100 characters"),
])
def test_field_messages_follow_accept_language_and_carry_stable_codes(api, headers, message, required, too_long):
    refused = api.post("/api/v1/accounts", bad_registration(), headers=headers)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "validation_error" and error["message"] == message
    assert error["fields"]["first_name"] == [required] and error["fields"]["last_name"] == [too_long]
    # The codes are the same whatever the language: the panel says them in its own words.
    assert error["field_codes"]["last_name"] == [{"code": "length", "params": {"min": 1, "max": 100}}]
    assert error["field_codes"]["favourite"] == [{"code": "unknown_field", "params": {}}]
    assert set(error) == {"code", "message", "fields", "details", "field_codes"}


def test_a_polish_customer_hears_polish_without_asking_and_english_when_asking(customer):
    anna = customer(language="pl")
    emptied = anna.patch("/api/v1/profile", {"last_name": ""})
    assert emptied.status_code == 400
    assert emptied.json()["error"]["message"] == "Popraw zaznaczone pola."
    assert emptied.json()["error"]["fields"]["last_name"] == ["Wpisz od 1 do 100 znaków."]
    assert emptied.json()["error"]["field_codes"]["last_name"] == [{"code": "length", "params": {"min": 1, "max": 100}}]
    asked = anna.patch("/api/v1/profile", {"last_name": ""}, headers=ENGLISH)
    assert asked.json()["error"]["fields"]["last_name"] == ["must be 1 to 100 characters"]


def test_an_english_customer_hears_english_and_polish_when_the_browser_asks(customer):
    john = customer(language="en")
    mismatch = {"current_password": john.password, "new_password": "another long passphrase 8",
                "new_password_confirmation": "a different passphrase 9"}
    english = john.put("/api/v1/security/password", mismatch)
    assert english.status_code == 422 and english.json()["error"]["code"] == "password_mismatch"
    assert english.json()["error"]["message"] == "The new password and its confirmation differ."
    polish = john.put("/api/v1/security/password", mismatch, headers=POLISH)
    assert polish.json()["error"]["message"] == "Nowe hasło i jego powtórzenie się różnią."
    assert polish.json()["error"]["fields"]["new_password_confirmation"] == ["Hasła się różnią."]
    assert polish.json()["error"]["field_codes"]["new_password_confirmation"] == [
        {"code": "password_mismatch", "params": {}}]


def test_an_unknown_order_and_an_unknown_path_are_not_found_in_both_languages(customer, api):
    anna = customer(language="pl")
    order = anna.get(f"/api/v1/orders/{uuid.uuid4()}")
    assert order.status_code == 404 and order.json()["error"]["message"] == "Nie ma takiego zamówienia."
    assert anna.get(f"/api/v1/orders/{uuid.uuid4()}", headers=ENGLISH).json()["error"]["message"] == "No such order."
    nowhere = api.get("/api/v1/nowhere", headers=POLISH)
    assert nowhere.status_code == 404 and nowhere.json()["error"]["message"] == "Nie znaleziono."
    assert nowhere.json()["error"]["field_codes"] == {}


def test_a_wrong_password_at_login_is_said_in_the_language_asked_for(api, customer):
    anna = customer(language="pl")
    login = anna.profile["login"]
    polish = api.post("/api/v1/sessions", {"login": login, "password": "not the password at all"}, headers=POLISH)
    assert polish.status_code == 401 and polish.json()["error"]["message"] == "Login lub hasło są nieprawidłowe."
    # Before login nobody is known: without Accept-Language the answer is English.
    plain = api.post("/api/v1/sessions", {"login": login, "password": "not the password at all"})
    assert plain.json()["error"]["message"] == "The login or the password is wrong."


VPS = {"plan_id": "vps-s", "period_months": 1, "fields": {"hostname": "web1.example.com", "os_template": "debian-12"}}
POSTAL = {"line1": "ul. Prosta 1", "city": "Warszawa", "postcode": "00-001", "country": "PL"}


def ordered(customer, payments, language: str):
    """A customer of ``language`` with a paid VPS order; (the customer's Api, the order)."""
    buyer = customer(language=language, postal_address=POSTAL)
    payments.ledger.credit_payment(buyer.profile["id"], {"amount": "200.00", "currency": "EUR"},
                                   f"pay-{uuid.uuid4()}", "bank")
    order = buyer.post("/api/v1/orders", VPS, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert order.status_code == 201, order.text
    return buyer, order.json()


def test_a_polish_customers_transactions_and_invoice_lines_are_written_in_polish(customer, payments):
    anna, order = ordered(customer, payments, "pl")
    items = anna.get("/api/v1/balance/transactions").json()["items"]
    assert [item["description"] for item in items] == ["VPS S, 1 mies.", "Wpłata"]
    invoice = anna.get(f"/api/v1/invoices/{items[0]['invoice_id']}").json()
    assert [line["description"] for line in invoice["lines"]] == ["VPS S, 1 mies."]
    renewed = anna.post(f"/api/v1/orders/{order['id']}/renew", {"period_months": 1},
                        headers={"Idempotency-Key": str(uuid.uuid4())})
    assert renewed.status_code == 200, renewed.text
    assert anna.get("/api/v1/balance/transactions").json()["items"][0]["description"] == "VPS S, odnowienie na 1 mies."
    # The invoice keeps the language of its issue: switching the profile to English changes nothing in it.
    assert anna.patch("/api/v1/profile", {"language": "en"}).status_code == 200
    again = anna.get(f"/api/v1/invoices/{items[0]['invoice_id']}").json()
    assert [line["description"] for line in again["lines"]] == ["VPS S, 1 mies."]


def test_an_english_customers_lines_stay_english_and_a_quote_follows_the_language(customer, payments):
    john, order = ordered(customer, payments, "en")
    items = john.get("/api/v1/balance/transactions").json()["items"]
    assert [item["description"] for item in items] == ["VPS S, 1 months", "Payment received"]
    english = john.get(f"/api/v1/orders/{order['id']}/change-plan/quote?plan_id=vps-m")
    polish = john.get(f"/api/v1/orders/{order['id']}/change-plan/quote?plan_id=vps-m", headers=POLISH)
    assert english.status_code == polish.status_code == 200, english.text
    assert english.json()["lines"][0]["description"].startswith("Upgrade from VPS S to VPS M: ")
    assert polish.json()["lines"][0]["description"].startswith("Zmiana na wyższy plan z VPS S na VPS M: ")
    assert polish.json()["charge"] == english.json()["charge"]


def test_a_renewal_quote_follows_the_language(customer, payments):
    john, order = ordered(customer, payments, "en")
    english = john.get(f"/api/v1/orders/{order['id']}/renew/quote?period_months=1")
    polish = john.get(f"/api/v1/orders/{order['id']}/renew/quote?period_months=1", headers=POLISH)
    assert english.status_code == polish.status_code == 200, english.text
    assert [line["description"] for line in english.json()["lines"]] == ["VPS S, renewal for 1 months"]
    assert [line["description"] for line in polish.json()["lines"]] == ["VPS S, odnowienie na 1 mies."]
    assert polish.json()["charge"] == english.json()["charge"]
