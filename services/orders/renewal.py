"""Renewal (O7): another paid period, asked by the customer or by the lifecycle clock (auto-renew)."""
from __future__ import annotations

from datetime import date
from functools import partial

import structlog
from nameko.exceptions import MethodNotFound
from sqlalchemy import or_, select

from services.common.errors import DomainError
from services.common.idempotency import KeyedRequest
from services.common.money import Money
from services.common.outbox import outbox_row, publish_all, publish_later
from services.common.schemas import load
from services.orders import domain
from services.orders.models import Order
from services.orders.operations import LEASE, keyed_request, release, reply_to
from services.orders.parts import Parts
from services.orders.repository import Loaded, about, invoice_line, transaction_id
from services.orders.schemas import RenewSchema

log = structlog.get_logger(__name__)


def renewal(order: Order, state: domain.OrderState, today: date, months: int, automatic: bool,
            keyed: KeyedRequest | None) -> dict:
    """The pending operation that charges a renewal's list price for ``months`` (the ledger prices it)."""
    list_price = state.plan.price_for(months)
    period = domain.renew(state, today, months, list_price).periods[-1]
    number = order.renewals + 1
    what = f"{state.plan.name}, renewal for {months} months"
    return {"kind": "renew", "today": today.isoformat(), "months": months, "number": number,
            "automatic": automatic, "reply_to": reply_to(keyed),
            "charge": {"amount": list_price.to_wire(), "key": f"order:{order.id}:renew:{number}",
                       "description": what, "lines": [invoice_line(what, period)]}}


