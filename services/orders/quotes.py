"""What a renewal or a new order charges: one computation for the quote the customer reads and the charge made.

The renewal quote (``GET /api/v1/orders/{id}/renew/quote``) and the renewal itself both build
their figures here, from the order's current plan and this customer's price for it (the
ledger's ``price``), so the amount a customer confirmed is the amount taken. The new-order
quote (``GET /api/v1/orders/quote``) gives what placing the order charges when the balance
pays it at once, by the rule the activation charges by.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from services.common.money import Money
from services.orders import domain
from services.orders.catalogue import Plan
from services.orders.domain import OrderState, PaidPeriod


@dataclass(frozen=True)
class PeriodQuote:
    """A paid period bought now for ``months``: its charge, the paid-until after it, and the period."""

    months: int
    charge: Money
    period: PaidPeriod
    description: str

    @property
    def paid_until(self) -> date:
        return self.period.ends

    def invoice_line(self) -> dict:
        """The period's line on its invoice (the ledger's ``charge`` lines)."""
        return {"description": self.description, "gross": self.charge.to_wire(),
                "period_from": self.period.starts.isoformat(),
                "period_to": (self.period.ends - timedelta(days=1)).isoformat()}

    def to_wire(self) -> dict:
        """The quote: ``{charge, paid_until, period_months, lines}``, a line's days inclusive."""
        return {"charge": self.charge.to_wire(), "paid_until": self.paid_until.isoformat(),
                "period_months": self.months,
                "lines": [{"description": self.description, "period_from": self.period.starts.isoformat(),
                           "period_to": (self.period.ends - timedelta(days=1)).isoformat(),
                           "months": self.months, "amount": self.charge.to_wire()}]}


def renewal(order: OrderState, today: date, months: int, price_for_customer) -> PeriodQuote:
    """The renewal of ``order`` for ``months`` now; not_renewable (409) or validation_error first.

    ``price_for_customer(list_price) -> Money``: what this customer pays for a list price
    (asked of the ledger only after the rules have accepted the renewal).
    """
    domain.check_renewable(order)
    list_price = order.plan.price_for(months)
    charge = price_for_customer(list_price)
    period = domain.renew(order, today, months, charge).periods[-1]
    return PeriodQuote(months, charge, period, f"{order.plan.name}, renewal for {months} months")


def new_order(plan: Plan, today: date, months: int, price_for_customer) -> PeriodQuote:
    """What placing an order of ``plan`` for ``months`` charges when the balance pays it today.

    The activation's rule (``Orders._activate``): this customer's price for the plan's price
    for the period, paid from today. An order that waits for a top-up is charged when it is
    paid, at the customer's price then.
    """
    charge = price_for_customer(plan.price_for(months))   # validation_error for a period not offered
    period = PaidPeriod(today, domain.months_after(today, months), months, charge)
    return PeriodQuote(months, charge, period, f"{plan.name}, {months} months")
