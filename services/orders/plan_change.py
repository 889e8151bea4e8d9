"""Plan change (O4): the new plan's price for the unused days, less what was paid for them."""
from __future__ import annotations

from datetime import date

from services.common.errors import DomainError
from services.common.idempotency import KeyedRequest
from services.common.money import Money
from services.common.outbox import publish_later
from services.common.schemas import load
from services.orders import domain
from services.orders.catalogue import Plan
from services.orders.models import Order
from services.orders.operations import keyed_request, reply_to
from services.orders.parts import Parts
from services.orders.repository import Loaded, about, iso_date
from services.orders.schemas import ChangePlanSchema


def plan_change(order: Order, old_plan: Plan, new_plan: Plan, today: date, prices: dict[Money, Money],
                quote: domain.ChangeQuote, keyed: KeyedRequest | None) -> dict:
    """The pending operation of a plan change: its prices, and its charge when the change costs money."""
    number = order.plan_changes + 1
    operation = {"kind": "change_plan", "today": today.isoformat(), "plan_id": new_plan.id,
                 "number": number, "reply_to": reply_to(keyed),
                 "prices": [[list_price.to_wire(), paid.to_wire()] for list_price, paid in prices.items()],
                 "charge": None}
    if quote.charge:
        charged_lines = [line for line in quote.lines if line.amount.minor > 0]
        if sum(line.amount.minor for line in charged_lines) != quote.charge.minor:
            charged_lines = []  # periods that moved both ways: one invoice line for the total
        operation["charge"] = {
            "amount": quote.charge.to_wire(), "key": f"order:{order.id}:change:{number}",
            "description": f"Plan change from {old_plan.name} to {new_plan.name}",
            "lines": [{"description": line.description, "gross": line.amount.to_wire(),
                       "period_from": line.first_day.isoformat(), "period_to": line.last_day.isoformat()}
                      for line in charged_lines] or None}
    return operation


class PlanChanges:
    def __init__(self, parts: Parts):
        self.parts = parts
        self.uow, self.repository, self.clock = parts.uow, parts.repository, parts.clock
        parts.pending.finishers["change_plan"] = self.finish_plan_change

    def change_plan_quote(self, account_id: str, order_id, plan_id) -> dict:
        with self.uow.transaction() as session:
            loaded = self.repository.load(session, order_id, account_id)
        new_plan = self.parts.catalogue.plan(plan_id)
        prices = self._plan_prices(loaded, new_plan)
        return domain.change_plan(loaded.state, new_plan, self.clock.today(), prices.__getitem__).quote.to_wire()

    def _plan_prices(self, loaded: Loaded, new_plan: Plan) -> dict[Money, Money]:
        """What this customer pays for the new plan's list prices over the order's unused periods."""
        today = self.clock.today()
        # The rules first with list prices: refusals (not_changeable) before any ledger call.
        domain.quote_plan_change(loaded.state, new_plan, today)
        months = sorted({p.months for p in loaded.state.periods if p.ends > today})
        price = self.parts.billing.customer_price
        return {new_plan.price_for(m): price(loaded.row.account_id, new_plan.price_for(m)) for m in months}

    def change_plan(self, account_id: str, order_id, body, idempotency_key: str | None = None) -> dict:
        data = load(ChangePlanSchema, body)
        keyed = keyed_request(account_id, "change_plan", idempotency_key, {"order_id": order_id, **data})
        def work():
            try:
                return self._change_plan(account_id, order_id, data["plan_id"], keyed)
            except DomainError as error:
                if error.error_code != "conflict":
                    raise
                return self.parts.pending.resume(order_id, keyed)  # its own first attempt, interrupted?
        return self.parts.keys.once(keyed, work)

    def _change_plan(self, account_id: str, order_id, plan_id: str, keyed: KeyedRequest | None = None) -> dict:
        new_plan = self.parts.catalogue.plan(plan_id)
        loaded = self.parts.store.claim(order_id, account_id, "change_plan")
        try:
            prices = self._plan_prices(loaded, new_plan)
            today = self.clock.today()
            change = domain.change_plan(loaded.state, new_plan, today, prices.__getitem__)
            operation = plan_change(loaded.row, loaded.state.plan, new_plan, today, prices, change.quote, keyed)
            return self.parts.pending.carry_out(order_id, operation)  # its last transaction drops the lease
        except BaseException:
            self.parts.store.release_lease(order_id)  # a lease kept only while an operation is still written
            raise

    def finish_plan_change(self, order_id: str, operation: dict) -> dict:
        with self.uow.transaction() as session:
            loaded = self.repository.load(session, order_id)
        row = loaded.row
        new_plan, old_plan = self.parts.catalogue.plan(operation["plan_id"]), loaded.state.plan
        prices = {Money.from_wire(list_price): Money.from_wire(paid) for list_price, paid in operation["prices"]}
        change = domain.change_plan(loaded.state, new_plan, date.fromisoformat(operation["today"]),
                                    prices.__getitem__)
        quote, number = change.quote, operation["number"]
        billing = self.parts.billing
        charge_transaction = billing.charge(row, operation["charge"]) if operation["charge"] else None
        credits = []
        if quote.credit:
            credits = billing.refund(row, quote.credit, f"order:{order_id}:change:{number}",
                                     f"Plan change from {old_plan.name} to {new_plan.name}: unused days")
        with self.uow.transaction() as session:
            current = self.repository.load(session, order_id, lock=True)
            current.row.plan_id = new_plan.id
            current.row.plan_changes = number
            self.repository.save(session, current.row, change.order)
            if charge_transaction is not None:
                self.repository.record_charge(session, order_id, charge_transaction, quote.charge, f"change:{number}")
            self.repository.record_refunds(session, credits)
            self.repository.event(session, order_id, "plan_changed", {
                "from_plan_id": old_plan.id, "to_plan_id": new_plan.id,
                "charge": quote.charge.to_wire(), "credit": quote.credit.to_wire()})
            if quote.credit:
                self.repository.event(session, order_id, "refunded", {"amount": quote.credit.to_wire(),
                                                                      "reason": "plan_change"})
            publish_later(session, "order_plan_changed", {
                **about(Loaded(current.row, change.order)), "old_plan_name": old_plan.name,
                "paid_until": iso_date(change.order.paid_until), "charge": quote.charge.to_wire(),
                "credit": quote.credit.to_wire(), "cost": change.order.cost.to_wire()})
            return self.parts.pending.done(session, current.row, operation, {
                "order": self.repository.view(Loaded(current.row, change.order)),
                "charge": quote.charge.to_wire(), "credit": quote.credit.to_wire()})
