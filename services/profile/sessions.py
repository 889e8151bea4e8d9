"""Logging in and out, and checking a token on every request (S3, S4, S6, brute force).

A stranger must learn nothing from trying: an unknown login costs the same argon2 verify
as a known one and gets the same answer; failures slow the account down (backoff, never a
permanent lock) and limit the client IP, both decided atomically (limits.py).
"""
from __future__ import annotations

import uuid
from datetime import timedelta
from functools import lru_cache

from sqlalchemy import or_, select, update

from services.common.clock import as_utc, iso
from services.common.config import env_float
from services.common.errors import DomainError, NotFound
from services.common.outbox import publish_later
from services.common.pagination import keyset_page
from services.profile import domain, limits, security
from services.profile.application import account_or_not_found, record_security_event, verify_secret
from services.profile.models import Account, LoginAttempt, Session


@lru_cache(maxsize=1024)
def allow_list(lines: tuple[str, ...]) -> security.IpAllowList:
    """The parsed allow list of stored (already normalised) lines; cached, it is read on every request."""
    return security.IpAllowList.parse(lines)


def accept_second_factor(account: Account, otp, now) -> bool:
    """Whether ``otp`` is a fresh TOTP code or an unused recovery code of ``account`` (S6).

    Uses it up: the code's time step becomes the last used one (no replay in the same
    step), a recovery code is removed. The caller holds the account row locked.
    """
    step = security.verify_totp(account.totp_secret, otp, now, account.totp_last_step)
    if step is not None:
        account.totp_last_step = step
        return True
    hashes = list(account.recovery_code_hashes or [])
    index = security.match_recovery_code(otp, hashes)
    if index is None:
        return False
    del hashes[index]
    account.recovery_code_hashes = hashes
    return True


def invalid_credentials() -> DomainError:
    return DomainError("invalid_credentials", "The login or the password is wrong.")


def ip_not_allowed(ip: str) -> DomainError:
    return DomainError("ip_not_allowed", f"This account may not be used from {ip}.", details={"ip": ip})


