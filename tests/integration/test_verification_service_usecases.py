"""The verification use cases against a real database, with the clock and the telephone faked.

What a customer and the other services would see: the answers, the refusals, the events in
the outbox, and what is left in the table after a refused request.
"""
from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from services.common.clock import FrozenClock
from services.common.database import UnitOfWork, make_engine
from services.common.errors import DomainError
from services.verification.application import Verifications
from services.verification.domain import AllowedCountries
from services.verification.models import Base, Verification
from services.verification.providers import ProviderResult
from tests.support import databases

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=timezone.utc)
MOBILE = "+48 600 100 200"
LANDLINE = "+48 22 307 1234"


class FakeTelephone:
    """Places calls on paper: flash calls ring from +48 22 307 ####, voice calls speak a code."""

    def __init__(self):
        self.calls: list[dict] = []
        self.down = False
        self.gateway = "primary"

    def place(self, to, channel, text=None):
        if self.down:
            raise DomainError("verification_unavailable",
                              "We cannot call or text your number right now. Please contact support.")
        number = len(self.calls) + 1
        digits = f"{(4821 + 37 * number) % 10_000:04d}"
        call = {"to": to, "channel": channel, "text": text,
                "caller_id": f"+4822307{digits}" if channel == "flash_call" else None,
                "code": digits if channel == "voice" else None}
        self.calls.append(call)
        return ProviderResult(self.gateway, call["caller_id"], call["code"], f"{self.gateway}-{number}")

    def last_code(self) -> str:
        call = self.calls[-1]
        if call["channel"] == "flash_call":
            return call["caller_id"][-4:]
        if call["channel"] == "voice":
            return call["code"]
        return re.search(r"\b(\d{4})\b", call["text"]).group(1)


@pytest.fixture
def uow(tmp_path, migrated_databases):
    with databases(tmp_path, ["verification"], copies_of={"verification": migrated_databases["verification"]}) as urls:
        engine = make_engine(urls["verification"], green=False)
        yield UnitOfWork(engine, "verification", Base.metadata)
        engine.dispose()


@pytest.fixture
def telephone():
    return FakeTelephone()


@pytest.fixture
def clock():
    return FrozenClock(NOW)


@pytest.fixture
def verifications(uow, telephone, clock):
    return Verifications(uow, telephone, clock)


def account() -> str:
    return str(uuid.uuid4())


def refusal(call, *args, **kwargs) -> DomainError:
    with pytest.raises(DomainError) as caught:
        call(*args, **kwargs)
    return caught.value


def rows(uow) -> list[Verification]:
    with uow.transaction() as session:
        return list(session.scalars(select(Verification)))


def events(uow) -> list[tuple[str, dict]]:
    with uow.transaction() as session:
        outbox = Base.metadata.tables["outbox"]
        return [(row.event_type, json.loads(row.payload))
                for row in session.execute(select(outbox).order_by(outbox.c.id))]


# --- the happy paths, one per channel -------------------------------------------------------

def test_flash_call_is_verified_by_the_last_four_digits_of_the_calling_number(verifications, telephone, uow):
    customer = account()
    started = verifications.start(customer, MOBILE, "flash_call", "phone")
    assert started["gateway"] == "primary" and started["channel"] == "flash_call"
    assert started["phone"] == "+48600100200" and telephone.calls[0]["to"] == "+48600100200"
    assert started["expires_at"] == "2026-11-29T10:05:00Z"

    checked = verifications.check(started["id"], telephone.calls[0]["caller_id"][-4:], customer)
    assert checked["status"] == "verified" and checked["verified_at"] == "2026-11-29T10:00:00Z"
    [(kind, payload)] = events(uow)
    assert kind == "phone_verified"
    assert payload["account_id"] == customer and payload["phone"] == "+48600100200"
    assert payload["verification_id"] == started["id"] and payload["gateway"] == "primary"


