"""The telephony gateways over HTTP, and the routing between primary and fallback (docs/requirements.md S7).

The provider API is the one in ``deploy/dev/README.md`` (the dev stand-in speaks it):
``POST {base_url}/v1/calls`` with a bearer key and ``{"to", "channel", "text"?}``,
answered 201 with ``{"id", "channel", "caller_id"?, "code"?}``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import requests
import structlog

from services.common.errors import DomainError
from services.common.metrics import VERIFICATION_CALLS, VERIFICATION_SECONDS
from services.verification.domain import FLASH_CALL, SMS, VOICE, CircuitBreaker, code_to_expect

log = structlog.get_logger(__name__)

DEFAULT_TIMEOUT = 2.0


@dataclass(frozen=True)
class ProviderResult:
    """What a gateway did: which one, the caller id of a flash call, the code of a voice call, its call id."""

    gateway: str
    caller_id: str | None
    code: str | None
    provider_call_id: str


class ProviderFailed(Exception):
    """A gateway did not place the call: unreachable, too slow, refused, or answered nonsense."""

    def __init__(self, gateway: str, reason: str, status: int | None = None, outcome: str = "refused"):
        super().__init__(gateway, reason, status)
        self.gateway = gateway
        self.reason = reason
        self.status = status
        self.outcome = outcome  # for the metrics: timeout, unreachable, refused or unusable


class TelephonyProvider:
    """One gateway. ``name`` is what the customer's verification records as its gateway: primary or fallback."""

    def __init__(self, name: str, base_url: str, api_key: str, timeout: float = DEFAULT_TIMEOUT,
                 connect_timeout: float | None = None):
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        # requests' read timeout bounds each wait for bytes; the provider answers one
        # small JSON body, so in practice it bounds the whole answer.
        self.timeout = (connect_timeout if connect_timeout is not None else timeout, timeout)
        self.session = requests.Session()

    def place(self, to: str, channel: str, text: str | None = None) -> ProviderResult:
        """Ask the gateway to flash-call, call or text ``to`` (E.164); raise ProviderFailed if it does not."""
        body = {"to": to, "channel": channel}
        if channel == SMS:
            if not text:
                raise ValueError("an sms needs its text")
            body["text"] = text
        try:
            response = self.session.post(f"{self.base_url}/v1/calls", json=body, timeout=self.timeout,
                                         headers={"Authorization": f"Bearer {self.api_key}"})
        except requests.Timeout:
            raise ProviderFailed(self.name, "timeout", outcome="timeout") from None
        except requests.RequestException as exc:
            raise ProviderFailed(self.name, f"unreachable: {type(exc).__name__}", outcome="unreachable") from None
        if response.status_code not in (200, 201):
            raise ProviderFailed(self.name, f"answered {response.status_code}", response.status_code)
        try:
            answer = response.json()
            call_id = str(answer["id"])
        except (ValueError, TypeError, KeyError):
            raise ProviderFailed(self.name, "unreadable answer", response.status_code, outcome="unusable") from None
        result = ProviderResult(self.name, answer.get("caller_id"), answer.get("code"), call_id)
        try:
            # A call whose code we cannot tell is a call the customer cannot use.
            if channel == FLASH_CALL:
                code_to_expect(channel, caller_id=result.caller_id)
            elif channel == VOICE:
                code_to_expect(channel, spoken_code=result.code)
        except ValueError:
            raise ProviderFailed(self.name, f"no usable code in the answer to a {channel}", outcome="unusable") from None
        return result


class ProviderRouter:
    """Tries the primary gateway (unless its breaker is open), then the fallback; both failing is ``verification_unavailable``."""

    def __init__(self, primary: TelephonyProvider, fallback: TelephonyProvider | None,
                 breaker: CircuitBreaker | None = None):
        self.primary = primary
        self.fallback = fallback
        self.breaker = breaker or CircuitBreaker()

    def place(self, to: str, channel: str, text: str | None = None) -> ProviderResult:
        """Place the call through whichever gateway works; the result names the gateway that served it."""
        tried = []
        if self.breaker.skip_primary():
            log.info("telephony_primary_skipped", gateway=self.primary.name, channel=channel)
            VERIFICATION_CALLS.labels(self.primary.name, channel, "skipped").inc()
        else:
            try:
                result = self._attempt(self.primary, to, channel, text)
            except ProviderFailed as failure:
                self.breaker.record_failure()
                tried.append(failure.gateway)
            else:
                self.breaker.record_success()
                return result
        if self.fallback is not None:
            try:
                return self._attempt(self.fallback, to, channel, text)
            except ProviderFailed as failure:
                tried.append(failure.gateway)
        raise DomainError("verification_unavailable",
                          "We cannot call or text your number right now. Please contact support.",
                          details={"gateways_tried": tried})

    @staticmethod
    def _attempt(provider: TelephonyProvider, to: str, channel: str, text: str | None) -> ProviderResult:
        started = time.monotonic()
        try:
            result = provider.place(to, channel, text)
        except ProviderFailed as failure:
            log.warning("telephony_gateway_failed", gateway=failure.gateway, reason=failure.reason,
                        status=failure.status, channel=channel,
                        seconds=round(time.monotonic() - started, 3))
            measure_call(provider.name, channel, failure.outcome, started)
            raise
        measure_call(provider.name, channel, "ok", started)
        return result


def measure_call(gateway: str, channel: str, outcome: str, started: float) -> None:
    VERIFICATION_CALLS.labels(gateway, channel, outcome).inc()
    VERIFICATION_SECONDS.labels(gateway).observe(time.monotonic() - started)
