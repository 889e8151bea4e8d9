"""Phone verification over HTTP against the whole stack and its telephony stand-ins (issue 8).

The customer presses "Verify", the stand-in says what it dialled (the caller id of a flash
call, the code a robot spoke, the SMS text), and the customer types the digits.
"""
from __future__ import annotations

import json
import re
import time
import uuid

import pytest
import requests

from tests.support import error_code

START = "/api/v1/verifications"


def check_path(verification_id: str) -> str:
    return f"/api/v1/verifications/{verification_id}/check"


def mobile() -> str:
    return f"+48600{uuid.uuid4().int % 1_000_000:06d}"


def landline() -> str:
    return f"+4822{uuid.uuid4().int % 10_000_000:07d}"


@pytest.fixture
def telephony(stack):
    urls = {"primary": stack.url("telephony_primary"), "fallback": stack.url("telephony_fallback")}

    class Telephony:
        def last_call(self, gateway, to):
            items = requests.get(f"{urls[gateway]}/calls", params={"to": to}, timeout=5).json()["items"]
            return items[0] if items else None

        def mode(self, gateway, mode):
            requests.put(f"{urls[gateway]}/control", json={"mode": mode}, timeout=5).raise_for_status()

    yield Telephony()
    for url in urls.values():
        requests.put(f"{url}/control", json={"mode": "ok"}, timeout=5)


def wrong(code: str) -> str:
    return "0000" if code != "0000" else "1111"


def test_flash_call_verifies_the_profiles_phone_by_the_callers_last_four_digits(customer, telephony):
    phone = mobile()
    anna = customer(phone=phone)
    started = anna.post(START, {"channel": "flash_call", "purpose": "phone"})
    assert started.status_code == 201, started.text
    body = started.json()
    assert {"id", "channel", "gateway", "expires_at"} <= set(body)
    assert body["channel"] == "flash_call" and body["gateway"] == "primary"
    assert body["expires_at"].endswith("Z")
    code = telephony.last_call("primary", phone)["caller_id"][-4:]

    someone_else = customer(phone=mobile())
    assert someone_else.post(check_path(body["id"]), {"code": code}).status_code == 404

    missed = anna.post(check_path(body["id"]), {"code": wrong(code)})
    assert missed.status_code == 422 and error_code(missed) == "wrong_code"
    assert missed.json()["error"]["details"]["attempts_left"] == 4
    assert code not in missed.text

    verified = anna.post(check_path(body["id"]), {"code": code})
    assert verified.status_code == 200 and verified.json()["status"] == "verified"
    deadline = time.monotonic() + 10
    while not anna.get("/api/v1/profile").json()["phone_verified"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert anna.get("/api/v1/profile").json()["phone_verified"] is True


def test_landline_hears_a_voice_code_and_cannot_take_a_flash_call(customer, telephony):
    phone = landline()
    anna = customer(phone=phone)
    refused = anna.post(START, {"channel": "flash_call", "purpose": "phone"})
    assert refused.status_code == 422 and error_code(refused) == "channel_not_supported"
    assert refused.json()["error"]["details"]["channels"] == ["voice"]
    started = anna.post(START, {"channel": "voice", "purpose": "phone"})
    assert started.status_code == 201, started.text
    spoken = telephony.last_call("primary", phone)["spoken_code"]
    assert anna.post(check_path(started.json()["id"]), {"code": spoken}).status_code == 200


def test_sms_code_confirms_an_operation(customer, telephony):
    phone = mobile()
    anna = customer(phone=phone)
    started = anna.post(START, {"channel": "sms", "purpose": "operation"})
    assert started.status_code == 201, started.text
    code = re.search(r"\b(\d{4})\b", telephony.last_call("primary", phone)["text"]).group(1)
    assert anna.post(check_path(started.json()["id"]), {"code": code}).json()["status"] == "verified"


def test_a_failing_primary_falls_back_and_both_failing_means_contact_support(customer, telephony):
    phone = mobile()
    anna = customer(phone=phone)
    telephony.mode("primary", "timeout")
    started = anna.post(START, {"channel": "flash_call", "purpose": "phone"})
    assert started.status_code == 201, started.text
    assert started.json()["gateway"] == "fallback"
    code = telephony.last_call("fallback", phone)["caller_id"][-4:]
    assert anna.post(check_path(started.json()["id"]), {"code": code}).status_code == 200

    telephony.mode("primary", "fail")
    telephony.mode("fallback", "fail")
    down = anna.post(START, {"channel": "voice", "purpose": "phone"})
    assert down.status_code == 503 and error_code(down) == "verification_unavailable"
    assert "contact support" in down.json()["error"]["message"]

    telephony.mode("primary", "ok")
    telephony.mode("fallback", "ok")
    again = anna.post(START, {"channel": "voice", "purpose": "phone"})
    assert again.status_code == 201 and again.json()["gateway"] == "primary"


def test_code_expires_after_five_minutes_and_starts_are_limited(customer, telephony, move_time):
    phone = mobile()
    anna = customer(phone=phone)
    started = anna.post(START, {"channel": "flash_call", "purpose": "phone"}).json()
    code = telephony.last_call("primary", phone)["caller_id"][-4:]
    move_time(minutes=5, seconds=1)
    expired = anna.post(check_path(started["id"]), {"code": code})
    assert expired.status_code == 410 and error_code(expired) == "verification_expired"

    for _ in range(2):
        assert anna.post(START, {"channel": "flash_call", "purpose": "phone"}).status_code == 201
    limited = anna.post(START, {"channel": "flash_call", "purpose": "phone"})
    assert limited.status_code == 429 and error_code(limited) == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0


@pytest.mark.parametrize("body", [
    {"channel": "fax", "purpose": "phone"},
    {"channel": "voice"},
    {"channel": "voice", "purpose": "phone", "phone": "+48600100200"},
    {"channel": 1.5, "purpose": "phone"},
    {"channel": "voice" * 100_000, "purpose": "phone"},
    ["voice", "phone"],
])
def test_malformed_start_is_400_and_calls_nobody(customer, telephony, body):
    phone = mobile()
    anna = customer(phone=phone)
    refused = anna.post(START, body)
    assert refused.status_code == 400 and error_code(refused) == "validation_error"
    assert telephony.last_call("primary", phone) is None


def test_malformed_check_and_missing_phone(customer, telephony):
    no_phone = customer()
    missing = no_phone.post(START, {"channel": "voice", "purpose": "phone"})
    assert missing.status_code == 422 and error_code(missing) == "phone_missing"

    phone = mobile()
    anna = customer(phone=phone)
    started = anna.post(START, {"channel": "voice", "purpose": "phone"}).json()
    for body in ({"code": 1234}, {"code": "12"}, {"code": "1234", "extra": 1}, {}):
        refused = anna.post(check_path(started["id"]), body)
        assert refused.status_code == 400 and error_code(refused) == "validation_error", body
    broken = anna.request("POST", check_path(started["id"]), data=b"{not json",
                          headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and error_code(broken) == "malformed_json"
    spoken = telephony.last_call("primary", phone)["spoken_code"]
    missed = anna.post(check_path(started["id"]), {"code": wrong(spoken)})
    assert json.loads(missed.text)["error"]["details"] == {"attempts_left": 4}
