"""How long the balance lasts, and the alert in days (docs/requirements.md A7, N2).

The orders service knows which charges its lifecycle clock will try and when
(services/orders/forecast.py); the ledger knows the balance, the credit limit and what this
customer pays for a list price. :func:`walk` takes the balance through the charges in the
clock's order, each refused exactly as a charge would be (``domain.balance_after``: below
``-credit_limit`` is insufficient funds), and stops at the first it cannot pay.

The alert (``low_balance_days``, a copy of the customer's setting fed by profile's events) is
sent once per crossing, like ``balance_low``: when the forecast's days fall under it,
``balance_running_out`` goes out and ``below_days`` is set; it is sent again only after a
forecast at or over the setting (or one that stops nothing) cleared it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from marshmallow import Schema, fields, validate
from sqlalchemy import select

from services.common.money import Money
from services.common.pagination import keyset_page
from services.common.outbox import publish_later
from services.common.schemas import MESSAGES, MoneyField, StrictSchema, load, text
from services.ledger import domain, tax
from services.ledger.models import Balance, Transaction
from services.ledger.schemas import MoneyAmountSchema


# --- what orders sends --------------------------------------------------------------------

class PlannedChargeSchema(StrictSchema):
    order_id = text(36, required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["payment", "renewal"]), error_messages=MESSAGES)
    key = text(200, required=True)
    on = fields.Date(required=True, error_messages=MESSAGES)
    overdue_on = fields.Date(required=True, error_messages=MESSAGES)
    list_price = MoneyField(required=True, error_messages=MESSAGES)
    period_months = fields.Integer(strict=True, required=True, validate=validate.Range(1, 120),
                                   error_messages=MESSAGES)
    plan_name = text(200, required=True)
    paid_until = fields.Date(required=True, error_messages=MESSAGES)


class ForecastArgumentsSchema(StrictSchema):
    account_id = text(64, required=True)
    schedule = fields.List(fields.Nested(PlannedChargeSchema), required=True,
                           validate=validate.Length(max=20_000), error_messages=MESSAGES)
    horizon_days = fields.Integer(strict=True, required=True, validate=validate.Range(1, 3660),
                                  error_messages=MESSAGES)


# --- the rule -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Forecast:
    today: date
    balance: Money
    credit_limit: Money
    paid: list[tuple[dict, Money, Money]]     # (planned charge, amount, balance after), in order
    stops: tuple[dict, Money] | None           # the first charge the balance cannot pay, and its amount
    charges: list[tuple[dict, Money]]          # the whole schedule priced (for what to pay)
    horizon_days: int

    @property
    def covered_until(self) -> date | None:
        return None if self.stops is None else self.stops[0]["overdue_on"]

    @property
    def days(self) -> int | None:
        return None if self.stops is None else max(0, (self.covered_until - self.today).days)

    def under(self, low_balance_days: int | None) -> bool:
        """Whether the days fall under the customer's alert setting."""
        return low_balance_days is not None and self.days is not None and self.days < low_balance_days

    def to_cover(self, days: int) -> Money:
        """What to pay now so that every service runs for the next ``days`` days (0.00 when it does)."""
        needed, last_day = 0, self.today + timedelta(days=days)
        upto = 0
        for index, (charge, _) in enumerate(self.charges):
            if charge["overdue_on"] < last_day:
                upto = index + 1
        needed = sum(amount.minor for _, amount in self.charges[:upto])
        available = self.balance.minor + self.credit_limit.minor
        return Money(max(0, needed - available), self.balance.currency)

    def to_wire(self) -> dict:
        stops = None
        if self.stops is not None:
            charge, amount = self.stops
            stops = {"order_id": charge["order_id"], "on": charge["overdue_on"].isoformat(), "kind": charge["kind"],
                     "plan_name": charge["plan_name"], "charge_on": charge["on"].isoformat(),
                     "amount": amount.to_wire()}
        return {
            "balance": self.balance.to_wire(), "credit_limit": self.credit_limit.to_wire(),
            "covered_until": None if self.covered_until is None else self.covered_until.isoformat(),
            "days": self.days, "stops": stops,
            "renewals": [{"order_id": c["order_id"], "kind": c["kind"], "on": c["on"].isoformat(),
                          "amount": amount.to_wire(), "balance_after": after.to_wire(),
                          "plan_name": c["plan_name"], "period_months": c["period_months"],
                          "paid_until": c["paid_until"].isoformat()}
                         for c, amount, after in self.paid],
            "renews_nothing": not self.charges,
            "horizon_days": self.horizon_days,
        }


def walk(today: date, balance: Money, credit_limit: Money, charges: list[tuple[dict, Money]],
         horizon_days: int) -> Forecast:
    """The balance taken through ``charges`` (planned charge, customer's amount) until the first it cannot pay."""
    paid, stops, running = [], None, balance
    for charge, amount in charges:
        after = running - amount
        if after.minor < -credit_limit.minor:   # what domain.balance_after refuses
            stops = (charge, amount)
            break
        paid.append((charge, amount, after))
        running = after
    return Forecast(today, balance, credit_limit, paid, stops, charges, horizon_days)


# --- the use case -------------------------------------------------------------------------

