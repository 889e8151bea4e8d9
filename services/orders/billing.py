"""The order's money, through the ledger: what the customer pays, the charge, the refunds against charges."""
from __future__ import annotations

from services.common.money import Money
from services.orders import domain
from services.orders.models import Order
from services.orders.repository import OrderRepository


class Billing:
    def __init__(self, uow, ledger, repository: OrderRepository):
        self.uow = uow
        self.ledger = ledger
        self.repository = repository

    def customer_price(self, account_id: str, list_price: Money) -> Money:
        """What this customer pays for a list price (less only under the EU reverse charge)."""
        return Money.from_wire(self.ledger.price(account_id, list_price.to_wire())["gross"], "gross")

    def charge(self, row: Order, charge: dict) -> dict:
        """A charge written down in a pending operation (amount, key, description, lines)."""
        return self.ledger.charge(row.account_id, charge["amount"], charge["key"], row.id,
                                  charge["description"], charge["lines"])

    def take(self, row: Order, operation: dict) -> tuple[dict, Money]:
        """The operation's charge: (the ledger's transaction, what the customer paid).

        The ledger prices the list price and charges it in one call (``charge_order``); an
        operation written before that call existed carries its price already (``charged``).
        """
        charge = operation["charge"]
        if "charged" in operation:
            return self.charge(row, charge), Money.from_wire(operation["charged"])
        transaction = self.ledger.charge_order(row.account_id, charge["amount"], charge["key"], row.id,
                                               charge["description"], charge["lines"])
        return transaction, -Money.from_wire(transaction["amount"])

    def take_all(self, claimed: list[tuple[Order, dict]]) -> list[dict]:
        """Many operations' charges in one ledger call (``charge_orders``): each one's answer, in order,
        ``{"transaction": ...}`` or ``{"error": {"code", "message"}}``."""
        return self.ledger.charge_orders([
            {"account_id": row.account_id, "amount": operation["charge"]["amount"],
             "idempotency_key": operation["charge"]["key"], "reference": row.id,
             "description": operation["charge"]["description"], "lines": operation["charge"]["lines"]}
            for row, operation in claimed])

    def refund(self, row: Order, amount: Money, key: str, description: str) -> list[tuple[str, Money, dict]]:
        """Return ``amount`` to the balance against the order's charges; one ledger refund per charge drawn on."""
        with self.uow.transaction() as session:
            available = self.repository.refundable(session, row)
        done = []
        for charge_id, part in domain.allocate_refund(amount, available):
            result = self.ledger.refund(row.account_id, part.to_wire(), f"{key}:{charge_id}", row.id,
                                        charge_id, description)
            done.append((charge_id, part, result))
        return done
