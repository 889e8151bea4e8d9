"""How long the balance lasts (docs/requirements.md A7): the renewals the lifecycle clock will make.

The renewal schedule is the orders service's knowledge; the balance, the credit limit and what
this customer pays for a list price are the ledger's. So the forecast is made in two steps:
:func:`renewal_schedule` lists, from the orders alone, every charge the clock will try in the
order it will try them, and the ledger (``ledger.forecast``) prices each for the customer and
walks the balance through them until the first it cannot pay.

What the clock does, and so what the schedule follows (services/orders/application.py ``tick``
and ``pay_pending``):

- a pending order is paid when the balance changes, oldest first, and the first one the
  balance cannot pay stops the others: pending orders come first, today, oldest first; a
  paid one starts its first period today;
- an order with auto-renew on, renewable and not scheduled to cancel, is renewed for its
  period (``period_months``) at its plan's current list price on its last paid day
  (``paid_until`` - 1, ``LifecycleSettings.auto_renew_days_before``); an overdue one, today
  (tomorrow when the timer tried it today already); the renewal runs from the later of
  ``paid_until`` and that day;
- orders due the same day are renewed in the order they were created;
- an order whose renewal cannot be paid falls overdue on its ``paid_until``.

Each planned charge carries the ledger key the clock will charge it with (``order:<id>:activate``,
``order:<id>:renew:<n>``), so that a charge the ledger has taken while the order is not written
yet (an activation or a renewal in flight, which is when the balance_changed event that asks for
a forecast comes) is not counted twice: the ledger leaves out the keys its journal already holds.

Nothing after the first renewal the balance cannot pay is forecast: from then on the
customer's services stop, and what the clock does next depends on what the customer does.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import structlog
from sqlalchemy import select

from services.common.clock import as_utc
from services.common.errors import DomainError, NotFound
from services.common.locks import try_lock
from services.common.money import Money
from services.orders import domain
from services.orders.domain import ENDED, RENEWABLE, LifecycleSettings, OrderState, Status
from services.orders.models import ForecastCheck, Order
from services.orders.repository import OrderRepository

log = structlog.get_logger(__name__)

HORIZON_DAYS = 366
PAYMENT, RENEWAL = "payment", "renewal"
# Accounts whose forecast the daily check looks at per timer run (the rest wait for the next run).
CHECKS_PER_RUN = 50
# Accounts with an alert in days asked of the ledger at a time.
ALERTED_PAGE = 100


def alert_in_days_set(balance_changed: dict) -> bool:
    """Whether a ``balance_changed`` calls for a forecast: only the alert in days uses it.

    The ledger says the customer's ``low_balance_days`` in the event (``alert_in_days``); with
    none set the ledger's decision is nothing, so no forecast is made for it (at the month end
    that was half of the orders service's and the ledger's CPU: a forecast of every renewing
    order of the account, for each renewal). An event that does not say (published before the
    field was) is given one, as before.
    """
    return balance_changed.get("alert_in_days", "unsaid") is not None


@dataclass(frozen=True)
class Renewable:
    """One order as the schedule needs it."""

    order_id: str
    state: OrderState
    created_at: object          # orders due the same day are renewed in this order
    tried_on: date | None       # the day the timer last tried to renew it automatically
    renewals: int = 0           # renewals made so far: the next is charged with key order:<id>:renew:<renewals + 1>


@dataclass(frozen=True)
class PlannedCharge:
    """A charge the clock will try: on ``on``; when it cannot be paid, the order is overdue from ``overdue_on``."""

    order_id: str
    kind: str                   # payment (a pending order) or renewal
    on: date
    overdue_on: date
    list_price: Money
    period_months: int
    plan_name: str
    paid_until: date            # the order's paid_until once this charge is paid
    key: str                    # the ledger idempotency key the clock charges it with

    def to_wire(self) -> dict:
        return {"order_id": self.order_id, "kind": self.kind, "key": self.key, "on": self.on.isoformat(),
                "overdue_on": self.overdue_on.isoformat(), "list_price": self.list_price.to_wire(),
                "period_months": self.period_months, "plan_name": self.plan_name,
                "paid_until": self.paid_until.isoformat()}


def renewal_schedule(orders: list[Renewable], today: date, horizon_days: int = HORIZON_DAYS,
                     settings: LifecycleSettings = domain.DEFAULT_SETTINGS) -> list[PlannedCharge]:
    """Every charge the clock will try from today to ``today + horizon_days``, in the order it tries them."""
    last_day = today + timedelta(days=horizon_days)
    pending = sorted((o for o in orders if o.state.status == Status.PENDING_PAYMENT
                      and domain.advance(o.state, today, settings) is None),
                     key=lambda o: (o.created_at, o.order_id))
    charges: list[tuple[tuple, PlannedCharge]] = []
    for first, order in enumerate(pending):
        months, plan = order.state.period_months, order.state.plan
        paid_until = domain.months_after(today, months)
        charges.append(((today, 0, first), PlannedCharge(order.order_id, PAYMENT, today, today,
                                                          plan.price_for(months), months, plan.name, paid_until,
                                                          f"order:{order.order_id}:activate")))
        if order.state.auto_renew:
            charges.extend(_renewals(order, paid_until, today, last_day, settings, tried_on=None))
    for order in orders:
        state = order.state
        if (state.status in RENEWABLE and state.auto_renew and state.cancel_at is None
                and state.paid_until is not None and domain.advance(state, today, settings) != Status.CLOSED):
            charges.extend(_renewals(order, state.paid_until, today, last_day, settings, tried_on=order.tried_on))
    return [charge for _, charge in sorted(charges, key=lambda item: item[0])]


def _renewals(order: Renewable, paid_until: date, today: date, last_day: date, settings: LifecycleSettings,
              tried_on: date | None) -> list[tuple[tuple, PlannedCharge]]:
    months, plan = order.state.period_months, order.state.plan
    price = plan.price_for(months)
    found, number = [], order.renewals
    while True:
        on = paid_until - timedelta(days=settings.auto_renew_days_before)
        if on < today:
            on = today
        if on == today and tried_on == today:
            on = today + timedelta(days=1)  # the timer tries an order once a day
        if on > last_day:
            return found
        renewed = domain.renewed_until(paid_until, on, months)
        number += 1
        found.append(((on, 1, order.created_at, order.order_id),
                      PlannedCharge(order.order_id, RENEWAL, on, paid_until, price, months, plan.name, renewed,
                                    f"order:{order.order_id}:renew:{number}")))
        paid_until, tried_on = renewed, None


class Forecasts:
    """The forecast of an account, and the daily check that lets the ledger alert in days (N2)."""

    def __init__(self, uow, catalogue, ledger, clock, settings: LifecycleSettings | None = None):
        from services.orders.application import lifecycle_settings
        self.uow = uow
        self.catalogue = catalogue
        self.ledger = ledger
        self.clock = clock
        self.settings = settings or lifecycle_settings()
        self.repository = OrderRepository(catalogue, clock)

    def schedule(self, account_id: str) -> list[PlannedCharge]:
        """Every charge the clock will try for the account: its live orders and all their periods in two queries."""
        today = self.clock.today()
        with self.uow.transaction() as session:
            rows = session.scalars(select(Order).where(
                Order.account_id == account_id, Order.status.not_in([s.value for s in ENDED]))).all()
            orders = [Renewable(loaded.row.id, loaded.state, as_utc(loaded.row.created_at),
                                loaded.row.auto_renew_tried_on, loaded.row.renewals)
                      for loaded in self.repository.loaded_all(session, rows)]
        return renewal_schedule(orders, today, HORIZON_DAYS, self.settings)

    def forecast(self, account_id: str) -> dict:
        """The forecast of docs/CONTRACTS.md: the ledger walks the balance through this account's schedule."""
        if not isinstance(account_id, str) or not 1 <= len(account_id) <= 64:
            raise NotFound("account")
        schedule = [charge.to_wire() for charge in self.schedule(account_id)]
        return self.ledger.forecast(account_id, schedule, HORIZON_DAYS)

    def check(self, account_id: str) -> None:
        """Let the ledger compare today's forecast with the customer's ``low_balance_days``; never raises."""
        try:
            self.forecast(account_id)
            with self.uow.transaction() as session:
                check = session.get(ForecastCheck, account_id)
                if check is None:
                    session.add(ForecastCheck(account_id=account_id, checked_on=self.clock.today()))
                else:
                    check.checked_on = self.clock.today()
        except DomainError as error:
            log.warning("forecast not checked", account_id=account_id, code=error.error_code)

    def check_daily(self) -> int:
        """Each account with an alert in days and orders that renew or wait for payment, once a day:
        the days fall as time passes.

        The ledger lists the accounts with the alert (``ledger.alerted_accounts``, a page at a
        time); only those get a forecast, up to ``CHECKS_PER_RUN`` a run. Every account with a
        renewing order, as before, cost a forecast a day each (on the month end's 100 customers a
        fifth of the ledger's CPU, its schedule loaded for nothing) and, 50 a run, could not reach
        more than 72,000 accounts a day.
        """
        today = self.clock.today()
        checked, cursor = 0, None
        while checked < CHECKS_PER_RUN:
            try:
                page = self.ledger.alerted_accounts(ALERTED_PAGE, cursor)
            except DomainError as error:
                log.warning("daily forecasts not checked", code=error.error_code)
                return checked
            due = self._due_today(page["items"], today)
            if due is None:
                return checked   # another replica is checking
            for account_id in due[:CHECKS_PER_RUN - checked]:
                self.check(account_id)
                checked += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        return checked

    def _due_today(self, account_ids: list[str], today: date) -> list[str] | None:
        """Which of ``account_ids`` have an order that renews or waits for payment and no check today;
        None while another replica holds the check's lock."""
        if not account_ids:
            return []
        with self.uow.transaction() as session:
            if not try_lock(session, "orders.forecast_checks"):
                return None
            return session.scalars(
                select(Order.account_id).distinct()
                .outerjoin(ForecastCheck, ForecastCheck.account_id == Order.account_id)
                .where(Order.account_id.in_(account_ids), Order.status.not_in([s.value for s in ENDED]),
                       (Order.auto_renew.is_(True)) | (Order.status == Status.PENDING_PAYMENT.value),
                       (ForecastCheck.checked_on.is_(None)) | (ForecastCheck.checked_on < today))
                .order_by(Order.account_id)).all()
