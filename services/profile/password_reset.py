"""Password reset by e-mail (A1).

A stranger learns nothing from asking: every request answers the same body, after the same
work (one lookup, one row written), whether an account matched or not; the limits a stranger
meets (per client address, per login or e-mail typed) are the same for names that exist and
names that do not. The mail goes only to the account's main e-mail address, carries a token
that works once within an hour, and the token alone is not enough when 2FA is on.

A frozen account stays frozen: the customer froze it because someone else got in ("this was
not me"), and that someone may be reading the mailbox too. So no token is mailed while it is
frozen, a token mailed before the freeze is dead (410) even after support unfreezes, and a
confirm on a frozen account is 403 ``account_frozen``; support restores access after checking
the caller's security code.
"""
from __future__ import annotations

import hashlib
from datetime import timedelta

import structlog
from sqlalchemy import func, select

from services.common.clock import iso
from services.common.config import env_int
from services.common.errors import DomainError
from services.common.locks import lock
from services.common.outbox import publish_later
from services.common.schemas import load
from services.profile import domain, security
from services.profile import limits as login_limits
from services.profile.application import account_or_not_found, hash_secret, record_security_event
from services.profile.models import Account, PasswordResetRequest, PasswordResetToken, SecurityEvent
from services.profile.schemas import PasswordResetConfirmSchema, PasswordResetRequestSchema
from services.profile.sessions import accept_second_factor, end_sessions

log = structlog.get_logger(__name__)

HOUR = timedelta(hours=1)
# One e-mail address may serve several accounts; a request by address mails at most this many.
ACCOUNTS_PER_ADDRESS = 10


def limits() -> dict[str, int]:
    """Requests an hour: per client address and per name typed (429), mails per account (silent)."""
    return {"per_ip": env_int("PASSWORD_RESET_PER_IP_HOUR", 20),
            "per_name": env_int("PASSWORD_RESET_PER_NAME_HOUR", 5),
            "mails_per_account": env_int("PASSWORD_RESET_MAILS_PER_ACCOUNT_HOUR", 5)}