class BalanceForecasts:
    def __init__(self, uow, profiles, clock, seller: tax.Seller, currency: str):
        self.uow = uow
        self.profiles = profiles
        self.clock = clock
        self.seller = seller
        self.currency = currency

    def forecast(self, account_id, schedule, horizon_days) -> dict:
        """The forecast (docs/CONTRACTS.md), and the alert in days decided on it (once per crossing)."""
        data = load(ForecastArgumentsSchema, {"account_id": account_id, "schedule": schedule,
                                                "horizon_days": horizon_days})
        account_id, schedule = data["account_id"], data["schedule"]
        today = self.clock.today()
        with self.uow.transaction() as session:
            balance = session.get(Balance, account_id)
            currency = balance.currency if balance is not None else self.currency
        for charge in schedule:   # plans in another currency than the balance's: refused as a charge would be
            domain.check_currency(currency, charge["list_price"])
        prices = self._customer_prices(account_id, {charge["list_price"] for charge in schedule})
        with self.uow.transaction() as session:
            balance = session.scalar(select(Balance).where(Balance.account_id == account_id).with_for_update())
            # A charge the journal holds already (its order not written yet) is not counted again.
            taken = set(session.scalars(select(Transaction.idempotency_key).where(
                Transaction.account_id == account_id,
                Transaction.idempotency_key.in_([charge["key"] for charge in schedule])))) if schedule else set()
            schedule = [charge for charge in schedule if charge["key"] not in taken]
            forecast = walk(today, Money(balance.balance_minor if balance else 0, currency),
                            Money(balance.credit_limit_minor if balance else 0, currency),
                            [(charge, prices[charge["list_price"]]) for charge in schedule], data["horizon_days"])
            if balance is not None:
                self._alert(session, balance, forecast)
            return forecast.to_wire()

    def alerted_accounts(self, limit=None, cursor=None) -> dict:
        """A page of the accounts with an alert in days: the only ones a daily forecast can alert.

        Orders' daily check walks these instead of every account with a renewing order (a
        forecast of an account without the alert decides nothing).
        """
        query = select(Balance).where(Balance.low_balance_days.is_not(None))
        with self.uow.read() as session:
            return keyset_page(session, query, [Balance.account_id], limit, cursor).answer(
                lambda balance: balance.account_id)

    def _alert(self, session, balance: Balance, forecast: Forecast) -> None:
        under = forecast.under(balance.low_balance_days)
        if under and not balance.below_days:
            charge, amount = forecast.stops
            publish_later(session, "balance_running_out", {
                "account_id": balance.account_id, "order_id": charge["order_id"], "plan_name": charge["plan_name"],
                "stops_on": charge["overdue_on"].isoformat(), "days": forecast.days,
                "low_balance_days": balance.low_balance_days, "amount": amount.to_wire(),
                "to_pay": forecast.to_cover(balance.low_balance_days).to_wire(),
                "balance": forecast.balance.to_wire()})
        if under != bool(balance.below_days):
            balance.below_days = under
            balance.updated_at = self.clock.now()

    def _customer_prices(self, account_id: str, list_prices: set[Money]) -> dict[Money, Money]:
        """What this customer pays for each list price (the same rule as ``ledger.price``)."""
        if not list_prices:
            return {}
        profile = self.profiles.get(account_id)
        now = self.clock.now()
        treatment = tax.tax_treatment(tax.Buyer.from_profile(profile), self.seller, on=now)
        return {price: tax.price_for(price, treatment, self.seller, on=now).gross for price in list_prices}


# --- the gateway's shape -------------------------------------------------------------------

class ForecastStopSchema(Schema):
    order_id = fields.String(required=True)
    on = fields.Date(required=True, metadata={"description": "the day the order falls overdue"})
    kind = fields.String(required=True, metadata={"enum": ["payment", "renewal"]})
    plan_name = fields.String(required=True)
    charge_on = fields.Date(required=True, metadata={"description": "the day the clock tries the charge"})
    amount = fields.Nested(MoneyAmountSchema, required=True)


class ForecastRenewalSchema(Schema):
    order_id = fields.String(required=True)
    kind = fields.String(required=True, metadata={"enum": ["payment", "renewal"],
                                                  "description": "payment: a pending order paid first"})
    on = fields.Date(required=True, metadata={"description": "the day the clock charges it"})
    amount = fields.Nested(MoneyAmountSchema, required=True)
    balance_after = fields.Nested(MoneyAmountSchema, required=True)
    plan_name = fields.String(required=True)
    period_months = fields.Integer(required=True)
    paid_until = fields.Date(required=True, metadata={"description": "the order's paid_until once paid"})


class ForecastSchema(Schema):
    balance = fields.Nested(MoneyAmountSchema, required=True)
    credit_limit = fields.Nested(MoneyAmountSchema, required=True)
    covered_until = fields.Date(required=True, allow_none=True, metadata={
        "description": "the day the first order the balance cannot renew falls overdue; null beyond the horizon"})
    days = fields.Integer(required=True, allow_none=True, metadata={"description": "from today to covered_until"})
    stops = fields.Nested(ForecastStopSchema, required=True, allow_none=True)
    renewals = fields.List(fields.Nested(ForecastRenewalSchema), required=True,
                           metadata={"description": "the charges the balance pays, in the order the clock makes them"})
    renews_nothing = fields.Boolean(required=True, metadata={
        "description": "true when no order renews (auto-renew off everywhere) and none waits for payment"})
    horizon_days = fields.Integer(required=True, metadata={"example": 366})