def test_landline_is_verified_by_the_code_a_voice_call_speaks(verifications, telephone):
    started = verifications.start(account(), LANDLINE, "voice", "phone")
    assert verifications.check(started["id"], telephone.last_code())["status"] == "verified"


def test_sms_carries_a_code_that_verifies_and_that_is_stored_only_sealed(verifications, telephone, uow):
    started = verifications.start(account(), MOBILE, "sms", "phone", language="pl")
    code = telephone.last_code()
    assert "Kod weryfikacyjny" in telephone.calls[0]["text"]
    [row] = rows(uow)
    # Sealed: a 16-byte salt and a 32-byte HMAC, and the code in no column of its own. (Not
    # "the code is no substring of them": random hex holds any four digits now and then.)
    assert len(bytes.fromhex(row.code_salt)) == 16 and len(bytes.fromhex(row.code_digest)) == 32
    assert code not in {str(getattr(row, column.key)) for column in Verification.__table__.columns}
    assert verifications.check(started["id"], code)["status"] == "verified"


def test_the_gateway_that_served_is_recorded(verifications, telephone, uow):
    telephone.gateway = "fallback"
    assert verifications.start(account(), MOBILE, "voice", "phone")["gateway"] == "fallback"
    assert rows(uow)[0].gateway == "fallback"


# --- refusals at start leave nothing behind ----------------------------------------------------

def test_no_phone_in_the_profile_is_phone_missing_and_nobody_is_called(verifications, telephone, uow):
    assert refusal(verifications.start, account(), None, "flash_call", "phone").error_code == "phone_missing"
    assert telephone.calls == [] and rows(uow) == []


@pytest.mark.parametrize("channel", ["sms", "flash_call"])
def test_landline_cannot_take_sms_or_flash_call_and_is_offered_voice(verifications, telephone, uow, channel):
    error = refusal(verifications.start, account(), LANDLINE, channel, "phone")
    assert error.error_code == "channel_not_supported" and error.details["channels"] == ["voice"]
    assert telephone.calls == [] and rows(uow) == []


@pytest.mark.parametrize("number", ["+7 912 345 67 89", "+1 876 555 0123", "+44 909 879 0000"])
def test_numbers_in_refused_countries_or_premium_rate_are_never_called(verifications, telephone, uow, number):
    assert refusal(verifications.start, account(), number, "voice", "phone").error_code == "phone_not_allowed"
    assert telephone.calls == [] and rows(uow) == []


def test_the_allowed_country_list_is_configurable(uow, telephone, clock):
    only_poland = Verifications(uow, telephone, clock, AllowedCountries.parse("PL"))
    only_poland.start(account(), MOBILE, "voice", "phone")
    assert refusal(only_poland.start, account(), "+49 151 23456789", "voice", "phone").error_code == "phone_not_allowed"


@pytest.mark.parametrize("channel, purpose, operation, field", [
    ("fax", "phone", None, "channel"),
    (None, "phone", None, "channel"),
    (1, "phone", None, "channel"),
    ("voice", "login", None, "purpose"),
    ("voice", "phone", "change_password", "operation"),
    ("voice", "operation", "x" * 10_000, "operation"),
])
def test_malformed_start_is_a_validation_error_and_nobody_is_called(verifications, telephone, uow,
                                                                    channel, purpose, operation, field):
    error = refusal(verifications.start, account(), MOBILE, channel, purpose, operation)
    assert error.error_code == "validation_error" and field in error.fields
    assert telephone.calls == [] and rows(uow) == []


def test_both_gateways_down_is_verification_unavailable_and_costs_the_customer_no_start(verifications, telephone,
                                                                                      uow):
    customer = account()
    telephone.down = True
    for _ in range(4):
        error = refusal(verifications.start, customer, MOBILE, "flash_call", "phone")
        assert error.error_code == "verification_unavailable" and "contact support" in error.message
    assert {row.status for row in rows(uow)} == {"failed"}
    telephone.down = False
    assert verifications.start(customer, MOBILE, "flash_call", "phone")["gateway"] == "primary"


