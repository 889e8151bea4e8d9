"""The verification service over RPC, on a real broker and database, calling two telephony stand-ins.

What another Introserv system sees: the RPC answers and refusals (``exc_args[0]`` is the
code), the events it can listen to, and what the stand-ins say was dialled.
"""
from __future__ import annotations

import time
import uuid

import eventlet
import pytest
import requests

from deploy.dev import StandIn
from deploy.ports import free_port
from services.common.errors import DomainError
from services.common.events import handle_event
from services.verification.service import VerificationService

HEARD: eventlet.queue.Queue = eventlet.queue.Queue()


class Listener:
    """Another service that reacts to verification's events (as profile does)."""

    name = "verification_listener"

    @handle_event("verification", "phone_verified")
    def on_phone_verified(self, event):
        HEARD.put(("phone_verified", event))

    @handle_event("verification", "operation_verified")
    def on_operation_verified(self, event):
        HEARD.put(("operation_verified", event))


@pytest.fixture(scope="module")
def gateways():
    urls, stand_ins = {}, []
    for name in ("primary", "fallback"):
        port = free_port()
        urls[name] = f"http://127.0.0.1:{port}"
        stand_ins.append(StandIn("deploy.dev.telephony", ["--port", str(port), "--name", name, "--hold-seconds", "5"],
                                 f"{urls[name]}/health"))
    with stand_ins[0], stand_ins[1]:
        yield urls


@pytest.fixture
def telephony(gateways):
    for url in gateways.values():
        requests.delete(f"{url}/calls", timeout=5)
        requests.put(f"{url}/control", json={"mode": "ok"}, timeout=5)
    yield Telephony(gateways)
    for url in gateways.values():
        requests.put(f"{url}/control", json={"mode": "ok"}, timeout=5)


class Telephony:
    def __init__(self, urls):
        self.urls = urls

    def calls(self, gateway, to):
        return requests.get(f"{self.urls[gateway]}/calls", params={"to": to}, timeout=5).json()["items"]

    def mode(self, gateway, mode):
        requests.put(f"{self.urls[gateway]}/control", json={"mode": mode}, timeout=5).raise_for_status()


@pytest.fixture
def verification(run_service, telephony, rpc_as):
    """The verification service as the gateway calls it."""
    while not HEARD.empty():
        HEARD.get()
    run_service(Listener)
    run_service(VerificationService, TELEPHONY_PRIMARY_URL=telephony.urls["primary"],
                TELEPHONY_FALLBACK_URL=telephony.urls["fallback"], TELEPHONY_TIMEOUT=1,
                TELEPHONY_BREAKER_FAILURES=3, TELEPHONY_BREAKER_COOL_DOWN_SECONDS=600,
                OUTBOX_POLL_SECONDS=0.2)
    return rpc_as("gateway").verification


def new_phone() -> str:
    return f"+48 600 {uuid.uuid4().int % 1000:03d} {uuid.uuid4().int % 1000:03d}"


def e164(phone: str) -> str:
    return phone.replace(" ", "")


def refusal(call, *args, **kwargs) -> DomainError:
    with pytest.raises(DomainError) as caught:
        call(*args, **kwargs)
    return caught.value


def heard(kind: str, timeout: float = 10.0) -> dict:
    with eventlet.Timeout(timeout):
        got, event = HEARD.get()
    assert got == kind
    return event


def test_flash_call_over_rpc_is_verified_with_the_callers_last_digits_and_announced(verification, telephony):
    account, phone = str(uuid.uuid4()), new_phone()
    started = verification.start(account, phone, "flash_call", "phone")
    [call] = telephony.calls("primary", e164(phone))
    assert started["gateway"] == "primary" and call["channel"] == "flash_call"

    assert verification.check(started["id"], call["caller_id"][-4:])["status"] == "verified"
    event = heard("phone_verified")
    assert event["account_id"] == account and event["phone"] == e164(phone)
    assert event["verification_id"] == started["id"] and event["event_id"]


def test_voice_and_sms_over_rpc(verification, telephony, rpc_as):
    account = str(uuid.uuid4())
    voice_phone, sms_phone = new_phone(), new_phone()
    voice = verification.start(account, voice_phone, "voice", "phone")
    sms = verification.start(account, sms_phone, "sms", "operation", "change_password")
    spoken = telephony.calls("primary", e164(voice_phone))[0]["spoken_code"]
    text = telephony.calls("primary", e164(sms_phone))[0]["text"]
    code = next(word for word in text.replace(".", " ").split() if word.isdigit() and len(word) == 4)
    assert verification.check(voice["id"], spoken)["status"] == "verified"
    assert verification.check(sms["id"], code)["status"] == "verified"
    assert heard("phone_verified")["verification_id"] == voice["id"]
    assert heard("operation_verified")["operation"] == "change_password"
    proof = rpc_as("profile").verification.use_operation_proof(account, sms["id"], "change_password")
    assert proof["phone"] == e164(sms_phone)


@pytest.mark.parametrize("mode", ["fail", "timeout"])
def test_broken_primary_sends_the_same_attempt_to_the_fallback(verification, telephony, mode):
    telephony.mode("primary", mode)
    phone = new_phone()
    started_at = time.monotonic()
    started = verification.start(str(uuid.uuid4()), phone, "flash_call", "phone")
    assert time.monotonic() - started_at < 5.0
    assert started["gateway"] == "fallback"
    [call] = telephony.calls("fallback", e164(phone))
    assert telephony.calls("primary", e164(phone)) == []
    assert verification.check(started["id"], call["caller_id"][-4:])["status"] == "verified"


def test_both_gateways_failing_tells_the_caller_to_contact_support(verification, telephony):
    telephony.mode("primary", "fail")
    telephony.mode("fallback", "timeout")
    error = refusal(verification.start, str(uuid.uuid4()), new_phone(), "voice", "phone")
    assert error.args[0] == "verification_unavailable" and "contact support" in error.args[1]


def test_after_three_primary_failures_the_primary_is_skipped(verification, telephony):
    telephony.mode("primary", "fail")
    for _ in range(3):
        assert verification.start(str(uuid.uuid4()), new_phone(), "voice", "phone")["gateway"] == "fallback"
    telephony.mode("primary", "ok")
    phone = new_phone()
    assert verification.start(str(uuid.uuid4()), phone, "voice", "phone")["gateway"] == "fallback"
    assert telephony.calls("primary", e164(phone)) == []


def test_refusals_arrive_as_codes_another_system_can_act_on(verification, telephony):
    account, phone = str(uuid.uuid4()), new_phone()
    assert refusal(verification.start, account, "+7 912 345 67 89", "voice", "phone").args[0] == "phone_not_allowed"
    assert refusal(verification.start, account, None, "voice", "phone").args[0] == "phone_missing"
    for _ in range(3):
        verification.start(account, phone, "voice", "phone")
    limited = refusal(verification.start, str(uuid.uuid4()), phone, "voice", "phone")
    assert limited.args[0] == "rate_limited" and limited.details["retry_after"] > 0
    assert refusal(verification.check, str(uuid.uuid4()), "1234").args[0] == "not_found"
    assert len(telephony.calls("primary", e164(phone))) == 3
