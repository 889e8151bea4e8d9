"""The verification service's use cases: start, check, and spend a proof.

A start takes three short steps and never holds a transaction across a telephone call:
book the attempt (the start limits see it at once), ask the gateways, then record what
they did. A check judges the code and saves the spent try before answering.
"""
from __future__ import annotations

import uuid

from sqlalchemy import select

from services.common.clock import as_utc, iso
from services.common.config import env, env_float, env_int
from services.common.errors import DomainError, NotFound, ValidationError
from services.common.locks import lock
from services.common.outbox import publish_later
from services.common.schemas import load
from services.verification import domain
from services.verification.models import CALLING, FAILED, SENT, VERIFIED, Verification
from services.verification.providers import DEFAULT_TIMEOUT, ProviderRouter, TelephonyProvider
from services.verification.schemas import StartVerificationSchema

LANGUAGES = ("en", "pl")


def telephony_from_environment() -> ProviderRouter:
    """The primary and fallback gateways from ``TELEPHONY_*`` settings (no fallback URL: none)."""
    timeout = env_float("TELEPHONY_TIMEOUT", DEFAULT_TIMEOUT)
    connect = env_float("TELEPHONY_CONNECT_TIMEOUT", timeout)

    def gateway(name: str) -> TelephonyProvider | None:
        url = env(f"TELEPHONY_{name.upper()}_URL", "http://127.0.0.1:8010" if name == "primary" else None)
        if not url:
            return None
        key = env(f"TELEPHONY_{name.upper()}_API_KEY", env("TELEPHONY_API_KEY", "dev"))
        return TelephonyProvider(name, url, key, timeout=timeout, connect_timeout=connect)

    breaker = domain.CircuitBreaker(failure_threshold=env_int("TELEPHONY_BREAKER_FAILURES", 3),
                                    cool_down=env_float("TELEPHONY_BREAKER_COOL_DOWN_SECONDS", 60))
    return ProviderRouter(gateway("primary"), gateway("fallback"), breaker)


def countries_from_environment() -> domain.AllowedCountries:
    """``VERIFICATION_COUNTRIES`` such as ``"PL, DE, +44"``; unset means the default list."""
    return domain.AllowedCountries.parse(env("VERIFICATION_COUNTRIES", ""))


class Verifications:
    def __init__(self, uow, telephony: ProviderRouter, clock,
                 countries: domain.AllowedCountries = domain.DEFAULT_COUNTRIES):
        self.uow = uow
        self.telephony = telephony
        self.clock = clock
        self.countries = countries

    def start(self, account_id: str, phone: str | None, channel: str, purpose: str,
              operation: str | None = None, language: str = "en") -> dict:
        """Call, flash-call or text ``phone`` with a code; answer the verification to check it against."""
        request = load(StartVerificationSchema, {"channel": channel, "purpose": purpose, "operation": operation})
        _ensure_account_id(account_id)
        callee = domain.parse_phone(phone, self.countries)
        domain.ensure_channel(callee, request["channel"])
        domain.ensure_purpose(request["purpose"], request["operation"])
        verification_id = self._book(account_id, callee, request)

        channel = request["channel"]
        sms_code = domain.new_sms_code() if channel == domain.SMS else None
        try:
            placed = self.telephony.place(
                callee.e164, channel,
                domain.sms_text(sms_code, language if language in LANGUAGES else "en") if sms_code else None)
        except BaseException:
            self._mark_failed(verification_id)
            raise
        code = domain.code_to_expect(channel, caller_id=placed.caller_id, spoken_code=placed.code,
                                     sms_code=sms_code)
        with self.uow.transaction() as session:
            row = session.get(Verification, verification_id)
            attempt = domain.begin_attempt(channel, code, self.clock.now())
            row.status = SENT
            row.gateway = placed.gateway
            row.provider_call_id = placed.provider_call_id[:100]
            row.code_salt, row.code_digest = attempt.code.salt, attempt.code.digest
            row.expires_at = attempt.expires_at
            return _started(row)

    def check(self, verification_id: str, code: str, account_id: str | None = None) -> dict:
        """Judge the code the customer typed; a wrong one costs a try, the right one verifies.

        With ``account_id`` (the gateway), another account's verification is ``not_found``.
        """
        with self.uow.transaction() as session:
            row = _verification(session, verification_id, account_id)
            if row.status not in (SENT, VERIFIED):
                # A start that no gateway placed (or that a crash cut short) has no code.
                error = DomainError("verification_expired", "This verification has ended; start a new one.",
                                    details={"reason": "not_placed"})
            else:
                outcome = domain.check_code(_attempt(row), code, self.clock.now())
                error = outcome.error
                newly_verified = outcome.verified and row.verified_at is None
                row.attempts_left = outcome.attempt.attempts_left
                row.verified_at = outcome.attempt.verified_at
                if newly_verified:
                    row.status = VERIFIED
                    _announce(session, row)
            answer = None if error else _checked(row)
        if error:
            raise error  # after the commit: a wrong code's spent try stays spent
        return answer

    def use_operation_proof(self, account_id: str, verification_id: str, operation: str,
                            reference: str | None = None) -> dict:
        """Spend a verified verification of purpose ``operation`` as the proof for ``operation``, once."""
        _ensure_account_id(account_id)
        if reference is not None and (not isinstance(reference, str) or not 1 <= len(reference) <= 200):
            raise ValidationError({"reference": ["must be 1 to 200 characters"]})
        with self.uow.transaction() as session:
            row = _verification(session, verification_id, account_id)
            proof = domain.use_proof(
                domain.OperationProof(row.purpose, row.operation, as_utc(row.verified_at), as_utc(row.used_at),
                                      row.used_for, row.used_reference),
                operation, reference, self.clock.now())
            row.used_at, row.used_for, row.used_reference = proof.used_at, proof.used_for, proof.used_reference
            return {"verification_id": row.id, "account_id": row.account_id, "operation": proof.used_for,
                    "reference": proof.used_reference, "phone": row.phone, "verified_at": iso(proof.verified_at),
                    "used_at": iso(proof.used_at)}

    def verified_phone(self, account_id: str, verification_id) -> dict:
        """The number a verification of purpose ``phone`` of this account verified, for profile to
        record before the customer's next read; ``not_found`` for another account's, 422
        ``verification_required`` when it is not a verified phone verification."""
        _ensure_account_id(account_id)
        if not isinstance(verification_id, str) or len(verification_id) > 36:
            raise NotFound("verification")
        with self.uow.transaction() as session:
            row = session.scalar(select(Verification).where(Verification.id == verification_id,
                                                            Verification.account_id == account_id))
            if row is None:
                raise NotFound("verification")
            if row.purpose != domain.PHONE or row.verified_at is None:
                raise DomainError("verification_required", "This is not a verified phone verification.",
                                  details={"reason": "not_verified" if row.purpose == domain.PHONE
                                           else "not_a_phone_verification"})
            return {"verification_id": row.id, "account_id": row.account_id, "phone": row.phone,
                    "verified_at": iso(as_utc(row.verified_at))}

    # -- the steps of a start
    def _book(self, account_id: str, callee: domain.Phone, request: dict) -> str:
        """Record the start before any call, refusing it when a start limit is reached."""
        with self.uow.transaction() as session:
            _one_start_at_a_time(session, f"verification-account:{account_id}", f"verification-phone:{callee.e164}")
            now = self.clock.now()
            per_number, per_account = domain.STARTS_PER_NUMBER, domain.STARTS_PER_ACCOUNT
            domain.ensure_start_allowed(
                now,
                _recent_starts(session, Verification.phone == callee.e164, now - per_number.per),
                _recent_starts(session, Verification.account_id == account_id, now - per_account.per))
            row = Verification(id=str(uuid.uuid4()), account_id=account_id, phone=callee.e164,
                               channel=request["channel"], purpose=request["purpose"],
                               operation=request["operation"], status=CALLING,
                               attempts_left=domain.CHECKS_PER_ATTEMPT, created_at=now)
            session.add(row)
            return row.id

    def _mark_failed(self, verification_id: str) -> None:
        with self.uow.transaction() as session:
            session.get(Verification, verification_id).status = FAILED


