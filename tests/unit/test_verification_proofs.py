"""What a verification may be for, and spending one as the proof for a sensitive operation."""
from datetime import datetime, timedelta, timezone

import pytest

from services.common.errors import DomainError, ValidationError
from services.verification.domain import (OPERATIONS, PROOF_LIFETIME, OperationProof, ensure_purpose,
                                          use_proof)
from tests.support import refusal_of

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=timezone.utc)


def proof(**overrides) -> OperationProof:
    return OperationProof(**{"purpose": "operation", "operation": None, "verified_at": NOW, **overrides})


def refusal(call, *args) -> DomainError:
    with pytest.raises(DomainError) as caught:
        call(*args)
    return caught.value


@pytest.mark.parametrize("purpose, operation", [("phone", None), ("operation", None),
                                                *(("operation", name) for name in OPERATIONS)])
def test_known_purposes_and_operations_are_accepted(purpose, operation):
    assert refusal_of(ensure_purpose, purpose, operation) is None


@pytest.mark.parametrize("purpose, operation, field", [
    ("login", None, "purpose"),
    ("phone", "cancel_order", "operation"),
    ("operation", "delete_account", "operation"),
])
def test_unknown_purposes_and_misplaced_operations_are_validation_errors(purpose, operation, field):
    error = refusal(ensure_purpose, purpose, operation)
    assert isinstance(error, ValidationError) and list(error.fields) == [field]


def test_a_verified_proof_is_spent_on_the_operation_it_is_used_for():
    spent = use_proof(proof(), "cancel_order", "order-1", NOW + timedelta(minutes=1))
    assert (spent.used_for, spent.used_reference, spent.used_at) == ("cancel_order", "order-1",
                                                                    NOW + timedelta(minutes=1))


def test_a_spent_proof_is_gone_for_any_other_use():
    spent = use_proof(proof(), "cancel_order", None, NOW)
    for operation, reference in (("cancel_order", None), ("change_password", None), ("cancel_order", "order-2")):
        error = refusal(use_proof, spent, operation, reference, NOW)
        assert error.error_code == "verification_expired" and error.details == {"reason": "used"}


def test_repeating_the_recorded_use_answers_it_again():
    spent = use_proof(proof(), "cancel_order", "order-1", NOW)
    assert use_proof(spent, "cancel_order", "order-1", NOW + timedelta(hours=1)) == spent


@pytest.mark.parametrize("candidate, reason", [
    (proof(verified_at=None), "not_verified"),
    (proof(purpose="phone"), "not_an_operation_proof"),
    (proof(operation="change_password"), "other_operation"),
])
def test_what_is_no_proof_for_the_operation_asks_for_a_verification(candidate, reason):
    error = refusal(use_proof, candidate, "cancel_order", None, NOW)
    assert error.error_code == "verification_required" and error.status == 422
    assert error.details == {"reason": reason}


def test_a_proof_lives_ten_minutes_after_its_check():
    use_proof(proof(), "change_password", None, NOW + PROOF_LIFETIME - timedelta(seconds=1))
    error = refusal(use_proof, proof(), "change_password", None, NOW + PROOF_LIFETIME)
    assert error.error_code == "verification_expired" and error.details == {"reason": "expired"}


def test_an_unknown_operation_is_a_validation_error_before_anything_else():
    assert "operation" in refusal(use_proof, proof(purpose="phone"), "launch_rockets", None, NOW).fields
