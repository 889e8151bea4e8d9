"""What binds an idempotency key to its request (services/common/idempotency.py), without a database."""
from __future__ import annotations

from datetime import date

import pytest

from gateway.http import error_response
from services.common.errors import DomainError, ValidationError
from services.common.idempotency import KeyedRequest, fingerprint, request_in_progress
from services.common.money import Money

CHARGE = {"account_id": "a-1", "amount": Money.of("12.50", "EUR"), "reference": "order-1", "description": "VPS S",
          "lines": [{"description": "VPS S", "gross": Money.of("12.50", "EUR"), "period_from": date(2026, 12, 1),
                     "period_to": date(2026, 12, 31), "quantity": 1}]}


def test_a_fingerprint_is_the_one_the_ledger_keeps_on_its_journal():
    # The ledger compares it with fingerprints stored by earlier versions: it must never change.
    assert fingerprint("charge", CHARGE) == "cbcc7e8d440ed1cb9240c0a288161ca091b7c251714e0398a226da0296d4da92"


def test_the_same_request_in_another_order_has_the_same_fingerprint_and_another_request_another():
    assert fingerprint("charge", dict(reversed(list(CHARGE.items())))) == fingerprint("charge", CHARGE)
    assert fingerprint("charge", {**CHARGE, "amount": Money.of("12.51", "EUR")}) != fingerprint("charge", CHARGE)
    assert fingerprint("refund", CHARGE) != fingerprint("charge", CHARGE)


def test_only_plain_values_money_and_dates_can_be_fingerprinted():
    with pytest.raises(TypeError):
        fingerprint("charge", {"amount": object()})


def test_a_key_replays_the_answer_given_to_the_same_request_and_refuses_another():
    first = KeyedRequest.of("a-1", "charge", "k-1", CHARGE)
    assert first.replay(first.fingerprint, {"id": "t-1"}) == {"id": "t-1"}
    other = KeyedRequest.of("a-1", "charge", "k-1", {**CHARGE, "reference": "order-2"})
    with pytest.raises(DomainError) as refused:
        other.replay(first.fingerprint, {"id": "t-1"})
    assert refused.value.error_code == "idempotency_conflict" and refused.value.status == 422
    assert refused.value.details == {"idempotency_key": "k-1"}


@pytest.mark.parametrize("key", [None, "", "   ", "k" * 201, 5])
def test_a_key_is_1_to_200_characters_and_its_field_is_named(key):
    with pytest.raises(ValidationError) as refused:
        KeyedRequest.of("a-1", "charge", key, CHARGE, field="idempotency_key")
    assert list(refused.value.fields) == ["idempotency_key"]


def test_a_keyed_request_written_down_with_its_work_reads_back_the_same():
    keyed = KeyedRequest.of("a-1", "renew", "k-1", {"order_id": "o-1", "period_months": 1})
    assert KeyedRequest.from_wire(keyed.to_wire()) == keyed
    assert KeyedRequest.from_wire(None) is None
    # What operations written down before this helper existed carry.
    old = {"account_id": "a-1", "route": "renew", "key": "k-1", "digest": "d" * 64}
    assert KeyedRequest.from_wire(old) == KeyedRequest("a-1", "renew", "k-1", "d" * 64)


def test_a_request_in_progress_is_a_409_whose_retry_after_the_gateway_sends():
    error = request_in_progress(0.2)
    assert (error.error_code, error.status, error.details) == ("request_in_progress", 409, {"retry_after": 1})
    response = error_response(error)
    assert response.status_code == 409 and response.headers["Retry-After"] == "1"
    assert request_in_progress(1.5).details["retry_after"] == 2


def test_a_conflict_without_a_time_to_wait_has_no_retry_after():
    response = error_response(DomainError("conflict", "busy"))
    assert response.status_code == 409 and "Retry-After" not in response.headers