class Renewal:
    def __init__(self, parts: Parts):
        self.parts = parts
        self.uow, self.repository, self.clock = parts.uow, parts.repository, parts.clock
        parts.pending.finishers["renew"] = self.finish_renewal

    def renew(self, account_id: str, order_id, body, idempotency_key: str | None = None) -> dict:
        data = load(RenewSchema, body)
        keyed = keyed_request(account_id, "renew", idempotency_key, {"order_id": order_id, **data})
        def work():
            try:
                return self.renew_now(order_id, data["period_months"], account_id, keyed=keyed)
            except DomainError as error:
                if error.error_code != "conflict":
                    raise
                return self.parts.pending.resume(order_id, keyed)  # its own first attempt, interrupted?
        return self.parts.keys.once(keyed, work)

    def renew_now(self, order_id, months: int, account_id: str | None, automatic: bool = False,
                  keyed: KeyedRequest | None = None) -> dict:
        """Renew the order for ``months`` (``account_id`` None: the clock's automatic renewal)."""
        loaded = self.parts.store.claim(order_id, account_id, "renew")
        try:
            state, row = loaded.state, loaded.row
            domain.check_renewable(state)
            operation = renewal(row, state, self.clock.today(), months, automatic, keyed)
            return self.parts.pending.carry_out(row.id, operation)  # its last transaction drops the lease
        except BaseException:
            self.parts.store.release_lease(order_id)  # a lease kept only while an operation is still written
            raise

    def finish_renewal(self, order_id: str, operation: dict) -> dict:
        with self.uow.transaction() as session:
            row = session.get(Order, order_id)
        transaction, charged = self.parts.billing.take(row, operation)
        with self.uow.transaction() as session:
            return self._renewed(session, self.repository.load(session, order_id, lock=True), operation,
                                 transaction, charged)

    def renew_many(self, due: list[tuple[str, int]], still_due=None) -> int:
        """The clock's automatic renewals of whole accounts, in their order, with one ledger call.

        One transaction takes the orders' leases, marks them tried today (a short balance is not
        tried again before tomorrow) and writes each one's operation (an order busy, tried today
        already, or no longer due by ``still_due(state)`` is left); ``ledger.charge_orders``
        charges them all; one transaction writes the renewed orders and forgets the refused ones.
        When the ledger does not answer, the outcome is unknown: the leases end at once and the
        clock's next tick finishes each order from its own written operation (its charge, replayed
        alone, answers the first), as it finishes a customer's interrupted renewal.
        """
        claimed = self._claim_all(due, still_due or (lambda state: state.auto_renew))
        if not claimed:
            return 0
        try:
            answers = self.parts.billing.take_all(claimed)
        except MethodNotFound:  # a ledger older than charge_orders, while a deployment rolls: one by one
            return sum(1 for row, operation in claimed if self._carry_out_alone(row.id, operation))
        except Exception as error:
            log.warning("automatic renewals left to the clock", orders=len(claimed), error=repr(error))
            for row, _ in claimed:
                self.parts.store.expire_lease(row.id)
            return 0
        return self._finish_all(claimed, answers)

    def _claim_all(self, due: list[tuple[str, int]], still_due) -> list[tuple[Order, dict]]:
        """Lease the free orders of ``due`` still due and not tried today, mark them tried and write their
        renewals, in one transaction (another replica's clock, listing the same orders, then leaves them)."""
        months_of = dict(due)
        now, today = self.clock.now(), self.clock.today()
        claimed = []
        with self.uow.transaction() as session:
            rows = {row.id: row for row in session.scalars(
                select(Order).where(Order.id.in_(list(months_of)), Order.pending_operation.is_(None),
                                    or_(Order.busy_until.is_(None), Order.busy_until < now))
                .with_for_update(skip_locked=True))}
            untried = [rows[i] for i in months_of if i in rows and rows[i].auto_renew_tried_on != today]
            for loaded in self.repository.loaded_all(session, untried):
                loaded.row.auto_renew_tried_on = today
                if not still_due(loaded.state):   # auto-renew switched off, or renewed by hand, since the batch
                    continue
                try:
                    domain.check_renewable(loaded.state)
                except DomainError as error:
                    log.info("automatic renewal not done", order_id=loaded.row.id, code=error.error_code)
                    continue
                operation = renewal(loaded.row, loaded.state, today, months_of[loaded.row.id], True, None)
                loaded.row.pending_operation = operation
                loaded.row.busy_until, loaded.row.busy_with = now + LEASE, "renew"
                claimed.append((loaded.row, operation))
        return claimed

    def _finish_all(self, claimed: list[tuple[Order, dict]], answers: list[dict]) -> int:
        """Write what the ledger answered for each claimed order, in one transaction; how many renewed."""
        renewed, events = 0, []
        with self.uow.transaction() as session:
            rows = session.scalars(select(Order).where(Order.id.in_([row.id for row, _ in claimed]))
                                   .with_for_update()).all()
            current = {loaded.row.id: loaded for loaded in self.repository.loaded_all(session, rows)}
            ours = [(current[row.id], operation, answer) for (row, operation), answer in zip(claimed, answers)
                    # not ours when its lease ran out and the clock finished it from the written operation
                    if current[row.id].row.pending_operation == operation]
            # Written as few statements: the periods replaced in one DELETE, the events in one INSERT,
            # the rest by one flush (README Performance, month end).
            self.repository.delete_periods(session, [loaded.row.id for loaded, _, answer in ours
                                                     if "transaction" in answer])
            for loaded, operation, answer in ours:
                if "transaction" in answer:
                    transaction = answer["transaction"]
                    self._renewed(session, loaded, operation, transaction, -Money.from_wire(transaction["amount"]),
                                  announce=lambda kind, data: events.append(outbox_row(session, kind, data)))
                    renewed += 1
                else:
                    loaded.row.pending_operation = None
                    release(loaded.row)
                    log.info("automatic renewal not done", order_id=loaded.row.id, code=answer["error"]["code"])
            publish_all(session, events)
        return renewed

    def _carry_out_alone(self, order_id: str, operation: dict) -> bool:
        try:
            self.parts.pending.carry_out(order_id, operation)
            return True
        except DomainError as error:
            log.info("automatic renewal not done", order_id=order_id, code=error.error_code)
            return False

    def _renewed(self, session, current: Loaded, operation: dict, transaction: dict, charged: Money,
                 announce=None) -> dict:
        """The order renewed by its charge, in the caller's transaction: the Order shape, kept for its key.

        ``announce(kind, data)``: its event gathered by a caller that renews many and has already
        deleted their periods; by default published and the periods replaced here.
        """
        state, order_id = current.state, current.row.id
        months, number = operation["months"], operation["number"]
        renewed = domain.renew(state, date.fromisoformat(operation["today"]), months, charged)
        current.row.renewals = number
        self.repository.save(session, current.row, renewed, had_periods=announce is None)
        self.repository.record_charge(session, order_id, transaction, charged, f"renew:{number}")
        self.repository.event(session, order_id, "renewed", {
            "period_months": months, "amount": charged.to_wire(), "automatic": operation["automatic"],
            "paid_until": renewed.paid_until.isoformat(), "transaction_id": transaction_id(transaction),
            "previous_status": state.status.value})
        (announce or partial(publish_later, session))("order_renewed", {
            **about(Loaded(current.row, renewed)), "period_months": months,
            "paid_until": renewed.paid_until.isoformat(), "cost": charged.to_wire()})
        return self.parts.pending.done(session, current.row, operation,
                                       self.repository.view(Loaded(current.row, renewed)))
