"""The orders service: plans, orders, their money through the ledger, and the lifecycle clock."""
from __future__ import annotations

from nameko.extensions import DependencyProvider
from nameko.timer import Timer

from services.common.base import ServiceBase
from services.common.clock import clock
from services.common.config import env
from services.common.database import Database
from services.common.events import handle_event
from services.common.logging import configure
from services.common.roles import GATEWAY, OPERATOR, STAFF
from services.common.rpc import ServiceRpc, rpc
from services.orders.application import Orders, retry_seconds, tick_seconds
from services.orders.forecast import Forecasts, alert_in_days_set
from services.orders.catalogue import load_catalogue, parse_ip_pools
from services.orders.models import Base

configure("orders")


class CatalogueProvider(DependencyProvider):
    """The plans file, checked when the service starts (a broken file stops it) and copied to the database."""

    def setup(self):
        self.catalogue = load_catalogue(ip_pools=parse_ip_pools(env("ORDERS_IP_POOLS", "")))

    def start(self):
        database = next(d for d in self.container.dependencies if isinstance(d, Database))
        Orders(database.unit_of_work(), self.catalogue, None, None, clock).sync_plans()

    def get_dependency(self, worker_ctx):
        return self.catalogue


class LifecycleTimer(Timer):
    """A timer whose interval is read when the service starts (``ORDERS_TICK_SECONDS``, default 60)."""

    def __init__(self, **kwargs):
        super().__init__(interval=None, **kwargs)

    def setup(self):
        self.interval = tick_seconds()


class InterruptedTimer(Timer):
    """How often interrupted operations are looked for (``ORDERS_RETRY_SECONDS``, default 5)."""

    def __init__(self, **kwargs):
        super().__init__(interval=None, **kwargs)

    def setup(self):
        self.interval = retry_seconds()


class OrdersService(ServiceBase):
    name = "orders"

    db = Database(Base.metadata)
    catalogue = CatalogueProvider()
    ledger = ServiceRpc("ledger")
    profile = ServiceRpc("profile")

    @property
    def orders(self) -> Orders:
        return Orders(self.db, self.catalogue, self.ledger, self.profile, clock)

    @property
    def forecasts(self) -> Forecasts:
        return Forecasts(self.db, self.catalogue, self.ledger, clock)

    # -- for other Introserv systems (docs/CONTRACTS.md, RPC)
    @rpc(roles=GATEWAY | STAFF)
    def list_plans(self, kind=None):
        return self.orders.list_plans(kind)

    @rpc(roles=STAFF)
    def list_orders(self, account_id, status=None, limit=50, cursor=None):
        return self.orders.list_orders(account_id, status=status, limit=limit, cursor=cursor)

    @rpc(roles=STAFF)
    def get_order(self, order_id):
        return self.orders.get_order(order_id)

    # -- for the gateway: every call names the account, so another customer's order is not_found
    @rpc(roles=GATEWAY | OPERATOR)
    def list_active(self, account_id, limit=50, cursor=None):
        return self.orders.list_orders(account_id, limit=limit, cursor=cursor, active_only=True)

    @rpc(roles=GATEWAY | OPERATOR)
    def list_history(self, account_id, limit=50, cursor=None):
        return self.orders.list_orders(account_id, limit=limit, cursor=cursor)

    @rpc(roles=GATEWAY | OPERATOR)
    def get_customer_order(self, account_id, order_id):
        return self.orders.get_order(order_id, account_id)

    @rpc(roles=GATEWAY)
    def place_order(self, account_id, body, idempotency_key=None):
        return self.orders.place_order(account_id, body, idempotency_key)

    @rpc(roles=GATEWAY)
    def renew(self, account_id, order_id, body, idempotency_key=None):
        return self.orders.renew(account_id, order_id, body, idempotency_key)

    @rpc(roles=GATEWAY | OPERATOR)
    def order_quote(self, account_id, plan_id, period_months):
        return self.orders.order_quote(account_id, plan_id, period_months)

    @rpc(roles=GATEWAY | OPERATOR)
    def renew_quote(self, account_id, order_id, period_months):
        return self.orders.renew_quote(account_id, order_id, period_months)

    @rpc(roles=GATEWAY)
    def update_order(self, account_id, order_id, body):
        return self.orders.update_order(account_id, order_id, body)

    @rpc(roles=GATEWAY | OPERATOR)
    def change_plan_quote(self, account_id, order_id, plan_id):
        return self.orders.change_plan_quote(account_id, order_id, plan_id)

    @rpc(roles=GATEWAY)
    def change_plan(self, account_id, order_id, body, idempotency_key=None):
        return self.orders.change_plan(account_id, order_id, body, idempotency_key)

    @rpc(roles=GATEWAY | OPERATOR)
    def cancel_quote(self, account_id, order_id, when="now"):
        return self.orders.cancel_quote(account_id, order_id, when)

    @rpc(roles=GATEWAY)
    def cancel(self, account_id, order_id, body, idempotency_key=None):
        return self.orders.cancel(account_id, order_id, body, idempotency_key)

    @rpc(roles=GATEWAY | STAFF)
    def forecast(self, account_id):
        return self.forecasts.forecast(account_id)

    # -- events and the clock
    @handle_event("ledger", "balance_changed")
    def on_balance_changed(self, payload):
        self.orders.on_balance_changed(payload)
        if payload.get("account_id") and alert_in_days_set(payload):
            self.forecasts.check(payload["account_id"])  # the alert in days (services/orders/forecast.py)

    @handle_event("profile", "account_registered")
    def on_account_registered(self, event):
        self.orders.on_profile_changed(event)

    @handle_event("profile", "profile_changed")
    def on_profile_changed(self, event):
        self.orders.on_profile_changed(event)

    @handle_event("profile", "country_changed")
    def on_country_changed(self, event):
        self.orders.on_profile_changed(event)

    @handle_event("profile", "company_reviewed")
    def on_company_reviewed(self, event):
        self.orders.on_profile_changed(event)

    @LifecycleTimer.decorator
    def lifecycle(self):
        self.orders.tick()

    @InterruptedTimer.decorator
    def finish_interrupted(self):
        """An order whose ledger call failed is finished within seconds of the ledger answering again."""
        self.orders.finish_interrupted()

    @LifecycleTimer.decorator
    def forecast_checks(self):
        """Once a day per account: the forecast's days fall as time passes, without any movement."""
        self.forecasts.check_daily()
