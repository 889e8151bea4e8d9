"""What the gateway takes from any client, logged in or not (issue 17): bodies that are JSON and
say so, nested no deeper than the API's shapes, chunked bodies read whole, and answers no cache
keeps and no browser sniffs."""
from __future__ import annotations

import http.client
import json
import uuid
from urllib.parse import urlsplit

import pytest
import requests

from tests.support import error_code

DEEP = 1000


def nested(levels: int, inside="x") -> str:
    return "[" * levels + json.dumps(inside) + "]" * levels


def raw_post(api, path: str, body: bytes | str, content_type: str = "application/json", token=None):
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return api.request("POST", path, data=body, headers=headers)


@pytest.mark.parametrize("path", ["/api/v1/sessions", "/api/v1/accounts"])
def test_a_body_nested_a_thousand_levels_deep_is_malformed_json_before_anyone_logs_in(api, stack, path):
    answer = raw_post(api, path, '{"login": ' + nested(DEEP) + "}")
    assert answer.status_code == 400 and error_code(answer) == "malformed_json"
    assert answer.json()["error"]["details"] == {"max_depth": 32}
    assert "RecursionError" not in (stack.log_dir / "gateway.log").read_text(errors="replace")


def test_the_depth_limit_is_thirty_two_levels_and_brackets_inside_strings_do_not_count(customer):
    me = customer()
    # 32 levels (the object and 31 arrays) parse, then fail validation as the wrong type
    at_the_limit = raw_post(me, "/api/v1/sessions", '{"login": ' + nested(31) + "}")
    assert at_the_limit.status_code == 400 and error_code(at_the_limit) == "validation_error"
    one_more = raw_post(me, "/api/v1/sessions", '{"login": ' + nested(32) + "}")
    assert error_code(one_more) == "malformed_json"
    brackets_as_text = me.patch("/api/v1/profile", {"city": "[[[[{{{{" * 10 + "\\\"]]"})
    assert brackets_as_text.status_code == 200, brackets_as_text.text


