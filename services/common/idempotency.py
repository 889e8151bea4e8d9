"""Requests that carry an idempotency key: the first answer is kept and given again.

A key belongs to who asks (an account, or a calling system) and to what is asked (a route or
an operation): the same key from another account or on another route is another request.
The key is bound to a fingerprint of the request, so the same key with a different request
is refused with ``idempotency_conflict`` (422) instead of being answered with what another
request got. While the first request with a key is still being carried out, another one
with it gets ``request_in_progress`` (409) with ``details.retry_after`` in seconds, which the
gateway sends as ``Retry-After``; a request whose worker died is taken over once its claim
is older than ``abandoned_after``.

Work done in one transaction claims the key and keeps its answer in that transaction
(:meth:`IdempotencyKeys.claim`, then :meth:`IdempotencyKeys.remember`): the answer commits
with the work, and a concurrent request with the same key waits for it on the key's row.
Work that spans transactions and calls to other services goes through
:meth:`IdempotencyKeys.once`; its last transaction keeps the answer where it can.

The keys live in each service's ``idempotency_keys`` table (``tables.add_idempotency_table``).
The ledger keeps its keys on its journal rows instead, a movement being its own answer, and
binds them with the same :class:`KeyedRequest` and :func:`fingerprint`.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, TypeVar

from sqlalchemy import Table, delete, select, update
from sqlalchemy.orm import Session

from services.common.clock import as_utc
from services.common.errors import DomainError, ValidationError
from services.common.locks import insert_first
from services.common.money import Money

MAX_KEY_LENGTH = 200
# How soon to ask again about a request still in progress: most finish within a round trip or two.
IN_PROGRESS_RETRY_SECONDS = 2
T = TypeVar("T")


def fingerprint(operation: str, request: Mapping) -> str:
    """What a key is bound to: the operation and its arguments, canonically (SHA-256, hex)."""
    canonical = json.dumps({"operation": operation, **request}, sort_keys=True, separators=(",", ":"),
                           default=_canonical)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _canonical(value):
    if isinstance(value, Money):
        return value.to_wire()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


@dataclass(frozen=True)
class KeyedRequest:
    """A request with an idempotency key: whose, for what, the key, and the fingerprint it is bound to."""

    caller: str
    operation: str
    key: str
    fingerprint: str

    @classmethod
    def of(cls, caller: str, operation: str, key, request: Mapping,
           field: str = "Idempotency-Key") -> KeyedRequest:
        """``request`` bound to ``key``; a key that is not 1 to 200 characters is a validation error on ``field``."""
        if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_LENGTH:
            raise ValidationError({field: [f"must be 1 to {MAX_KEY_LENGTH} characters"]})
        return cls(caller, operation, key, fingerprint(operation, request))

    def replay(self, stored_fingerprint: str, answer: T) -> T:
        """The answer kept for the key, when it was given to this same request; idempotency_conflict if not."""
        if stored_fingerprint != self.fingerprint:
            raise DomainError("idempotency_conflict", "This idempotency key was already used for a different request.",
                              details={"idempotency_key": self.key})
        return answer

    def to_wire(self) -> dict:
        """For work that is written down to be finished later (the names are those of the table's columns)."""
        return {"account_id": self.caller, "route": self.operation, "key": self.key, "digest": self.fingerprint}

    @classmethod
    def from_wire(cls, wire: Mapping | None) -> KeyedRequest | None:
        if not wire:
            return None
        return cls(wire["account_id"], wire["route"], wire["key"], wire["digest"])


def request_in_progress(retry_after: float) -> DomainError:
    return DomainError("request_in_progress", "A request with this idempotency key is still being carried out; "
                       "ask again in a moment.", details={"retry_after": max(1, math.ceil(retry_after))})


class IdempotencyKeys:
    """A service's ``idempotency_keys``: claim a key, keep its answer, give the answer again."""

    def __init__(self, uow, clock, abandoned_after: timedelta = timedelta(seconds=60)):
        self.uow = uow
        self.clock = clock
        self.abandoned_after = abandoned_after
        self._kept: set[KeyedRequest] = set()  # answers the work kept itself: not written a second time

    def claim(self, session: Session, request: KeyedRequest) -> Any | None:
        """Take the key in this transaction: None when the request is this worker's to carry out.

        Otherwise the first answer, ``idempotency_conflict`` when the key was used for another
        request, or ``request_in_progress`` while another worker is carrying it out (unless that
        one started more than ``abandoned_after`` ago: its worker died, and this one takes over).
        """
        table, now = _table(session), self.clock.now()
        if insert_first(session, table, account_id=request.caller, route=request.operation, key=request.key,
                        request_hash=request.fingerprint, response=None, created_at=now):
            return None
        row = session.execute(select(table).where(*_scope(table, request)).with_for_update()).one_or_none()
        if row is None:  # given up between our insert and our read: it is being retried right now
            raise request_in_progress(1)
        request.replay(row.request_hash, None)
        if row.response is not None:
            return json.loads(row.response)
        waited = now - as_utc(row.created_at)
        if waited < self.abandoned_after:
            raise request_in_progress(min(IN_PROGRESS_RETRY_SECONDS, (self.abandoned_after - waited).total_seconds()))
        # Its worker died: this one takes over (what it moves is keyed again, so nothing moves twice).
        session.execute(update(table).where(*_scope(table, request)).values(created_at=now))
        return None

    def remember(self, session: Session, request: KeyedRequest, answer) -> None:
        """Keep ``answer`` for the key, in the transaction that did the work; a kept answer is never replaced."""
        table = _table(session)
        self._kept.add(request)  # a transaction that fails after this raises, and once() then forgets the claim
        kept = session.execute(update(table).where(*_scope(table, request), table.c.response.is_(None))
                               .values(response=json.dumps(answer))).rowcount
        if not kept:  # answered already, or the claim was given up meanwhile: then the answer makes the row
            insert_first(session, table, account_id=request.caller, route=request.operation, key=request.key,
                         request_hash=request.fingerprint, response=json.dumps(answer), created_at=self.clock.now())

    def forget(self, session: Session, request: KeyedRequest) -> None:
        """Give up an unanswered claim: nothing was answered, so a retry carries the request out again."""
        table = _table(session)
        session.execute(delete(table).where(*_scope(table, request), table.c.response.is_(None)))

    def once(self, request: KeyedRequest | None, work: Callable[[], T]) -> T:
        """Carry out ``work`` once per key, over as many transactions and calls as it takes.

        The claim commits first, so that a second request with the key sees it in progress.
        ``work`` keeps its answer with :meth:`remember` in its last transaction where it can;
        otherwise it is kept here. Work that fails answers nothing and keeps nothing: a retry
        runs it again (the money it moves is keyed too, so it never moves twice).
        """
        if request is None:
            return work()
        with self.uow.transaction() as session:
            answer = self.claim(session, request)
        if answer is not None:
            return answer
        try:
            answer = work()
        except BaseException:
            with self.uow.transaction() as session:
                self.forget(session, request)
            raise
        if request not in self._kept:
            with self.uow.transaction() as session:
                self.remember(session, request, answer)
        return answer


def _table(session: Session) -> Table:
    tables = session.info.get("tables")
    if tables is None or "idempotency_keys" not in tables:
        raise RuntimeError("session has no idempotency_keys table; declare it with add_idempotency_table")
    return tables["idempotency_keys"]


def _scope(table: Table, request: KeyedRequest) -> tuple:
    return (table.c.account_id == request.caller, table.c.route == request.operation, table.c.key == request.key)