class Sessions:
    def __init__(self, uow, hasher: security.PasswordHasher, clock):
        self.uow = uow
        self.hasher = hasher
        self.clock = clock

    def log_in(self, login, password, otp, ip: str, user_agent) -> dict:
        now = self.clock.now()
        key = login.strip().lower()[:64] if isinstance(login, str) else ""
        user_agent = user_agent[:300] if isinstance(user_agent, str) else ""
        with self.uow.transaction() as session:
            account = session.scalar(select(Account).where(Account.login == key))
        # 429 here records nothing: an attempt that was not checked is no failure
        attempt = limits.admit(self.uow, self.clock, key, ip, account_id=account.id if account else None,
                               user_agent=user_agent)
        # Outside any transaction: argon2 takes tens of milliseconds on purpose.
        matches = verify_secret(self.hasher, account.password_hash if account else None, password)
        refusal = None
        if not matches:
            refusal = invalid_credentials()
        elif account.frozen:
            refusal = DomainError("account_frozen", "This account is frozen; please contact support.")
        elif not allow_list(tuple(account.ip_rules or ())).covers(ip):
            refusal = ip_not_allowed(ip)
        with self.uow.transaction() as session:
            if refusal is None and account.totp_secret:
                account = account_or_not_found(session, account.id, lock=True)
                refusal = _second_factor_refusal(account, otp, now)
            limits.settle(session, attempt, refusal.error_code if refusal else None)
            if refusal is None:
                answer = self._open_session(session, account, ip, user_agent, now)
        if refusal is not None:
            raise refusal
        return answer

    def _open_session(self, session, account: Account, ip: str, user_agent: str, now) -> dict:
        seen_before = session.scalar(select(LoginAttempt.id).where(
            LoginAttempt.account_id == account.id, LoginAttempt.success.is_(True),
            LoginAttempt.ip == ip, LoginAttempt.at < now).limit(1))
        # The first login of an account has nothing to compare with: only later ones can be "new".
        if seen_before is None and account.last_login_at is not None:
            record_security_event(session, account, "new_ip_login", ip, now, {"user_agent": user_agent})
        token, digest = security.new_token()
        expires = now + timedelta(hours=env_float("SESSION_HOURS", 12))
        session.add(Session(id=str(uuid.uuid4()), account_id=account.id, token_hash=digest, ip=ip,
                            user_agent=user_agent, created_at=now, expires_at=expires, last_seen_at=now))
        session.execute(update(Account).where(Account.id == account.id)
                        .values(last_login_ip=ip, last_login_at=now))
        return {"token": token, "expires_at": iso(expires)}

    def authenticate(self, token, ip: str) -> dict:
        """The account behind a bearer token, checked on every request: one indexed query.

        A2: the session's ``last_seen_at`` moves at most once a minute (``domain.seen_again``),
        so all but one request a minute per session stay reads.
        """
        if not isinstance(token, str) or not token or len(token) > 200:
            raise _unauthenticated()
        now = self.clock.now()
        with self.uow.read() as session:   # the select, and now and then the update, each on its own
            row = session.execute(
                select(Session.id, Session.account_id, Session.expires_at, Session.last_seen_at, Account.frozen,
                       Account.ip_rules)
                .join(Account, Account.id == Session.account_id)
                .where(Session.token_hash == security.token_hash(token), Session.ended_at.is_(None))).first()
            if row is None or as_utc(row.expires_at) <= now or row.frozen:
                raise _unauthenticated()
            # S3: a session opened from an address the list no longer covers stops working.
            if not allow_list(tuple(row.ip_rules or ())).covers(ip):
                raise ip_not_allowed(ip)
            if domain.seen_again(row.last_seen_at, now):
                # Conditional, so concurrent requests of one session write it once.
                session.execute(update(Session).where(
                    Session.id == row.id,
                    or_(Session.last_seen_at.is_(None), Session.last_seen_at <= now - domain.SEEN_EVERY))
                    .values(last_seen_at=now))
        # expires_at: the gateway remembers this answer for a moment, never past it.
        return {"account_id": row.account_id, "session_id": row.id, "expires_at": iso(as_utc(row.expires_at))}

    def log_out(self, token) -> None:
        if not isinstance(token, str):
            return
        with self.uow.transaction() as session:
            ended = session.execute(update(Session).where(Session.token_hash == security.token_hash(token),
                                                          Session.ended_at.is_(None))
                                    .values(ended_at=self.clock.now()).returning(Session.account_id)).first()
            if ended is not None:
                access_changed(session, ended.account_id)

    def end_other_sessions(self, account_id: str, session_id: str, ip: str | None = None) -> int:
        now = self.clock.now()
        with self.uow.transaction() as session:
            account = account_or_not_found(session, account_id)
            ended = end_sessions(session, account_id, now, keep=session_id)
            if ended:
                record_security_event(session, account, "sessions_ended", ip, now, {"count": ended})
            return ended

    def live_sessions(self, account_id: str, current_session_id: str | None = None, limit: int = 50,
                      cursor: str | None = None) -> dict:
        """The account's sessions that still work, newest first; ``current`` marks the caller's (A2)."""
        now = self.clock.now()
        query = select(Session).where(Session.account_id == account_id, Session.ended_at.is_(None),
                                      Session.expires_at > now)
        with self.uow.transaction() as session:
            page = keyset_page(session, query, [Session.created_at, Session.id], limit, cursor)
        return page.answer(lambda row: domain.session_view(row, current_session_id))

    def end_session(self, account_id: str, session_id, ip: str | None = None) -> None:
        """End one live session of the account (A2); another account's, or one already ended, is not_found."""
        if not isinstance(session_id, str) or len(session_id) > 36:
            raise NotFound("session")
        now = self.clock.now()
        with self.uow.transaction() as session:
            row = session.scalar(select(Session).where(
                Session.id == session_id, Session.account_id == account_id, Session.ended_at.is_(None),
                Session.expires_at > now).with_for_update())
            if row is None:
                raise NotFound("session")
            row.ended_at = now
            access_changed(session, account_id)
            account = account_or_not_found(session, account_id)
            # On the timeline, not mailed: the customer did it from a session of their own.
            record_security_event(session, account, "session_ended", ip, now,
                                  {"session_ip": row.ip, "user_agent": row.user_agent}, notify=False)

    def login_history(self, account_id: str, limit: int = 50, cursor: str | None = None) -> dict:
        """Every login attempt on the account, newest first (S4)."""
        query = select(LoginAttempt).where(LoginAttempt.account_id == account_id)
        with self.uow.transaction() as session:
            return keyset_page(session, query, [LoginAttempt.id], limit, cursor).answer(domain.login_view)


def previous_login(session, account_id: str, current_session_id: str | None) -> dict | None:
    """S4 "last login" for the caller: the newest login other than the one that opened its session."""
    query = select(Session).where(Session.account_id == account_id)
    if current_session_id is not None:
        query = query.where(Session.id != current_session_id)
    return domain.previous_login_view(session.scalar(
        query.order_by(Session.created_at.desc(), Session.id.desc()).limit(1)))


def end_sessions(session, account_id: str, now, keep: str | None = None) -> int:
    """End every open session of the account except ``keep``; answers how many ended."""
    query = update(Session).where(Session.account_id == account_id, Session.ended_at.is_(None))
    if keep is not None:
        query = query.where(Session.id != keep)
    access_changed(session, account_id)
    return session.execute(query.values(ended_at=now)).rowcount


def access_changed(session, account_id: str) -> None:
    """Tell every gateway, with this transaction, to stop trusting what it remembers of the
    account's sessions: some ended, or what they may do narrowed (gateway/sessions.py)."""
    publish_later(session, "session_access_changed", {"account_id": account_id})


def _second_factor_refusal(account: Account, otp, now) -> DomainError | None:
    if otp is None or (isinstance(otp, str) and not otp.strip()):
        return DomainError("otp_required", "Enter the code from your authenticator app or a recovery code.",
                           fields={"otp": ["required"]})
    if not accept_second_factor(account, otp, now):
        return DomainError("invalid_otp", "The code is wrong or was already used.", status=401)
    return None


def _unauthenticated() -> DomainError:
    return DomainError("unauthenticated", "Log in first: the token is missing, wrong or ended.")