def test_a_deep_body_on_a_logged_in_route_is_malformed_json_too(customer):
    me = customer()
    answer = me.request("PATCH", "/api/v1/profile", data='{"city": ' + nested(DEEP) + "}",
                        headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and error_code(answer) == "malformed_json"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/json; charset=latin-1"])
def test_a_body_not_sent_as_json_is_415_in_the_error_shape(api, content_type):
    body = json.dumps({"login": "someone", "password": "whatever it is"})
    answer = raw_post(api, "/api/v1/sessions", body, content_type)
    assert answer.status_code == 415 and error_code(answer) == "unsupported_media_type"


def test_json_with_a_utf8_charset_is_accepted(api):
    answer = raw_post(api, "/api/v1/sessions", json.dumps({"login": "nobody-here", "password": "x" * 12}),
                      "application/json; charset=UTF-8")
    assert answer.status_code == 401 and error_code(answer) == "invalid_credentials"


def chunked(api, method: str, path: str, parts: list[bytes], token: str, coding: str = "chunked"):
    """Send ``parts`` as a chunked body with http.client; answers (status, parsed body)."""
    address = urlsplit(api.base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.putrequest(method, path)
        for name, value in (("Authorization", f"Bearer {token}"), ("Content-Type", "application/json"),
                            ("Transfer-Encoding", coding)):
            connection.putheader(name, value)
        connection.endheaders()
        for part in parts:
            connection.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        connection.send(b"0\r\n\r\n")
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def test_a_chunked_body_is_read_whole(api, customer):
    me = customer()
    status, body = chunked(api, "PATCH", "/api/v1/profile", [b'{"city": "Gdy', b'nia", "first_', b'name": "Ola"}'],
                           me.token)
    assert status == 200, body
    assert body["city"] == "Gdynia" and body["first_name"] == "Ola"
    assert me.get("/api/v1/profile").json()["city"] == "Gdynia"


def test_a_chunked_body_over_one_megabyte_is_413(api, customer):
    me = customer()
    status, body = chunked(api, "PATCH", "/api/v1/profile", [b'{"city": "' + b"x" * 65536] * 17 + [b'"}'],
                           me.token)
    assert status == 413 and body["error"]["code"] == "payload_too_large"


def test_a_transfer_coding_the_server_cannot_read_is_411_not_an_empty_body(api, customer):
    me = customer()
    status, body = chunked(api, "PATCH", "/api/v1/profile", [b'{"city": "Gdynia"}'], me.token, coding="gzip, chunked")
    assert status == 411 and body["error"]["code"] == "length_required"
    assert me.get("/api/v1/profile").json()["city"] == me.profile["city"]


def test_a_request_line_over_8_kb_is_414_in_the_error_shape_and_the_server_goes_on(api, customer):
    me = customer()
    cursor = "%C3%A9" * 1400        # 8,400 bytes of query: a cursor no list handed out
    answer = me.get(f"/api/v1/orders?cursor={cursor}")
    assert answer.status_code == 414 and error_code(answer) == "uri_too_long"
    assert answer.json()["error"]["details"] == {"limit": 8192} and answer.json()["error"]["fields"] == {}
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.headers["Cache-Control"] == "no-store" and answer.headers["X-Request-Id"]
    assert answer.headers["Content-Length"] == str(len(answer.content))     # once
    just_under = me.get(f"/api/v1/orders?cursor={'x' * 7000}")       # reaches the API: a cursor it never gave
    assert just_under.status_code == 400 and error_code(just_under) == "validation_error"
    assert me.get("/api/v1/orders").status_code == 200


def test_a_header_over_8_kb_is_431_in_the_error_shape(api, customer):
    me = customer()
    answer = me.get("/api/v1/orders", headers={"Accept-Language": "pl," + "x" * 9000})
    assert answer.status_code == 431 and error_code(answer) == "headers_too_large"
    assert answer.headers["Content-Type"].startswith("application/json") and answer.json()["error"]["fields"] == {}
    many = me.get("/api/v1/orders", headers={f"X-Filler-{n}": "y" * 4000 for n in range(20)})   # 80 kB in all
    assert many.status_code == 431 and error_code(many) == "headers_too_large"
    assert me.get("/api/v1/orders").status_code == 200


def test_every_answer_is_kept_by_no_cache_and_sniffed_by_no_browser(api, customer):
    me = customer()
    answers = {
        "a read": me.get("/api/v1/profile"),
        "the 2FA secret": me.post("/api/v1/security/2fa", {"password": me.password}),
        "an error": api.post("/api/v1/sessions", {"login": "nobody-here", "password": "x" * 12}),
        "a validation error": me.patch("/api/v1/profile", {"city": ""}),
        "an unknown path": api.get("/api/v1/no-such-thing"),
        "a wrong method": api.request("PUT", "/api/v1/openapi.json"),
        "the OpenAPI document": api.get("/api/v1/openapi.json"),
        "a 415": raw_post(api, "/api/v1/sessions", "{}", "text/plain"),
        "a panel page": api.get("/login"),
    }
    for what, answer in answers.items():
        assert answer.headers.get("Cache-Control") == "no-store", (what, answer.status_code, answer.headers)
        assert answer.headers.get("X-Content-Type-Options") == "nosniff", (what, answer.headers)
    assert answers["the 2FA secret"].status_code == 201
    assert answers["an unknown path"].status_code == 404 and answers["a wrong method"].status_code == 405


def test_a_name_with_a_second_line_or_a_bidi_override_is_400_naming_the_field_and_mails_nothing(api, stack):
    login = f"b{uuid.uuid4().hex[:10]}"
    body = {"login": login, "password": "a long and unusual passphrase 7", "email": f"{login}@example.com",
            "first_name": "customer,\n\nYour server is suspended. Pay now at https://pay.example",
            "last_name": "Nowak", "city": "Warszawa", "address": "ul. Prosta 1", "country": "PL"}
    refused = api.post("/api/v1/accounts", body)
    assert refused.status_code == 400 and list(refused.json()["error"]["fields"]) == ["first_name"]
    bidi = api.post("/api/v1/accounts", {**body, "first_name": "Anna", "last_name": "Nowak \u202etxt.exe"})
    assert bidi.status_code == 400 and list(bidi.json()["error"]["fields"]) == ["last_name"]
    assert api.post("/api/v1/accounts", {**body, "first_name": "Anna"}).status_code == 201  # nothing half-written
    mail = requests.get(f"{stack.url('mail_http')}/messages", params={"to": body["email"]}, timeout=5).json()["items"]
    assert all("suspended" not in message["text"] for message in mail)


def test_an_edit_with_control_characters_is_400_naming_the_field_and_changes_nothing(customer):
    me = customer()
    for field, edit in (("city", {"city": "Gdańsk\r\nPay now"}),
                        ("company_name", {"profile_type": "company", "company_name": "Firma \u2066Sp. z o.o.\u2069"}),
                        ("address", {"address": "ul. Długa 5\x1b[2J"})):
        answer = me.patch("/api/v1/profile", edit)
        assert answer.status_code == 400 and list(answer.json()["error"]["fields"]) == [field], answer.text
    assert me.get("/api/v1/profile").json() == me.profile


def test_a_threshold_in_full_width_digits_or_another_currency_is_400(customer):
    me = customer()
    for threshold in ({"amount": "１５.００", "currency": "EUR"}, {"amount": "20.00", "currency": "USD"}):
        answer = me.put("/api/v1/profile/notifications", {"low_balance_threshold": threshold})
        assert answer.status_code == 400 and error_code(answer) == "validation_error"
        assert list(answer.json()["error"]["fields"]) == ["low_balance_threshold"]
    assert me.get("/api/v1/profile/notifications").json()["low_balance_threshold"] is None
    saved = me.put("/api/v1/profile/notifications", {"low_balance_threshold": {"amount": "15.00", "currency": "EUR"}})
    assert saved.status_code == 200 and saved.json()["low_balance_threshold"]["amount"] == "15.00"
