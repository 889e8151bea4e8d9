"""The orders service's use cases, one module per command family; this class puts them together.

- placement.py: a new order, its activation, paying what waits when money arrives;
- renewal.py, plan_change.py, cancellation.py: the customer's commands on an order;
- lifecycle.py: the clock (overdue, suspended, closed, reminders, automatic renewals);
- operations.py: the lease and the pending operation every money-moving command goes through;
- repository.py: orders and their periods in the database; billing.py: the calls to the ledger.

Read, ask the ledger, then write: never a transaction across an RPC.
"""
from __future__ import annotations

from sqlalchemy import select

from services.common.errors import ValidationError
from services.common.idempotency import IdempotencyKeys
from services.common.pagination import keyset_page
from services.orders import address_stock
from services.orders.billing import Billing
from services.orders.cancellation import Cancellation
from services.orders.catalogue import Catalogue
from services.orders.domain import ENDED, LifecycleSettings, Status
from services.orders.lifecycle import LifecycleClock, lifecycle_settings, retry_seconds, tick_seconds
from services.orders.models import CataloguePlan, Order
from services.orders.operations import LEASE, OperationStore, PendingOperations
from services.orders.parts import Parts
from services.orders.placement import Placement
from services.orders.plan_change import PlanChanges
from services.orders.renewal import Renewal
from services.orders.repository import OrderRepository

__all__ = ["Orders", "lifecycle_settings", "retry_seconds", "tick_seconds"]

# A request with an Idempotency-Key whose worker died is taken over after this long.
ABANDONED_REQUEST = LEASE


class Orders:
    def __init__(self, uow, catalogue: Catalogue, ledger, profile, clock,
                 settings: LifecycleSettings | None = None):
        self.uow = uow
        self.catalogue = catalogue
        self.clock = clock
        repository = OrderRepository(catalogue, clock)
        keys = IdempotencyKeys(uow, clock, abandoned_after=ABANDONED_REQUEST)
        store = OperationStore(uow, repository, clock)
        self.parts = Parts(uow=uow, catalogue=catalogue, clock=clock, profile=profile, keys=keys,
                           repository=repository, billing=Billing(uow, ledger, repository), store=store,
                           pending=PendingOperations(store, keys))
        self.placement = Placement(self.parts)
        self.renewal = Renewal(self.parts)
        self.plan_changes = PlanChanges(self.parts)
        self.cancellation = Cancellation(self.parts)
        self.lifecycle = LifecycleClock(self.parts, self.renewal, settings)

    # -- the catalogue
    def list_plans(self, kind: str | None = None) -> dict:
        return {"items": [plan.to_wire() for plan in self.catalogue.list_plans(kind)], "next_cursor": None}

    def sync_plans(self) -> None:
        """Copy the catalogue's plans into the database (at start), so SQL alone can read orders,
        and bring the free addresses in line with its pools."""
        with self.uow.transaction() as session:
            address_stock.fill(session, self.catalogue.ip_pools)
        with self.uow.transaction() as session:
            for plan in self.catalogue.plans:
                session.merge(CataloguePlan(id=plan.id, kind=plan.kind, name=plan.name,
                                            monthly_price_minor=plan.monthly_price.minor,
                                            currency=plan.monthly_price.currency,
                                            catalogue_version=self.catalogue.version))

    # -- reading
    def get_order(self, order_id, account_id: str | None = None) -> dict:
        repository = self.parts.repository
        with self.uow.transaction() as session:
            loaded = repository.load(session, order_id, account_id)
            view = repository.view(loaded)
            view["events"] = repository.events(session, loaded.row.id)
            if account_id is None:
                view["account_id"] = loaded.row.account_id
            return view

    def list_orders(self, account_id: str, status: str | None = None, limit: int = 50,
                    cursor: str | None = None, active_only: bool = False) -> dict:
        """The account's orders, newest first, in pages; ``active_only``: all but cancelled and closed."""
        if status is not None and status not in {s.value for s in Status}:
            raise ValidationError({"status": ["must be one of " + ", ".join(s.value for s in Status)]})
        query = select(Order).where(Order.account_id == account_id)
        if status is not None:
            query = query.where(Order.status == status)
        if active_only:
            query = query.where(Order.status.not_in([s.value for s in ENDED]))
        repository = self.parts.repository
        with self.uow.transaction() as session:
            page = keyset_page(session, query, [Order.created_at, Order.id], limit, cursor)
            return page.answer(lambda row: repository.view(repository.loaded(session, row)))

    # -- commands
    def place_order(self, account_id: str, body, idempotency_key: str | None = None) -> dict:
        return self.placement.place_order(account_id, body, idempotency_key)

    def pay_pending(self, account_id: str) -> int:
        return self.placement.pay_pending(account_id)

    def on_balance_changed(self, payload: dict) -> None:
        self.placement.on_balance_changed(payload)

    def on_profile_changed(self, event: dict) -> None:
        self.placement.on_profile_changed(event)

    def renew(self, account_id: str, order_id, body, idempotency_key: str | None = None) -> dict:
        return self.renewal.renew(account_id, order_id, body, idempotency_key)

    def change_plan_quote(self, account_id: str, order_id, plan_id) -> dict:
        return self.plan_changes.change_plan_quote(account_id, order_id, plan_id)

    def change_plan(self, account_id: str, order_id, body, idempotency_key: str | None = None) -> dict:
        return self.plan_changes.change_plan(account_id, order_id, body, idempotency_key)

    def cancel_quote(self, account_id: str, order_id, when: str = "now") -> dict:
        return self.cancellation.cancel_quote(account_id, order_id, when)

    def cancel(self, account_id: str, order_id, body, idempotency_key: str | None = None) -> dict:
        return self.cancellation.cancel(account_id, order_id, body, idempotency_key)

    # -- the clock
    def tick(self) -> dict:
        return self.lifecycle.tick()

    def finish_interrupted(self) -> int:
        return self.parts.pending.finish_interrupted()
