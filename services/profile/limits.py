"""The limits a stranger meets (issue 17): failed logins per account and per address, and
registrations per address, each decided atomically.

A limit is a read (how many failures so far?) followed by a write (one more). Two requests
that both read before either writes are both let through: 40 wrong passwords sent at once
used to be judged 14 times instead of 5. So every decision takes the transaction locks of
the address and the login first (PostgreSQL advisory locks, always in that order; SQLite
has one writer per file and the service one connection to it, so its transactions are one
at a time already), and an attempt is recorded as *pending* before the slow password check
runs, to be settled afterwards: a concurrent attempt waits for the lock and then sees it. A
limit that only pending attempts would reach is not yet a refusal (they may be right
passwords, and a success ends a run of failures): such an attempt waits its turn outside the
transaction, and is judged once they are settled, as if the attempts had come one by one.

Counts: an address from which the account logged in successfully in the last 30 days keeps
its own run of failures; every other address shares one. A stranger who knows a login can
slow down only the strangers' count, never the owner at a familiar address.
"""
from __future__ import annotations

import time
from datetime import timedelta

import eventlet
from sqlalchemy import delete, select, update

from services.common.clock import as_utc
from services.common.config import env_int
from services.common.database import lock
from services.common.errors import DomainError
from services.profile import security
from services.profile.models import Account, LoginAttempt

PENDING = "pending"  # recorded before the password is checked, settled after
# A pending attempt older than this was lost with its worker: it counts as the failure it may be.
PENDING_FOR_AT_MOST = timedelta(seconds=30)
# How long an attempt waits for the pending ones ahead of it (an argon2 check takes tens of
# milliseconds), well within the caller's RPC timeout; then it is refused for a second.
TURN_WAIT_SECONDS = 3.0
RUN_LENGTH = 30  # failures past the backoff's cap change nothing: read no more of the run than this
IP_ROWS_READ = 200


def rate_limited(wait: int, message: str = "Too many failed attempts; wait and try again.") -> DomainError:
    return DomainError("rate_limited", message, details={"retry_after": wait})


class NotYourTurn(DomainError):
    """A limit that only attempts still being checked would reach: wait for them (a 429 of one
    second for a caller that cannot wait)."""

    def __init__(self):
        super().__init__("rate_limited", "Too many attempts at once; try again in a moment.",
                         details={"retry_after": 1})


def admit(uow, clock, login: str, ip: str | None, *, account_id: str | None = None, user_agent: str = "") -> int:
    """Let an attempt on ``login`` from ``ip`` be judged, or refuse it with 429 (nothing recorded).

    The attempt is recorded as pending before it is judged: answers its id, for :func:`settle`
    or :func:`forget` once it is. Behind attempts still pending it waits its turn (each try in a
    transaction of its own: the pending ones need the database to settle).
    """
    ip = ip or ""
    deadline = time.monotonic() + TURN_WAIT_SECONDS
    pause = 0.02
    while True:
        now = clock.now()
        try:
            with uow.transaction() as session:
                familiar = hold(session, login, ip, now)
                return record(session, login, ip, now, familiar=familiar, account_id=account_id,
                              user_agent=user_agent, success=False, reason=PENDING)
        except NotYourTurn:
            if time.monotonic() > deadline:
                raise
        eventlet.sleep(pause)
        pause = min(pause * 2, 0.2)


def hold(session, login: str, ip: str | None, now) -> bool:
    """Take the locks of ``ip`` and ``login`` for this transaction and refuse (429) when either limit
    is reached, or :class:`NotYourTurn` when only pending attempts reach it; answers whether ``ip``
    is familiar to the account (its count is its own)."""
    ip = ip or ""
    lock(session, f"login-ip:{ip}")
    lock(session, f"login:{login}")
    familiar = _familiar(session, login, ip, now)
    # (an attempt that names no address comes from another Introserv system, not a client). Past
    # the limit nothing more is recorded, so the window holds the limit's failures and those pending.
    ip_failures = session.execute(
        select(LoginAttempt.at, LoginAttempt.reason).where(
            LoginAttempt.ip == ip, LoginAttempt.success.is_(False), LoginAttempt.at > now - security.IP_FAILURE_WINDOW)
        .order_by(LoginAttempt.at.desc()).limit(IP_ROWS_READ)).all() if ip else []
    run = _run(session, login, ip, familiar)
    settled = max(security.ip_limited([at for at, reason in ip_failures if not _undecided(reason, at, now)], now),
                  security.login_backoff(*_failures(run, now, count_pending=False), now))
    if settled:
        raise rate_limited(settled)
    if security.ip_limited([at for at, _ in ip_failures], now) or \
            security.login_backoff(*_failures(run, now, count_pending=True), now):
        raise NotYourTurn()
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


def _run(session, login: str, ip: str, familiar: bool) -> list:
    """This address's count of attempts, newest first: (success, reason, at).

    A familiar address counts its own attempts; every other address shares one count. Only a
    success within a count ends its run: the owner logging in at home does not give a stranger
    five fresh guesses.
    """
    mine = LoginAttempt.ip == ip if familiar else LoginAttempt.familiar.is_(False)
    return session.execute(select(LoginAttempt.success, LoginAttempt.reason, LoginAttempt.at)
                           .where(LoginAttempt.login == login, mine)
                           .order_by(LoginAttempt.at.desc(), LoginAttempt.id.desc()).limit(RUN_LENGTH)).all()


def _failures(run: list, now, count_pending: bool):
    """How many attempts of a run failed in a row since its last success, and when the newest did;
    attempts still pending count as failures or are passed over."""
    count, last = 0, None
    for success, reason, at in run:
        if success:
            break
        if _undecided(reason, at, now) and not count_pending:
            continue
        count += 1
        last = last or at
    return count, last


def _undecided(reason: str, at, now) -> bool:
    return reason == PENDING and as_utc(at) > now - PENDING_FOR_AT_MOST


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
