"""The orders service's use cases, one module per command family; this class puts them together.

- placement.py: a new order, its activation, paying what waits when money arrives;
- renewal.py, plan_change.py, cancellation.py: the customer's commands on an order;
- lifecycle.py: the clock (overdue, suspended, closed, reminders, automatic renewals);
- operations.py: the lease and the pending operation every money-moving command goes through;
- repository.py: orders and their periods in the database; billing.py: the calls to the ledger.

Read, ask the ledger, then write: never a transaction across an RPC.
"""
from __future__ import annotations

from sqlalchemy import bindparam, select

from services.common.errors import DomainError, ValidationError
from services.common.idempotency import IdempotencyKeys
from services.common.pagination import keyset_page
from services.common.schemas import load
from services.orders import address_stock, quotes, stock
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
from services.orders.schemas import OrderChangeSchema

__all__ = ["Orders", "lifecycle_settings", "retry_seconds", "tick_seconds"]

# A request with an Idempotency-Key whose worker died is taken over after this long.
ABANDONED_REQUEST = LEASE


def _order_list(by_status: bool, active_only: bool):
    query = select(Order).where(Order.account_id == bindparam("account_id"))
    if by_status:
        query = query.where(Order.status == bindparam("status"))
    if active_only:
        query = query.where(Order.status.not_in([s.value for s in ENDED]))
    return query


# The order lists' queries, built once: building and keying a statement for each read cost about
# as much as running it (README Performance). Keyed by (a status asked, active orders only).
ORDER_LISTS = {(by_status, active_only): _order_list(by_status, active_only)
               for by_status in (False, True) for active_only in (False, True)}


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
        """The plans on sale, each saying which datacenters have stock now (services/orders/stock.py)."""
        plans = self.catalogue.list_plans(kind)
        with self.uow.transaction() as session:
            room = stock.room(session, self.catalogue)
        return {"items": [plan.to_wire(room[plan.id]) for plan in plans], "next_cursor": None}

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
        repository = self.parts.repository
        with self.uow.read() as session:   # READ COMMITTED: a transaction would give no common snapshot either
            page = keyset_page(session, ORDER_LISTS[status is not None, active_only], [Order.created_at, Order.id],
                               limit, cursor, params={"account_id": account_id, "status": status})
            loaded = repository.loaded_all(session, page.rows)   # the page's periods in one query, not one per order
            return {"items": [repository.view(order) for order in loaded], "next_cursor": page.next_cursor}

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

    def update_order(self, account_id: str, order_id, body) -> dict:
        """Switch auto-renew on or off; an ended order renews nothing (409 conflict)."""
        data = load(OrderChangeSchema, body)
        repository = self.parts.repository
        with self.uow.transaction() as session:
            loaded = repository.load(session, order_id, account_id, lock=True)
            row = loaded.row
            if loaded.state.status in ENDED:
                raise DomainError("conflict", f"A {row.status} order does not renew.", details={"status": row.status})
            if row.auto_renew != data["auto_renew"]:
                row.auto_renew = data["auto_renew"]
                row.updated_at = self.clock.now()
                repository.event(session, row.id, "auto_renew_changed", {"auto_renew": data["auto_renew"]})
            return repository.view(repository.loaded(session, row))

    # -- quotes: what the customer confirms before a charge (services/orders/quotes.py)
    def renew_quote(self, account_id: str, order_id, months: int) -> dict:
        """What renewing for ``months`` would charge now, and the paid-until after it."""
        with self.uow.transaction() as session:
            loaded = self.parts.repository.load(session, order_id, account_id)
        return quotes.renewal(loaded.state, self.clock.today(), months, self._price_for(account_id)).to_wire()

    def order_quote(self, account_id: str, plan_id, months) -> dict:
        """What placing an order of the plan for ``months`` would charge now, paid at once."""
        return quotes.new_order(self.catalogue.plan(plan_id), self.clock.today(), months,
                                self._price_for(account_id)).to_wire()

    def _price_for(self, account_id: str):
        """This customer's price for a list price: the ledger's own rule, the one ``charge_order`` charges by."""
        return lambda list_price: self.parts.billing.customer_price(account_id, list_price)

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
