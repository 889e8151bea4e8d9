"""The customer's security settings (S2-S6, P3): each change re-checks the password in the
same request, lands on the security timeline and, where the customer must hear of it, goes
out as an event for the notifier. Secrets are only ever stored hashed and never returned.
"""
from __future__ import annotations

from eventlet import tpool
from sqlalchemy import select, update

from services.common.clock import iso
from services.common.errors import DomainError, ValidationError
from services.common.outbox import publish_later
from services.common.pagination import keyset_page
from services.common.schemas import load
from services.profile import domain, limits, security
from services.profile.application import (account_or_not_found, buyer_fields, hash_secret,
                                          issue_email_token, record_security_event, verify_secret)
from services.profile.models import Account, EmailToken, SecurityCodeCheck, SecurityEvent
from services.profile.schemas import EmailChangeSchema, PasswordChangeSchema
from services.profile.sessions import accept_second_factor, access_changed, end_sessions, previous_login


class AccountSecurity:
    def __init__(self, uow, hasher: security.PasswordHasher, clock, verification=None):
        self.uow = uow
        self.hasher = hasher
        self.clock = clock
        self.verification = verification

    # -- confirmation of sensitive operations by phone (issue 8, as BILLmanager does)
    def require_operation_proof(self, account_id: str, operation: str, verification_id,
                                reference: str | None = None) -> dict:
        """Spend the proof a customer who confirms operations by call must bring; a no-op otherwise."""
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id)
        if not account.confirm_operations:
            return {"required": False}
        return self._spend_proof(account, operation, verification_id, reference)

    def _spend_proof(self, account: Account, operation: str, verification_id, reference) -> dict:
        if not verification_id:
            raise domain.verification_required(operation, "required")
        try:
            proof = self.verification.use_operation_proof(account.id, verification_id, operation, reference)
        except DomainError as refusal:
            if refusal.error_code in ("not_found", "validation_error", "verification_required"):
                raise domain.verification_required(operation, "not a verified proof of this operation") from None
            raise
        if proof.get("phone") != account.phone or not account.phone_verified:
            raise domain.verification_required(operation, "the call did not go to this account's verified phone")
        return {"required": True, "verification_id": proof["verification_id"]}

    def set_operation_confirmation(self, account_id: str, enabled, password, verification_id=None,
                                   ip: str | None = None, session_id: str | None = None) -> dict:
        """Turn it on (needs a verified phone) or off (needs a proof: a thief with the password cannot)."""
        if not isinstance(enabled, bool):
            raise ValidationError({"enabled": ["must be true or false"]})
        account = self._reauthenticate(account_id, password, ip)
        if enabled and not (account.phone and account.phone_verified):
            raise DomainError("phone_missing", "Verify your mobile phone first: the confirmations call it.")
        if not enabled and account.confirm_operations:
            self._spend_proof(account, "change_operation_confirmation", verification_id, None)
        now = self.clock.now()
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id, lock=True)
            if account.confirm_operations != enabled:
                account.confirm_operations = enabled
                record_security_event(session, account, "operation_confirmation_changed", ip, now,
                                      {"enabled": enabled}, notify=False)
            return _security_view(session, account, session_id)

    def overview(self, account_id: str, session_id: str | None = None) -> dict:
        """The security settings; ``last_login`` is the newest login other than ``session_id``'s."""
        with self.uow.transaction() as session:
            return _security_view(session, account_or_not_found(session, account_id), session_id)

    def _reauthenticate(self, account_id: str, password, ip: str | None) -> Account:
        """The account, if ``password`` is its current password (422 ``wrong_password``).

        A wrong password here counts like a failed login from ``ip``, decided as atomically, so a
        stolen session cannot be used to guess the password faster than the login form allows
        (429 with Retry-After).
        """
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id)
        attempt = limits.admit(self.uow, self.clock, account.login, ip, account_id=account.id)
        if not verify_secret(self.hasher, account.password_hash, password):
            with self.uow.transaction() as session:
                limits.settle(session, attempt, "reauth_wrong_password")
            raise domain.wrong_password()
        with self.uow.transaction() as session:
            limits.forget(session, attempt)
        return account

    def _check_second_factor(self, account_id: str, otp, ip: str | None, change) -> None:
        """Lock the account and let ``change(session, account, now)`` check ``otp`` and act on it (it
        answers whether the code matched); a wrong code counts like a failed login from ``ip``:
        429 after 5 in a row, as at the login form."""
        now = self.clock.now()
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id)
            familiar = limits.hold(session, account.login, ip, now)  # before the row lock, as every path
            account = account_or_not_found(session, account_id, lock=True)
            matched = change(session, account, now)
            if not matched:
                limits.record(session, account.login, ip, now, familiar=familiar, account_id=account.id,
                              success=False, reason="invalid_otp")
        if not matched:
            raise _invalid_otp()

    # -- the phone (P6): it receives the calls that confirm operations (S7)
    def allow_phone_change(self, account_id: str, password, verification_id, ip: str | None,
                           phone_changes: bool) -> None:
        """Re-authenticate a profile edit that sends a password or changes the phone, and spend the
        phone proof a customer who confirms operations by call must bring to change it.

        Without this a stolen session set its own number, verified it, and confirmed operations.
        """
        if not password:
            raise ValidationError({"password": ["required to change the phone number"]},
                                  "Changing the phone number needs your current password.")
        account = self._reauthenticate(account_id, password, ip)
        if phone_changes and account.confirm_operations:
            self._spend_proof(account, "change_phone", verification_id, None)

    # -- e-mail (P3)
    def request_email_change(self, account_id: str, email, password, ip: str | None = None) -> dict:
        data = load(EmailChangeSchema, {"email": email, "password": password})
        account = self._reauthenticate(account_id, data["password"], ip)
        if data["email"].casefold() == account.email.casefold():
            raise ValidationError({"email": ["is already the address of this account"]})
        now = self.clock.now()
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id, lock=True)
            # Only the newest request counts: an older link must not switch the address later.
            session.execute(update(EmailToken).where(
                EmailToken.account_id == account.id, EmailToken.purpose == "change",
                EmailToken.used_at.is_(None)).values(used_at=now))
            issue_email_token(session, account, data["email"], "change", now)
            record_security_event(session, account, "email_change_requested", ip, now,
                                  {"new_email": data["email"]}, notify=False)
        return {"email": account.email, "pending_email": data["email"]}

    def confirm_email(self, token) -> dict:
        """Confirm the registration address or switch to a pending new one; each token works once."""
        if not isinstance(token, str) or not token or len(token) > 256:
            raise DomainError("token_unknown", "This confirmation link is not valid.")
        now = self.clock.now()
        with self.uow.transaction() as session:
            row = session.scalar(select(EmailToken).where(EmailToken.token_hash == security.token_hash(token))
                                 .with_for_update())
            refusal = domain.email_token_refusal(row, now)
            if refusal is not None:
                raise refusal
            row.used_at = now
            account = account_or_not_found(session, row.account_id, lock=True)
            if row.purpose == "change":
                old_email, account.email = account.email, row.email
                account.email_confirmed = True
                account.updated_at = now
                publish_later(session, "email_changed", {
                    "account_id": account.id, "old_email": old_email, "new_email": account.email,
                    "at": iso(now), "first_name": account.first_name, "language": account.language})
                publish_later(session, "profile_changed", {"account_id": account.id, "fields": ["email"],
                                                           **buyer_fields(account)})
                record_security_event(session, account, "email_changed", None, now,
                                      {"old_email": old_email, "new_email": account.email}, notify=False)
            elif row.email == account.email:
                account.email_confirmed = True
            else:
                # the address was changed since this registration link was sent
                raise DomainError("token_expired", "This confirmation link is for an address no longer in use.")
            return {"email": account.email, "email_confirmed": account.email_confirmed}

    # -- password (S5)
    def change_password(self, account_id: str, session_id: str | None, current_password, new_password,
                        confirmation, ip: str | None = None, verification_id=None) -> None:
        data = load(PasswordChangeSchema, {"current_password": current_password, "new_password": new_password,
                                             "new_password_confirmation": confirmation,
                                             "verification_id": verification_id})
        account = self._reauthenticate(account_id, data["current_password"], ip)
        domain.refuse_mismatched_password(data["new_password"], data["new_password_confirmation"])
        security.check_password_policy(data["new_password"], account.login)
        if account.confirm_operations:
            self._spend_proof(account, "change_password", data["verification_id"], None)
        password_hash = hash_secret(self.hasher, data["new_password"])
        now = self.clock.now()
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id, lock=True)
            account.password_hash = password_hash
            account.updated_at = now
            ended = end_sessions(session, account.id, now, keep=session_id)
            record_security_event(session, account, "password_changed", ip, now)
            if ended:
                record_security_event(session, account, "sessions_ended", ip, now, {"count": ended},
                                      notify=False)  # the password mail already says so

    # -- security code (S2)
    def set_security_code(self, account_id: str, code, ip: str | None = None) -> dict:
        code_hash = tpool.execute(security.hash_security_code, self.hasher, code)
        now = self.clock.now()
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id, lock=True)
            if account.security_code_hash is not None:
                raise DomainError("already_set", "The security code is set and cannot be changed; "
                                                 "contact support if you lost it.")
            account.security_code_hash = code_hash
            record_security_event(session, account, "security_code_set", ip, now)
        return {"security_code_set": True}

    def check_security_code(self, account_id: str, code) -> bool:
        """For support staff: whether the code a caller told them is right; 5 wrong tries an hour."""
        now = self.clock.now()
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id, lock=True)
            failures = session.scalars(select(SecurityCodeCheck.at).where(
                SecurityCodeCheck.account_id == account.id, SecurityCodeCheck.matched.is_(False),
                SecurityCodeCheck.at > now - security.SECURITY_CODE_FAILURE_WINDOW)).all()
            wait = security.security_code_check_limited(failures, now)
            if wait:
                raise DomainError("rate_limited", "Too many wrong security codes for this account; "
                                                  "try again later.", details={"retry_after": wait})
            # Counted as wrong until proven right, so parallel guesses all count against the limit.
            check = SecurityCodeCheck(account_id=account.id, at=now, matched=False)
            session.add(check)
            session.flush()
            check_id, stored = check.id, account.security_code_hash
        # with no code set, the verify runs against nothing and costs the same
        matched = tpool.execute(security.security_code_matches, self.hasher, stored or "", code)
        with self.uow.transaction() as session:
            if matched:
                session.execute(update(SecurityCodeCheck).where(SecurityCodeCheck.id == check_id)
                                .values(matched=True))
            account = account_or_not_found(session, account_id)
            record_security_event(session, account, "security_code_checked", None, now,
                                  {"matched": bool(matched)}, notify=False)
        return bool(matched)

    # -- IP allow list (S3)
    def set_ip_restriction(self, account_id: str, rules, password, confirm_lockout, ip: str,
                           verification_id=None, session_id: str | None = None) -> dict:
        if not isinstance(rules, list):
            raise ValidationError({"rules": ["must be a list of lines"]})
        allowed = security.IpAllowList.parse(rules)
        account = self._reauthenticate(account_id, password, ip)
        domain.refuse_lockout(allowed, ip, confirm_lockout is True)
        if account.confirm_operations:
            self._spend_proof(account, "change_ip_restriction", verification_id, None)
        now = self.clock.now()
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id, lock=True)
            account.ip_rules = allowed.lines()
            account.updated_at = now
            access_changed(session, account.id)   # a session from an address no longer covered stops
            record_security_event(session, account, "ip_restriction_changed", ip, now,
                                  {"rules": allowed.lines()})
            return _security_view(session, account, session_id)

    # -- two-factor authentication (S6)
    def start_two_factor(self, account_id: str, password, ip: str | None = None) -> dict:
        """The secret to scan; needs the password, or a stolen session could turn 2FA on with a
        secret of its own and lock the owner out."""
        if not password:
            raise ValidationError({"password": ["required"]}, "Starting two-factor authentication needs "
                                                              "your current password.")
        self._reauthenticate(account_id, password, ip)
        secret = security.new_totp_secret()
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id, lock=True)
            _refuse_enabled(account)
            account.totp_pending_secret = secret
            return {"secret": secret, "otpauth_uri": security.otpauth_uri(secret, account.login)}

    def confirm_two_factor(self, account_id: str, otp, ip: str | None = None) -> dict:
        codes, hashes = security.new_recovery_codes()

        def turn_on(session, account: Account, now) -> bool:
            _refuse_enabled(account)
            if account.totp_pending_secret is None:
                raise DomainError("conflict", "Start the enrolment first (POST /api/v1/security/2fa).")
            step = security.verify_totp(account.totp_pending_secret, otp, now, None)
            if step is None:
                return False
            account.totp_secret, account.totp_pending_secret = account.totp_pending_secret, None
            account.totp_last_step = step
            account.recovery_code_hashes = hashes
            record_security_event(session, account, "two_factor_enabled", ip, now)
            return True

        self._check_second_factor(account_id, otp, ip, turn_on)
        return {"recovery_codes": codes}

    def disable_two_factor(self, account_id: str, password, otp, ip: str | None = None) -> None:
        self._reauthenticate(account_id, password, ip)

        def turn_off(session, account: Account, now) -> bool:
            if account.totp_secret is None:
                raise DomainError("conflict", "Two-factor authentication is not on.")
            if not accept_second_factor(account, otp, now):
                return False
            account.totp_secret = account.totp_pending_secret = account.totp_last_step = None
            account.recovery_code_hashes = []
            record_security_event(session, account, "two_factor_disabled", ip, now)
            return True

        self._check_second_factor(account_id, otp, ip, turn_off)

    # -- timeline, freeze
    def events(self, account_id: str, limit: int = 50, cursor: str | None = None) -> dict:
        """The security timeline, newest first."""
        query = select(SecurityEvent).where(SecurityEvent.account_id == account_id)
        with self.uow.transaction() as session:
            return keyset_page(session, query, [SecurityEvent.id], limit, cursor).answer(domain.security_event_view)

    def freeze(self, account_id: str, ip: str | None = None) -> None:
        """"This was not me": end every session and refuse logins until support unfreezes."""
        now = self.clock.now()
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id, lock=True)
            account.frozen = True
            account.updated_at = now
            ended = end_sessions(session, account.id, now)
            record_security_event(session, account, "account_frozen", ip, now, {"sessions_ended": ended})

    def freeze_by_operator(self, account_id: str, operator, caller: str | None = None) -> dict:
        """Support freezes an account (a caller says someone else is in it): as the customer's own freeze.

        The timeline names the operator and the broker login that asked; the customer gets no "as you
        asked" e-mail, since they did not ask. Freezing a frozen account changes nothing.
        """
        operator = domain.operator_name(operator)
        now = self.clock.now()
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id, lock=True)
            if not account.frozen:
                account.frozen = True
                account.updated_at = now
                ended = end_sessions(session, account.id, now)
                record_security_event(session, account, "account_frozen", None, now,
                                      {"operator": operator, "caller": caller, "sessions_ended": ended},
                                      notify=False)
            return {"account_id": account.id, "frozen": True}

    def unfreeze(self, account_id: str, operator, caller: str | None = None) -> dict:
        """Support lets the account log in again; the timeline keeps the operator's name and
        the broker login that asked."""
        operator = domain.operator_name(operator)
        now = self.clock.now()
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id, lock=True)
            if account.frozen:
                account.frozen = False
                account.updated_at = now
                record_security_event(session, account, "account_unfrozen", None, now,
                                      {"operator": operator, "caller": caller}, notify=False)
            return {"account_id": account.id, "frozen": False}

    def account_overview(self, account_id: str) -> dict:
        """For support staff: the profile, whether the account is frozen, and what security is set."""
        with self.uow.transaction() as session:
            return domain.account_overview(account_or_not_found(session, account_id))


def _security_view(session, account: Account, session_id: str | None) -> dict:
    return domain.security_view(account, previous_login(session, account.id, session_id))


def _refuse_enabled(account: Account) -> None:
    if account.totp_secret is not None:
        raise DomainError("already_enabled", "Two-factor authentication is already on; turn it off first.")


def _invalid_otp() -> DomainError:
    return DomainError("invalid_otp", "The code is wrong or was already used.", fields={"otp": ["wrong"]})