def test_a_start_that_no_gateway_placed_cannot_be_checked(verifications, telephone, uow):
    telephone.down = True
    refusal(verifications.start, account(), MOBILE, "voice", "phone")
    [row] = rows(uow)
    error = refusal(verifications.check, row.id, "1234")
    assert error.error_code == "verification_expired" and error.details["reason"] == "not_placed"


# --- start limits ---------------------------------------------------------------------------------

def test_three_starts_per_number_in_ten_minutes_whoever_asks(verifications, telephone, clock):
    for _ in range(3):
        verifications.start(account(), MOBILE, "flash_call", "phone")
        clock.advance(minutes=1)
    error = refusal(verifications.start, account(), "+48600100200", "voice", "phone")
    assert error.error_code == "rate_limited" and error.status == 429
    assert error.details == {"retry_after": 7 * 60, "limit": "phone"}
    assert len(telephone.calls) == 3
    clock.advance(minutes=7)
    verifications.start(account(), MOBILE, "flash_call", "phone")


def test_ten_starts_per_account_a_day_across_numbers(verifications, clock):
    customer = account()
    for index in range(10):
        verifications.start(customer, f"+48 600 100 {200 + index}", "sms", "phone")
        clock.advance(minutes=30)
    error = refusal(verifications.start, customer, "+48 600 100 299", "sms", "phone")
    assert error.details["limit"] == "account"
    assert error.details["retry_after"] == 24 * 3600 - 10 * 30 * 60
    verifications.start(account(), "+48 600 100 299", "sms", "phone")


# --- checking ---------------------------------------------------------------------------------------

def test_wrong_code_spends_a_try_that_stays_spent_and_never_reveals_the_right_one(verifications, telephone, uow):
    started = verifications.start(account(), MOBILE, "flash_call", "phone")
    right = telephone.last_code()
    wrong = "0000" if right != "0000" else "1111"
    for left in (4, 3):
        error = refusal(verifications.check, started["id"], wrong)
        assert error.error_code == "wrong_code" and error.details == {"attempts_left": left}
        assert right not in json.dumps(error.to_body())
    assert rows(uow)[0].attempts_left == 3


def test_after_five_wrong_codes_the_right_one_is_gone(verifications, telephone):
    started = verifications.start(account(), MOBILE, "voice", "phone")
    right = telephone.last_code()
    wrong = "0000" if right != "0000" else "1111"
    for _ in range(5):
        refusal(verifications.check, started["id"], wrong)
    error = refusal(verifications.check, started["id"], right)
    assert error.error_code == "verification_expired" and error.status == 410


def test_malformed_code_costs_no_try(verifications, telephone, uow):
    started = verifications.start(account(), MOBILE, "voice", "phone")
    for typed in ("12", "abcd", None, 1234, "9" * 100_000):
        assert refusal(verifications.check, started["id"], typed).error_code == "validation_error"
    assert rows(uow)[0].attempts_left == 5


def test_code_lives_five_minutes(verifications, telephone, clock):
    started = verifications.start(account(), MOBILE, "flash_call", "phone")
    clock.advance(minutes=5)
    error = refusal(verifications.check, started["id"], telephone.last_code())
    assert error.error_code == "verification_expired" and error.details["reason"] == "expired"


def test_another_customers_verification_is_not_found(verifications, telephone):
    started = verifications.start(account(), MOBILE, "flash_call", "phone")
    assert refusal(verifications.check, started["id"], telephone.last_code(), account()).error_code == "not_found"
    assert refusal(verifications.check, str(uuid.uuid4()), "1234").error_code == "not_found"
    assert refusal(verifications.check, "x" * 5000, "1234").error_code == "not_found"
    assert refusal(verifications.check, None, "1234").error_code == "not_found"


