"""The provider adapter and router against two real telephony stand-ins (primary and fallback)."""
import time
from datetime import datetime, timezone

import pytest
import requests

from deploy.dev import StandIn
from deploy.ports import free_port
from services.common.clock import FrozenClock
from services.common.errors import DomainError
from services.verification.domain import CircuitBreaker, code_to_expect
from services.verification.providers import ProviderFailed, ProviderRouter, TelephonyProvider

PHONE = "+48600100200"
TIMEOUT = 1.0  # shorter than production's 2 s to keep the suite quick; one test uses the real value


def _stand_in(name):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    return StandIn("deploy.dev.telephony", ["--port", str(port), "--name", name], f"{base}/health"), base


@pytest.fixture(scope="module")
def stand_ins():
    primary, primary_url = _stand_in("primary")
    fallback, fallback_url = _stand_in("fallback")
    with primary, fallback:
        yield {"primary": primary_url, "fallback": fallback_url}


@pytest.fixture
def urls(stand_ins):
    for url in stand_ins.values():
        requests.delete(f"{url}/calls", timeout=5)
        requests.put(f"{url}/control", json={"mode": "ok"}, timeout=5)
    yield stand_ins
    for url in stand_ins.values():
        requests.put(f"{url}/control", json={"mode": "ok"}, timeout=5)


def provider(urls, name, timeout=TIMEOUT, key="dev"):
    return TelephonyProvider(name, urls[name], key, timeout=timeout)


def router(urls, breaker=None, timeout=TIMEOUT):
    return ProviderRouter(provider(urls, "primary", timeout), provider(urls, "fallback", timeout),
                          breaker or CircuitBreaker(clock=FrozenClock(datetime(2026, 11, 29, tzinfo=timezone.utc))))


def break_gateway(urls, name, mode):
    requests.put(f"{urls[name]}/control", json={"mode": mode}, timeout=5)


def calls(urls, name):
    return requests.get(f"{urls[name]}/calls", params={"to": PHONE}, timeout=5).json()["items"]


# --- the adapter -----------------------------------------------------------------------------

def test_flash_call_result_carries_the_caller_id_whose_last_digits_the_customer_types(urls):
    result = provider(urls, "primary").place(PHONE, "flash_call")
    [call] = calls(urls, "primary")
    assert result.gateway == "primary"
    assert result.caller_id == call["caller_id"]
    assert result.provider_call_id == call["id"]
    assert code_to_expect("flash_call", caller_id=result.caller_id) == call["caller_id"][-4:]


def test_voice_call_result_carries_the_spoken_code(urls):
    result = provider(urls, "primary").place(PHONE, "voice")
    assert result.code == calls(urls, "primary")[0]["spoken_code"]


def test_sms_is_sent_with_our_text(urls):
    provider(urls, "primary").place(PHONE, "sms", text="Introserv verification code: 0427.")
    assert calls(urls, "primary")[0]["text"] == "Introserv verification code: 0427."


def test_wrong_api_key_is_a_provider_failure(urls):
    with pytest.raises(ProviderFailed) as failed:
        provider(urls, "primary", key="stolen").place(PHONE, "voice")
    assert failed.value.status == 401


def test_unreachable_gateway_is_a_provider_failure():
    nobody = TelephonyProvider("primary", f"http://127.0.0.1:{free_port()}", "dev", timeout=TIMEOUT)
    with pytest.raises(ProviderFailed):
        nobody.place(PHONE, "voice")


# --- the router -------------------------------------------------------------------------------

def test_healthy_primary_serves_and_the_fallback_is_not_called(urls):
    assert router(urls).place(PHONE, "flash_call").gateway == "primary"
    assert calls(urls, "fallback") == []


def test_failing_primary_falls_back(urls):
    break_gateway(urls, "primary", "fail")
    result = router(urls).place(PHONE, "flash_call")
    assert result.gateway == "fallback"
    assert result.caller_id == calls(urls, "fallback")[0]["caller_id"]


def test_hanging_primary_falls_back_within_its_timeout_plus_the_fallbacks_answer(urls):
    break_gateway(urls, "primary", "timeout")
    started = time.monotonic()
    result = router(urls).place(PHONE, "voice")
    elapsed = time.monotonic() - started
    assert result.gateway == "fallback"
    assert TIMEOUT <= elapsed < TIMEOUT + 1.5


def test_with_the_production_timeout_a_hanging_primary_still_answers_inside_the_gateways_five_seconds(urls):
    break_gateway(urls, "primary", "timeout")
    started = time.monotonic()
    assert router(urls, timeout=2.0).place(PHONE, "flash_call").gateway == "fallback"
    assert time.monotonic() - started < 5.0


def test_both_gateways_failing_is_verification_unavailable_telling_the_customer_to_contact_support(urls):
    break_gateway(urls, "primary", "fail")
    break_gateway(urls, "fallback", "timeout")
    with pytest.raises(DomainError) as unavailable:
        router(urls).place(PHONE, "flash_call")
    assert unavailable.value.error_code == "verification_unavailable"
    assert unavailable.value.status == 503
    assert "contact support" in unavailable.value.message


def test_open_breaker_skips_the_primary_until_the_cool_down_has_passed(urls):
    clock = FrozenClock(datetime(2026, 11, 29, tzinfo=timezone.utc))
    routing = router(urls, CircuitBreaker(failure_threshold=3, cool_down=60, clock=clock))
    break_gateway(urls, "primary", "fail")
    for _ in range(3):
        assert routing.place(PHONE, "voice").gateway == "fallback"
    break_gateway(urls, "primary", "ok")

    assert routing.place(PHONE, "voice").gateway == "fallback"
    assert calls(urls, "primary") == []

    clock.advance(seconds=60)
    assert routing.place(PHONE, "voice").gateway == "primary"
    assert len(calls(urls, "primary")) == 1
