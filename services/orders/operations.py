"""Money-moving operations on an order: a lease, the operation written down, carried out, then finished or undone.

An operation (activate, renew, change plan, cancel) first takes a short lease on the order
(``orders.busy_until``), so that a second operation on the same order is refused cleanly
with 409 ``conflict`` instead of working on stale state. Before its first ledger call it
writes what it is about to ask the ledger (``orders.pending_operation``: the exact
arguments, keys included, and what the order becomes). A worker that dies between the
ledger and the order's write, or a ledger that does not answer, leaves that behind; the
lifecycle timer finds it once the lease has expired and carries the same calls out again:
the ledger answers a key it has seen with its first result, so the operation is completed
with the money that was taken, or charged now, or undone when the ledger refuses. Nothing
is taken twice and no charge is left without its order.

:class:`PendingOperations` is that mechanism; :class:`OperationStore` its rows. Each command
family registers how its kind of operation is finished (``finishers``).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import structlog
from sqlalchemy import or_, select, update

from services.common.config import env_float
from services.common.errors import DomainError
from services.common.idempotency import IN_PROGRESS_RETRY_SECONDS, KeyedRequest, request_in_progress
from services.orders.domain import Status
from services.orders.models import Order
from services.orders.repository import Loaded, OrderRepository

log = structlog.get_logger(__name__)

# Long enough for the ledger calls of one operation (each waits at most RPC_TIMEOUT).
LEASE = timedelta(seconds=env_float("ORDERS_LEASE_SECONDS", 60.0))

Finisher = Callable[[str, dict], dict]


def conflict_busy() -> DomainError:
    return DomainError("conflict", "Another change to this order is in progress; try again in a moment.")


def keyed_request(account_id: str, route: str, key, request: dict) -> KeyedRequest | None:
    """A request with an Idempotency-Key, bound to it; None without one."""
    return None if key is None else KeyedRequest.of(account_id, route, key, request)


def reply_to(keyed: KeyedRequest | None) -> dict | None:
    """Where the answer to a keyed request is kept, written with the operation for whoever finishes it."""
    return keyed.to_wire() if keyed is not None else None


class OperationStore:
    """The lease and the written operation on the order's row, each change its own short transaction."""

    def __init__(self, uow, repository: OrderRepository, clock):
        self.uow = uow
        self.repository = repository
        self.clock = clock

    def claim(self, order_id, account_id: str | None, operation: str,
              only_while: Status | None = None) -> Loaded | None:
        """Take the order's lease (409 conflict when another operation holds it) and read it.

        ``only_while``: None, and no lease, when the order has another status. A background
        payment that found the order pending must not hold the lease of an order a customer
        has just been told is active (their next step would meet a 409).
        """
        now = self.clock.now()
        with self.uow.transaction() as session:
            loaded = self.repository.load(session, order_id, account_id)
            if only_while is not None and loaded.row.status != only_while.value:
                return None
            free = [Order.id == loaded.row.id, Order.pending_operation.is_(None),
                    or_(Order.busy_until.is_(None), Order.busy_until < now)]
            if only_while is not None:
                free.append(Order.status == only_while.value)
            taken = session.execute(update(Order).where(*free)
                                    .values(busy_until=now + LEASE, busy_with=operation)
                                    .execution_options(synchronize_session=False)).rowcount
            if taken != 1:
                raise conflict_busy()
            session.refresh(loaded.row)
            return self.repository.loaded(session, loaded.row)

    def write(self, order_id: str, operation: dict) -> None:
        with self.uow.transaction() as session:
            session.execute(update(Order).where(Order.id == order_id).values(pending_operation=operation)
                            .execution_options(synchronize_session=False))

    def forget(self, order_id: str) -> None:
        with self.uow.transaction() as session:
            session.execute(update(Order).where(Order.id == order_id).values(pending_operation=None)
                            .execution_options(synchronize_session=False))

    def expire_lease(self, order_id: str) -> None:
        """The outcome is unknown (the ledger or the database did not answer): the next tick finishes it."""
        try:
            with self.uow.transaction() as session:
                session.execute(update(Order).where(Order.id == order_id, Order.pending_operation.is_not(None))
                                .values(busy_until=self.clock.now())
                                .execution_options(synchronize_session=False))
        except DomainError:
            log.warning("lease left to expire", order_id=order_id)

    def release_lease(self, order_id: str) -> None:
        with self.uow.transaction() as session:
            # An operation still written on the order keeps its lease: the timer finishes it.
            session.execute(update(Order).where(Order.id == order_id, Order.busy_until.is_not(None),
                                                Order.pending_operation.is_(None))
                            .values(busy_until=None, busy_with=None)
                            .execution_options(synchronize_session=False))

    def written_for(self, order_id: str) -> dict | None:
        """Where the answer of the operation written on the order goes (its request's key), if one is written."""
        with self.uow.transaction() as session:
            operation = session.scalar(select(Order.pending_operation).where(Order.id == order_id))
        return operation.get("reply_to") if operation else None

    def interrupted(self) -> list[str]:
        """The orders whose operation is written and whose lease has expired."""
        with self.uow.transaction() as session:
            return session.scalars(select(Order.id).where(Order.pending_operation.is_not(None),
                                                          Order.busy_until < self.clock.now())).all()

    def take_over(self, order_id: str) -> dict | None:
        """Lease an interrupted operation to finish it; None when another replica took it first."""
        now = self.clock.now()
        with self.uow.transaction() as session:
            taken = session.execute(update(Order).where(
                Order.id == order_id, Order.pending_operation.is_not(None), Order.busy_until < now)
                .values(busy_until=now + LEASE, busy_with="finish_interrupted")
                .execution_options(synchronize_session=False)).rowcount
            operation = session.scalar(select(Order.pending_operation).where(Order.id == order_id))
        return operation if taken == 1 else None


