"""How long the balance lasts, statements and the year's invoices in one file (docs/requirements.md A7, A8)."""
from __future__ import annotations

from gateway.http import route
from services.ledger.forecast import ForecastSchema

TAGS = ("balance and invoices",)


class BalanceReportRoutes:
    @route("GET", "/api/v1/balance/forecast", response=ForecastSchema, tags=TAGS,
           summary="How long the balance pays the services",
           description="From the balance, the credit limit and every order that will renew (auto-renew on, at "
                       "its plan's current price and period, in the order the lifecycle clock renews them; an "
                       "order waiting for payment first): `renewals` the balance pays, each with `balance_after`; "
                       "`stops` the first it cannot pay, `on` the day that order falls overdue; `covered_until` "
                       "that day and `days` until it. Orders with auto-renew off renew nothing "
                       "(`renews_nothing` when none renews); beyond `horizon_days` (366) `covered_until`, `days` "
                       "and `stops` are null.")
    def get_forecast(self, call):
        return 200, self.orders.forecast(call.account_id)
