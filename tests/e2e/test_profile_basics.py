"""Registration, login and personal data over HTTP against the whole stack (issue 2)."""
from __future__ import annotations

import time
import uuid

import pytest
from tests.support import error_code


def registration(**overrides):
    login = overrides.pop("login", f"u{uuid.uuid4().hex[:10]}")
    return {"login": login, "password": "a long and unusual passphrase 7", "email": f"{login}@example.com",
            "first_name": "Łukasz", "last_name": "Żółć", "city": "Kraków", "address": "ul. Długa 1",
            "country": "pl", **overrides}


@pytest.fixture
def rpc(staff):
    return staff


def test_polish_names_round_trip_through_registration_and_profile(api):
    body = registration(phone="+48 601 234 567")
    created = api.post("/api/v1/accounts", body)
    assert created.status_code == 201, created.text
    profile = created.json()
    assert profile["first_name"] == "Łukasz" and profile["last_name"] == "Żółć"
    assert profile["country"] == "PL" and profile["phone"] == "+48601234567"
    assert profile["email_confirmed"] is False and profile["phone_verified"] is False
    assert profile["payments_blocked"] is False and profile["company_verification"] == "none"
    assert profile["login"] == body["login"]
    session = api.post("/api/v1/sessions", {"login": body["login"].upper(), "password": body["password"]})
    assert session.status_code == 201
    me = api.as_customer(session.json()["token"]).get("/api/v1/profile")
    assert me.status_code == 200 and me.json() == profile


def test_login_is_unique_and_case_insensitive(api):
    body = registration()
    assert api.post("/api/v1/accounts", body).status_code == 201
    again = api.post("/api/v1/accounts", registration(login=body["login"].upper()))
    assert again.status_code == 409 and error_code(again) == "login_taken"


def test_weak_password_is_refused_and_nothing_is_created(api):
    body = registration(password="password123")
    refused = api.post("/api/v1/accounts", body)
    assert refused.status_code == 422 and error_code(refused) == "weak_password"
    retry = api.post("/api/v1/accounts", {**body, "password": "a long and unusual passphrase 7"})
    assert retry.status_code == 201


@pytest.mark.parametrize("change, field", [
    ({"first_name": 5}, "first_name"),
    ({"country": "XX"}, "country"),
    ({"email": "not-an-address"}, "email"),
    ({"phone": "601 234 567"}, "phone"),
    ({"city": "x" * 10_000}, "city"),
    ({"unexpected": "field"}, "unexpected"),
    ({"postal_address": {"line1": "a"}}, "postal_address.city"),
])
def test_bad_registration_answers_400_with_the_field(api, change, field):
    response = api.post("/api/v1/accounts", registration(**change))
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert field in response.json()["error"]["fields"]


def test_missing_mandatory_fields_are_each_named(api):
    response = api.post("/api/v1/accounts", {"login": "someone"})
    assert response.status_code == 400
    assert {"password", "email", "first_name", "last_name", "city", "address", "country"} <= set(
        response.json()["error"]["fields"])