def release(row: Order) -> None:
    """Drop the lease on a row written in the caller's transaction."""
    row.busy_until = None
    row.busy_with = None


class PendingOperations:
    """Carry an operation out, finish or undo it, and finish the interrupted ones."""

    def __init__(self, store: OperationStore, keys):
        self.store = store
        self.keys = keys
        self.finishers: dict[str, Finisher] = {}

    def carry_out(self, order_id: str, operation: dict) -> dict:
        """Write ``operation`` on the order, then do it; keep it for the timer when the outcome is unknown."""
        self.store.write(order_id, operation)
        finish = self.finishers[operation["kind"]]
        try:
            return finish(order_id, operation)
        except DomainError as error:
            if error.error_code != "service_unavailable":
                self.store.forget(order_id)  # the ledger refused: nothing moved, nothing to finish
                raise
            self.store.expire_lease(order_id)
            raise
        except Exception:
            self.store.expire_lease(order_id)
            raise

    def done(self, session, row: Order, operation: dict, answer: dict) -> dict:
        """The operation is written: drop it and the lease; keep the answer for its Idempotency-Key."""
        row.pending_operation = None
        release(row)
        keyed = KeyedRequest.from_wire(operation.get("reply_to"))
        if keyed is not None:  # also when the request's worker died: a retry gets this answer
            self.keys.remember(session, keyed, answer)
        return answer

    def finish_interrupted(self) -> int:
        """Complete or undo the operations whose lease expired before they were written."""
        finished = 0
        for order_id in self.store.interrupted():
            try:
                if self.finish_if_interrupted(order_id) is not None:
                    finished += 1
            except DomainError as error:
                log.warning("interrupted operation not finished", order_id=order_id, code=error.error_code)
        return finished

    def resume(self, order_id: str, keyed: KeyedRequest | None) -> dict:
        """A keyed retry that found its order busy: if with its own request's operation, finish it and answer.

        That operation's first attempt failed half-way (the ledger did not answer): the retry
        finishes it when its lease has expired, or is told it is in progress (409
        ``request_in_progress``, never ``conflict``). Another request's operation is a conflict.
        """
        if keyed is None or self.store.written_for(order_id) != keyed.to_wire():
            raise conflict_busy()
        answer = self.finish_if_interrupted(order_id)
        if answer is None:
            raise request_in_progress(IN_PROGRESS_RETRY_SECONDS)
        return answer

    def finish_if_interrupted(self, order_id: str) -> dict | None:
        """Finish the order's operation if it was interrupted (its lease expired): its answer, else None."""
        operation = self.store.take_over(order_id)
        if operation is None:
            return None  # none written, still leased, or another replica took it
        log.warning("finishing an interrupted operation", order_id=order_id, kind=operation["kind"])
        try:
            return self.carry_out(order_id, operation)
        finally:
            self.store.release_lease(order_id)
