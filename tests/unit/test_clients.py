"""The client library's rules without a broker: money, the exception of each code, the queues it knows."""
from __future__ import annotations

import importlib
import inspect
from decimal import Decimal

import pytest
from nameko.events import SERVICE_POOL, EventHandler
from nameko.exceptions import MethodNotFound, serialize

from introserv_clients import (Conflict, Forbidden, IdempotencyConflict, Money, NotFound, RateLimited, Refused,
                               RemoteFailure, ServiceUnavailable, ValidationError)
from introserv_clients.deadletters import HANDLER_QUEUES
from introserv_clients.errors import error_class, from_remote
from deploy.serve import RUNS
from introserv_clients.ops import exit_code
from services.common.errors import HTTP_STATUS, DomainError


def test_money_is_a_decimal_with_two_places_and_never_a_float():
    assert Money(Decimal("12.5"), "EUR").to_wire() == {"amount": "12.50", "currency": "EUR"}
    assert Money("-3.00", "PLN").amount == Decimal("-3.00") and str(Money(7, "EUR")) == "7.00 EUR"
    assert Money("10.00", "EUR") + Money("-2.50", "EUR") == Money("7.50", "EUR")
    with pytest.raises(TypeError):
        Money(12.5, "EUR")
    for amount in ("12.505", "twelve", "NaN", "Infinity"):
        with pytest.raises(ValueError):
            Money(amount, "EUR")
    with pytest.raises(ValueError):
        Money("1.00", "eur")
    with pytest.raises(ValueError):
        Money("1.00", "EUR") + Money("1.00", "PLN")


def test_every_code_of_the_services_has_the_exception_of_its_http_status():
    family = {400: ValidationError, 401: Forbidden, 403: Forbidden, 404: NotFound, 409: Conflict, 429: RateLimited,
              500: RemoteFailure, 503: ServiceUnavailable}
    for code, status in HTTP_STATUS.items():
        expected = IdempotencyConflict if code == "idempotency_conflict" else family.get(status, Refused)
        assert error_class(code) is expected, code
    assert error_class("a_rule_added_later") is Refused


def test_a_remote_refusal_keeps_its_code_message_fields_and_details():
    wire = serialize(DomainError("insufficient_funds", "Not enough money.", {"amount": ["too much"]}, {"short": 4}))
    error = from_remote(wire)
    assert isinstance(error, Refused) and not isinstance(error, Conflict)
    assert (error.code, error.message, error.fields, error.details) == (
        "insufficient_funds", "Not enough money.", {"amount": ["too much"]}, {"short": 4})
    assert error.to_body() == {"error": {"code": "insufficient_funds", "message": "Not enough money.",
                                         "fields": {"amount": ["too much"]}, "details": {"short": 4}}}


def test_a_remote_bug_or_a_missing_method_is_a_remote_failure():
    assert from_remote(serialize(MethodNotFound("nope"))).code == "method_not_found"
    crash = from_remote(serialize(ValueError("boom")))
    assert isinstance(crash, RemoteFailure) and crash.code == "internal_error" and "boom" in crash.message


def test_scripts_get_one_exit_code_per_kind_of_failure():
    assert [exit_code(error_class(code)(code)) for code in (
        "not_found", "forbidden", "validation_error", "insufficient_funds", "conflict", "idempotency_conflict",
        "rate_limited", "service_unavailable", "internal_error")] == [3, 4, 5, 5, 5, 5, 5, 6, 1]


def test_the_dead_letter_tools_know_every_event_handler_queue_of_every_service():
    assert sorted(HANDLER_QUEUES) == handler_queues()


def handler_queues() -> list[str]:
    """The queue of every service-pool event handler of every process deploy.serve runs, by Nameko's naming."""
    names = []
    for module, _, class_name in (run.partition(":") for run in RUNS.values()):
        cls = getattr(importlib.import_module(module), class_name)
        for method_name, method in inspect.getmembers(cls, inspect.isfunction):
            for entrypoint in getattr(method, "nameko_entrypoints", ()):
                if isinstance(entrypoint, EventHandler) and entrypoint.handler_type == SERVICE_POOL:
                    names.append(f"evt-{entrypoint.source_service}-{entrypoint.event_type}--{cls.name}.{method_name}")
    return sorted(names)