def test_malformed_and_oversized_bodies(api):
    bad = api.request("POST", "/api/v1/accounts", data=b'{"login": ', headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and error_code(bad) == "malformed_json"
    not_object = api.post("/api/v1/accounts", [1, 2])
    assert not_object.status_code == 400 and error_code(not_object) == "validation_error"
    huge = api.request("POST", "/api/v1/accounts", data=b" " * (1024 * 1024 + 10),
                       headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and error_code(huge) == "payload_too_large"


def test_sql_like_strings_are_just_text(customer):
    me = customer()
    sly = "Robert'); DROP TABLE accounts;--"
    edited = me.patch("/api/v1/profile", {"last_name": sly})
    assert edited.status_code == 200 and edited.json()["last_name"] == sly
    assert me.get("/api/v1/profile").json()["last_name"] == sly


def test_wrong_password_and_unknown_login_get_the_same_answer(api, customer):
    me = customer()
    wrong = api.post("/api/v1/sessions", {"login": me.profile["login"], "password": "not the password at all"})
    unknown = api.post("/api/v1/sessions", {"login": f"nobody{uuid.uuid4().hex[:6]}", "password": "whatever it is"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert error_code(wrong) == "invalid_credentials"


def test_profile_edit_keeps_login_email_and_country(customer):
    me = customer()
    for field, value in (("login", "other"), ("email", "new@example.com"), ("country", "DE")):
        response = me.patch("/api/v1/profile", {field: value})
        assert response.status_code == 422 and error_code(response) == "field_immutable"
    assert me.get("/api/v1/profile").json() == me.profile
    emptied = me.patch("/api/v1/profile", {"city": ""})
    assert emptied.status_code == 400 and "city" in emptied.json()["error"]["fields"]
    changed = me.patch("/api/v1/profile", {"city": "Gdańsk", "language": "pl"})
    assert changed.status_code == 200
    assert changed.json()["city"] == "Gdańsk" and changed.json()["language"] == "pl"


def test_a_new_phone_number_is_unverified(customer):
    me = customer(phone="+48601234567")
    changed = me.patch("/api/v1/profile", {"phone": "+48 602 345 678", "password": me.password})
    assert changed.json()["phone"] == "+48602345678" and changed.json()["phone_verified"] is False


def test_company_blocks_payments_until_support_approves(customer, rpc):
    me = customer()
    company = me.patch("/api/v1/profile", {"profile_type": "company", "company_name": "Żółć Sp. z o.o.",
                                           "vat_id": "PL 526-025-02-74"})
    assert company.status_code == 200, company.text
    assert company.json()["company_verification"] == "pending"
    assert company.json()["payments_blocked"] is True
    reviewed = rpc.profile.review_company(me.profile["id"], True, "support:anna")
    assert reviewed["company_verification"] == "verified" and reviewed["payments_blocked"] is False
    assert me.get("/api/v1/profile").json()["payments_blocked"] is False
    renamed = me.patch("/api/v1/profile", {"company_name": "Other Sp. z o.o."})
    assert renamed.json()["company_verification"] == "pending"


def test_company_without_a_name_is_refused(customer):
    me = customer()
    response = me.patch("/api/v1/profile", {"profile_type": "company"})
    assert response.status_code == 400 and "company_name" in response.json()["error"]["fields"]


def test_support_changes_the_country_over_rpc(customer, rpc):
    me = customer()
    changed = rpc.profile.change_country(me.profile["id"], "de", "TICKET-42")
    assert changed["country"] == "DE"
    assert me.get("/api/v1/profile").json()["country"] == "DE"
    assert rpc.profile.find_by_login(me.profile["login"])["country"] == "DE"


def test_rpc_refusals_carry_the_code_in_exc_args(rpc):
    from services.common.errors import DomainError
    with pytest.raises(DomainError) as refused:
        rpc.profile.get("no-such-account")
    assert refused.value.args[0] == "not_found"
    with pytest.raises(DomainError) as bad:
        rpc.profile.change_country(str(uuid.uuid4()), "ZZ", "T-1")
    assert bad.value.args[0] == "validation_error"


def test_sessions_end_on_logout_and_tokens_are_checked(api, customer):
    me = customer()
    other = api.as_customer(api.post("/api/v1/sessions", {"login": me.profile["login"],
                                                           "password": me.password}).json()["token"])
    assert me.delete("/api/v1/sessions/others").status_code == 204
    assert error_code(other.get("/api/v1/profile")) == "unauthenticated"
    assert me.get("/api/v1/profile").status_code == 200
    assert me.delete("/api/v1/sessions/current").status_code == 204
    assert me.get("/api/v1/profile").status_code == 401
    assert api.as_customer("forged-token").get("/api/v1/profile").status_code == 401
    assert api.get("/api/v1/profile").status_code == 401


def test_unknown_route_and_method_answer_in_the_error_shape(api):
    assert error_code(api.get("/api/v1/nothing-here")) == "not_found"
    assert error_code(api.put("/api/v1/profile")) == "method_not_allowed"


def test_openapi_describes_every_route(api):
    document = api.get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert {"/api/v1/accounts", "/api/v1/sessions", "/api/v1/profile", "/health"} <= set(document["paths"])
    assert "Error" in document["components"]["schemas"]


def test_every_service_reports_health(stack):
    import requests
    for name in ("gateway", "profile", "orders", "ledger", "notifier", "verification"):
        body = requests.get(f"{stack.url(name)}/health", timeout=5).json()
        assert body["status"] == "ok", body
        assert body["checks"]["amqp"] == "ok"


def test_a_dead_profile_service_answers_503_fast_and_heals(stack, api, customer):
    me = customer()
    stack.kill("profile")
    try:
        started = time.monotonic()
        response = me.get("/api/v1/profile")
        elapsed = time.monotonic() - started
        assert response.status_code == 503 and error_code(response) == "service_unavailable"
        assert elapsed < 6.5, elapsed
        health = api.get("/health")
        assert health.status_code == 503
        assert health.json()["checks"]["profile"].startswith("failing")
    finally:
        stack.restart("profile")
    assert me.get("/api/v1/profile").status_code == 200
    assert api.get("/health").status_code == 200


def test_a_stolen_session_cannot_guess_the_password_faster_than_the_login_form(customer):
    me = customer()
    guess = {"current_password": "not the password", "new_password": "another long passphrase 8",
             "new_password_confirmation": "another long passphrase 8"}
    answers = [me.put("/api/v1/security/password", guess) for _ in range(6)]
    assert [a.status_code for a in answers[:5]] == [422] * 5
    assert all(error_code(a) == "wrong_password" for a in answers[:5])
    assert answers[5].status_code == 429 and int(answers[5].headers["Retry-After"]) >= 1
