"""Renewal (O7): another paid period, asked by the customer or by the lifecycle clock (auto-renew)."""
from __future__ import annotations

from datetime import date

from services.common.errors import DomainError
from services.common.idempotency import KeyedRequest
from services.common.outbox import publish_later
from services.common.schemas import load
from services.orders import domain
from services.orders.models import Order
from services.orders.operations import keyed_request, reply_to
from services.orders.parts import Parts
from services.orders.repository import Loaded, about, invoice_line, transaction_id
from services.orders.schemas import RenewSchema


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
        data = load(RenewSchema(), body)
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
        months, number = operation["months"], operation["number"]
        with self.uow.transaction() as session:
            current = self.repository.load(session, order_id, lock=True)
            state = current.state
            renewed = domain.renew(state, date.fromisoformat(operation["today"]), months, charged)
            current.row.renewals = number
            self.repository.save(session, current.row, renewed)
            self.repository.record_charge(session, order_id, transaction, charged, f"renew:{number}")
            self.repository.event(session, order_id, "renewed", {
                "period_months": months, "amount": charged.to_wire(), "automatic": operation["automatic"],
                "paid_until": renewed.paid_until.isoformat(), "transaction_id": transaction_id(transaction),
                "previous_status": state.status.value})
            publish_later(session, "order_renewed", {
                **about(Loaded(current.row, renewed)), "period_months": months,
                "paid_until": renewed.paid_until.isoformat(), "cost": charged.to_wire()})
            return self.parts.pending.done(session, current.row, operation,
                                           self.repository.view(Loaded(current.row, renewed)))