class PasswordResets:
    def __init__(self, uow, hasher: security.PasswordHasher, clock):
        self.uow = uow
        self.hasher = hasher
        self.clock = clock

    def request(self, login=None, email=None, ip: str = "") -> dict:
        """Mail a reset link to the account named by ``login`` or ``email``, if there is one.

        The answer is the same either way. Over the limits: 429 ``rate_limited`` for the client
        address or the name typed, whether or not it exists; an account that already got its
        hourly share of mails gets no more, silently (the answer must not tell it apart).
        """
        data = load(PasswordResetRequestSchema, {k: v for k, v in (("login", login), ("email", email))
                                                   if v is not None})
        typed_login = data["login"].strip().lower() if "login" in data else None
        named = domain.reset_requested_for(typed_login, data.get("email"))
        requested_for = hashlib.sha256(named.encode()).hexdigest()
        ip = ip if isinstance(ip, str) else ""
        quota = limits()
        now = self.clock.now()
        with self.uow.transaction() as session:
            # Concurrent requests from one address or for one name are judged one after the other
            # (always in this order, so two requests never wait for each other's lock).
            lock(session, f"password-reset-ip:{ip}")
            lock(session, f"password-reset:{requested_for}")
            wait = max(
                security.requests_limited(session.scalars(select(PasswordResetRequest.at).where(
                    PasswordResetRequest.ip == ip, PasswordResetRequest.at > now - HOUR)).all(),
                    now, quota["per_ip"], HOUR),
                security.requests_limited(session.scalars(select(PasswordResetRequest.at).where(
                    PasswordResetRequest.requested_for == requested_for, PasswordResetRequest.at > now - HOUR)).all(),
                    now, quota["per_name"], HOUR))
            if wait:
                raise DomainError("rate_limited", "Too many password reset requests; wait and try again.",
                                  details={"retry_after": wait})
            session.add(PasswordResetRequest(requested_for=requested_for, ip=ip, at=now))
            for account in _accounts_named(session, typed_login, data.get("email")):
                self._mail_token(session, account, ip, now, quota["mails_per_account"])
        return {"status": "accepted"}

    def _mail_token(self, session, account: Account, ip: str, now, mails_per_hour: int) -> None:
        if account.frozen:
            log.info("password reset not mailed: the account is frozen", account_id=account.id)
            return
        mailed = session.scalar(select(func.count()).select_from(PasswordResetToken).where(
            PasswordResetToken.account_id == account.id, PasswordResetToken.created_at > now - HOUR))
        if mailed >= mails_per_hour:
            log.info("password reset not mailed: the account had its share this hour", account_id=account.id)
            return
        token, digest = security.new_token()
        expires = now + domain.RESET_TOKEN_LIFETIME
        session.add(PasswordResetToken(token_hash=digest, account_id=account.id, created_at=now, expires_at=expires))
        publish_later(session, "password_reset_requested", {
            "account_id": account.id, "to": account.email, "login": account.login, "token": token,
            "first_name": account.first_name, "language": account.language, "expires_at": iso(expires),
            "ip_address": ip or None})

    def confirm(self, token, new_password, new_password_confirmation, otp=None, ip: str = "") -> dict:
        """Set the password a reset token was mailed for; every session of the account ends.

        Answers ``{"account_id"}`` so that the gateway forgets the account's tokens at once.
        """
        data = load(PasswordResetConfirmSchema, {
            "token": token, "new_password": new_password, "new_password_confirmation": new_password_confirmation,
            "otp": otp})
        digest = security.token_hash(data["token"])
        now = self.clock.now()
        with self.uow.transaction() as session:
            row, refusal = _token(session, digest, now)
            if refusal is not None:
                raise refusal
            account = account_or_not_found(session, row.account_id)
            limited = None
            if account.totp_secret:
                # wrong codes count like failed logins from this address: checked before the slow hash
                try:
                    login_limits.hold(session, account.login, ip, now)
                except DomainError as too_many:
                    limited = too_many
        if account.frozen:
            raise domain.frozen_refusal()
        domain.refuse_mismatched_password(data["new_password"], data["new_password_confirmation"])
        security.check_password_policy(data["new_password"], account.login)
        if account.totp_secret:
            if limited is not None:
                raise limited
            if data["otp"] is None or not data["otp"].strip():
                raise DomainError("otp_required", "Enter the code from your authenticator app or a recovery code.",
                                  fields={"otp": ["required"]})
        # Outside any transaction: argon2 takes tens of milliseconds on purpose.
        password_hash = hash_secret(self.hasher, data["new_password"])
        with self.uow.transaction() as session:
            # the limits' locks first, then the rows, as on every path (limits.py)
            familiar = login_limits.hold(session, account.login, ip, now) if account.totp_secret else False
            row, refusal = _token(session, digest, now, lock_row=True)  # a concurrent confirm may have won
            account = account_or_not_found(session, row.account_id, lock=True) if row else None
            if refusal is None and account.frozen:
                refusal = domain.frozen_refusal()
            if refusal is None and account.totp_secret and not accept_second_factor(account, data["otp"], now):
                # A wrong code counts like a failed login: the login backoff guards it too.
                login_limits.record(session, account.login, ip, now, familiar=familiar, account_id=account.id,
                                    success=False, reason="reset_invalid_otp")
                refusal = DomainError("invalid_otp", "The code is wrong or was already used.",
                                      fields={"otp": ["wrong"]}, status=401)
            if refusal is None:
                row.used_at = now
                account.password_hash = password_hash
                account.updated_at = now
                ended = end_sessions(session, account.id, now)
                record_security_event(session, account, "password_reset", ip or None, now,
                                      {"sessions_ended": ended}, notify=False)
                # The customer hears of it at the main address, whoever asked for the link.
                publish_later(session, "password_changed", {
                    "account_id": account.id, "at": iso(now), "ip_address": ip or None,
                    "first_name": account.first_name, "reset": True})
        if refusal is not None:
            raise refusal
        return {"account_id": account.id}


def _accounts_named(session, login: str | None, email: str | None) -> list[Account]:
    if email is not None:
        return list(session.scalars(select(Account).where(func.lower(Account.email) == email.casefold())
                                    .order_by(Account.created_at).limit(ACCOUNTS_PER_ADDRESS)))
    try:
        login = security.normalise_login(login)
    except DomainError:
        return []  # no account has a login of this form; the request counted all the same
    account = session.scalar(select(Account).where(Account.login == login))
    return [account] if account is not None else []


def _token(session, digest: str, now, lock_row: bool = False):
    """The token row and why it cannot be used now (None when it can)."""
    query = select(PasswordResetToken).where(PasswordResetToken.token_hash == digest)
    row = session.scalar(query.with_for_update() if lock_row else query)
    ended_since = row is not None and session.scalar(select(SecurityEvent.id).where(
        SecurityEvent.account_id == row.account_id, SecurityEvent.kind.in_(domain.RESET_ENDING_EVENTS),
        SecurityEvent.at >= row.created_at).limit(1)) is not None
    return row, domain.reset_token_refusal(row, now, ended_since)
