"""The limits a stranger meets (issue 17): failed logins per account and per address, and
registrations per address, each decided atomically.

A limit is a read (how many failures so far?) followed by a write (one more). Two requests
that both read before either writes are both let through: 40 wrong passwords sent at once
used to be judged 14 times instead of 5. So every decision takes the transaction locks of
the address and the login first (PostgreSQL advisory locks, always in that order; SQLite
has one writer per file and the service one connection to it, so its transactions are one
at a time already), and an attempt is recorded as a failure *before* the slow password check
runs, to be settled afterwards: a concurrent attempt waits for the lock and then counts it.

Counts: an address from which the account logged in successfully in the last 30 days keeps
its own run of failures; every other address shares one. A stranger who knows a login can
slow down only the strangers' count, never the owner at a familiar address.
"""
from __future__ import annotations

from sqlalchemy import delete, select, update

from services.common.config import env_int
from services.common.database import lock
from services.common.errors import DomainError
from services.profile import security
from services.profile.models import Account, LoginAttempt

PENDING = "pending"  # recorded before the password is checked; counts as a failure until settled
RUN_LENGTH = 30  # failures past the backoff's cap change nothing: read no more of the run than this


def rate_limited(wait: int, message: str = "Too many failed attempts; wait and try again.") -> DomainError:
    return DomainError("rate_limited", message, details={"retry_after": wait})


def admit(session, login: str, ip: str | None, now, *, account_id: str | None = None,
          user_agent: str = "") -> int:
    """Let an attempt on ``login`` from ``ip`` be judged, or refuse it with 429 (nothing recorded).

    The attempt is recorded as a failure before it is judged: answers its id, for :func:`settle`
    or :func:`forget` once it is.
    """
    ip = ip or ""
    familiar = hold(session, login, ip, now)
    return record(session, login, ip, now, familiar=familiar, account_id=account_id, user_agent=user_agent,
                  success=False, reason=PENDING)


def hold(session, login: str, ip: str | None, now) -> bool:
    """Take the locks of ``ip`` and ``login`` for this transaction and refuse (429) when either limit
    is reached; answers whether ``ip`` is familiar to the account (its count is its own)."""
    ip = ip or ""
    lock(session, f"login-ip:{ip}")
    lock(session, f"login:{login}")
    familiar = _familiar(session, login, ip, now)
    # (an attempt that names no address comes from another Introserv system, not a client)
    ip_failures = session.scalars(
        select(LoginAttempt.at).where(LoginAttempt.ip == ip, LoginAttempt.success.is_(False),
                                      LoginAttempt.at > now - security.IP_FAILURE_WINDOW)
        .order_by(LoginAttempt.at.desc()).limit(security.IP_FAILURE_LIMIT)).all() if ip else []
    failures, last_failure = _run_of_failures(session, login, ip, familiar)
    wait = max(security.ip_limited(ip_failures, now), security.login_backoff(failures, last_failure, now))
    if wait:
        raise rate_limited(wait)
    return familiar


def record(session, login: str, ip: str | None, now, *, familiar: bool, account_id: str | None,
           user_agent: str = "", success: bool, reason: str) -> int:
    """Write one attempt (the login history shows it, the limits count it); answers its id."""
    attempt = LoginAttempt(account_id=account_id, login=login, ip=ip or "", user_agent=user_agent, at=now,
                           success=success, reason=reason, familiar=familiar)
    session.add(attempt)
    session.flush()
    return attempt.id


def settle(session, attempt_id: int, refusal: str | None) -> None:
    """The outcome of an admitted attempt: a success (``refusal`` None) or the refusal's code."""
    session.execute(update(LoginAttempt).where(LoginAttempt.id == attempt_id)
                    .values(success=refusal is None, reason=refusal or "ok"))


def forget(session, attempt_id: int) -> None:
    """An admitted re-authentication whose password was right: it was no login, and no failure."""
    session.execute(delete(LoginAttempt).where(LoginAttempt.id == attempt_id))


def _familiar(session, login: str, ip: str, now) -> bool:
    if not ip:
        return False
    return session.scalar(select(LoginAttempt.id).where(
        LoginAttempt.login == login, LoginAttempt.ip == ip, LoginAttempt.success.is_(True),
        LoginAttempt.at > now - security.FAMILIAR_ADDRESS_FOR).limit(1)) is not None


def _run_of_failures(session, login: str, ip: str, familiar: bool):
    """How many attempts failed in a row in this address's count, and when the last one did.

    A familiar address counts its own attempts; every other address shares one count. Only a
    success within a count ends its run: the owner logging in at home does not give a stranger
    five fresh guesses.
    """
    mine = LoginAttempt.ip == ip if familiar else LoginAttempt.familiar.is_(False)
    recent = session.execute(select(LoginAttempt.success, LoginAttempt.at)
                             .where(LoginAttempt.login == login, mine)
                             .order_by(LoginAttempt.at.desc(), LoginAttempt.id.desc()).limit(RUN_LENGTH)).all()
    count = 0
    for success, _ in recent:
        if success:
            break
        count += 1
    return count, (recent[0].at if count else None)


# --------------------------------------------------------------------------- registrations

def registrations_per_hour() -> int:
    """How many accounts one client address may register in an hour (``REGISTRATIONS_PER_IP_HOUR``)."""
    return env_int("REGISTRATIONS_PER_IP_HOUR", 600)


def refuse_too_many_registrations(session, ip: str | None, now) -> None:
    """429 when ``ip`` registered its hourly allowance already; holds the address's lock till commit.

    Each registration mails an address the caller chose, so an unlimited form is a free mail
    cannon with Introserv's name on it. Callers that give no address (other Introserv systems
    over RPC) are not limited.
    """
    if not ip:
        return
    limit = registrations_per_hour()
    lock(session, f"register-ip:{ip}")
    newest = session.scalars(select(Account.created_at).where(
        Account.registration_ip == ip, Account.created_at > now - security.REGISTRATION_WINDOW)
        .order_by(Account.created_at.desc()).limit(limit)).all()
    wait = security.requests_limited(newest, now, limit, security.REGISTRATION_WINDOW)
    if wait:
        raise rate_limited(wait, "Too many accounts were registered from your address; try again later.")