def _ensure_account_id(account_id) -> None:
    if not isinstance(account_id, str) or not 1 <= len(account_id) <= 36:
        raise NotFound("account")


def _verification(session, verification_id, account_id: str | None) -> Verification:
    if not isinstance(verification_id, str) or len(verification_id) > 36:
        raise NotFound("verification")
    query = select(Verification).where(Verification.id == verification_id)
    if account_id is not None:
        query = query.where(Verification.account_id == account_id)
    # Locked: two checks at once must not both spend the same try.
    row = session.scalar(query.with_for_update())
    if row is None:
        raise NotFound("verification")
    return row


def _recent_starts(session, whose, since) -> list:
    # A start no gateway placed cost nothing and reached nobody: it does not count.
    return [as_utc(at) for at in session.scalars(
        select(Verification.created_at).where(whose, Verification.created_at > since,
                                              Verification.status != FAILED))]


def _one_start_at_a_time(session, *names: str) -> None:
    """Serialise starts for the same account and number across replicas (PostgreSQL).

    SQLite runs one writer per file, so there the transaction already serialises them.
    Locks are always taken in the same order (account, then number): no deadlock.
    """
    for name in names:
        lock(session, name)


def _attempt(row: Verification) -> domain.Attempt:
    return domain.Attempt(row.channel, domain.SealedCode(row.code_salt, row.code_digest), as_utc(row.expires_at),
                          row.attempts_left, as_utc(row.verified_at))


def _announce(session, row: Verification) -> None:
    """Tell the other services a verification succeeded, in the transaction that records it."""
    if row.purpose == domain.PHONE:
        publish_later(session, "phone_verified", {"account_id": row.account_id, "phone": row.phone,
                                                  "verification_id": row.id, "channel": row.channel,
                                                  "gateway": row.gateway})
    else:
        publish_later(session, "operation_verified", {"account_id": row.account_id, "verification_id": row.id,
                                                      "operation": row.operation})


def _started(row: Verification) -> dict:
    return {"id": row.id, "channel": row.channel, "purpose": row.purpose, "operation": row.operation,
            "phone": row.phone, "gateway": row.gateway, "status": row.status,
            "attempts_left": row.attempts_left, "expires_at": iso(as_utc(row.expires_at))}


def _checked(row: Verification) -> dict:
    return {"id": row.id, "status": VERIFIED, "channel": row.channel, "purpose": row.purpose,
            "operation": row.operation, "verified_at": iso(as_utc(row.verified_at))}
