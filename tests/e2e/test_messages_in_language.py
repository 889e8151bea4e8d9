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