def test_checking_the_right_code_again_answers_verified_and_announces_once(verifications, telephone, uow, clock):
    customer = account()
    started = verifications.start(customer, MOBILE, "sms", "phone")
    code = telephone.last_code()
    first = verifications.check(started["id"], code, customer)
    clock.advance(minutes=1)
    assert verifications.check(started["id"], code, customer) == first
    assert [kind for kind, _ in events(uow)] == ["phone_verified"]


# --- proofs for sensitive operations -------------------------------------------------------------------

def verified_operation(verifications, telephone, customer, operation=None) -> str:
    started = verifications.start(customer, MOBILE, "flash_call", "operation", operation)
    verifications.check(started["id"], telephone.last_code(), customer)
    return started["id"]


def test_operation_verification_announces_operation_verified_and_not_phone_verified(verifications, telephone, uow):
    customer = account()
    proof = verified_operation(verifications, telephone, customer, "cancel_order")
    [(kind, payload)] = events(uow)
    assert kind == "operation_verified"
    assert payload["account_id"] == customer and payload["verification_id"] == proof
    assert payload["operation"] == "cancel_order"


def test_a_proof_is_spent_once(verifications, telephone):
    customer = account()
    proof = verified_operation(verifications, telephone, customer)
    used = verifications.use_operation_proof(customer, proof, "change_password")
    assert used["operation"] == "change_password" and used["phone"] == "+48600100200"
    error = refusal(verifications.use_operation_proof, customer, proof, "change_password")
    assert error.error_code == "verification_expired" and error.details["reason"] == "used"


def test_a_redelivered_use_with_the_same_reference_gets_the_same_answer(verifications, telephone):
    customer = account()
    proof = verified_operation(verifications, telephone, customer)
    first = verifications.use_operation_proof(customer, proof, "cancel_order", "order-17")
    assert verifications.use_operation_proof(customer, proof, "cancel_order", "order-17") == first
    assert refusal(verifications.use_operation_proof, customer, proof, "cancel_order", "order-18").status == 410


def test_a_proof_serves_only_the_operation_it_names(verifications, telephone):
    customer = account()
    proof = verified_operation(verifications, telephone, customer, "change_ip_restriction")
    error = refusal(verifications.use_operation_proof, customer, proof, "change_password")
    assert error.error_code == "verification_required" and error.details["reason"] == "other_operation"
    verifications.use_operation_proof(customer, proof, "change_ip_restriction")


def test_unchecked_phone_and_foreign_verifications_are_no_proof(verifications, telephone):
    customer = account()
    pending = verifications.start(customer, MOBILE, "voice", "operation")["id"]
    assert refusal(verifications.use_operation_proof, customer, pending, "cancel_order").details == {
        "reason": "not_verified"}
    phone = verifications.start(customer, "+48 600 100 201", "voice", "phone")
    verifications.check(phone["id"], telephone.last_code())
    assert refusal(verifications.use_operation_proof, customer, phone["id"], "cancel_order").details == {
        "reason": "not_an_operation_proof"}
    proof = verified_operation(verifications, telephone, account())
    assert refusal(verifications.use_operation_proof, customer, proof, "cancel_order").error_code == "not_found"


def test_a_proof_not_used_within_ten_minutes_of_its_check_expires(verifications, telephone, clock):
    customer = account()
    proof = verified_operation(verifications, telephone, customer)
    clock.advance(minutes=10)
    error = refusal(verifications.use_operation_proof, customer, proof, "cancel_order")
    assert error.error_code == "verification_expired" and error.details["reason"] == "expired"


def test_an_unknown_operation_is_a_validation_error_and_spends_nothing(verifications, telephone):
    customer = account()
    proof = verified_operation(verifications, telephone, customer)
    assert refusal(verifications.use_operation_proof, customer, proof, "delete_everything").fields == {
        "operation": ["must be one of cancel_order, change_password, change_ip_restriction, "
                      "change_operation_confirmation, change_phone"]}
    verifications.use_operation_proof(customer, proof, "cancel_order")
