"""A new order (O3): placed with its address, charged, active; or pending until the money arrives."""
from __future__ import annotations

import uuid
from datetime import date

import structlog
from sqlalchemy import func, select

from services.common.errors import DomainError
from services.common.idempotency import KeyedRequest
from services.common.locks import lock
from services.common.money import Money
from services.common.outbox import already_processed, first_delivery, publish_later
from services.common.schemas import load
from services.orders import domain
from services.orders.catalogue import Plan
from services.orders.domain import ENDED, Status
from services.orders.models import IpAssignment, Order
from services.orders.operations import LEASE, keyed_request, reply_to
from services.orders.parts import Parts
from services.orders.repository import Loaded, about, invoice_line, transaction_id
from services.orders.schemas import NewOrderSchema

log = structlog.get_logger(__name__)

BALANCE_CONSUMER = "orders.balance_changed"
ORDER_IDS = uuid.UUID("5d0c6f4e-8b1f-4a57-9a51-6f7f3c1b2a90")  # uuid5 namespace of keyed new orders


def order_id_for(account_id: str, idempotency_key: str | None) -> str:
    """With a key, a retry after a failure half-way finds the same order instead of making another."""
    if idempotency_key:
        return str(uuid.uuid5(ORDER_IDS, f"{account_id}:{idempotency_key}"))
    return str(uuid.uuid4())


def check_payments_allowed(profile: dict) -> None:
    """An account may order once payments are not blocked and it has a postal address."""
    if profile.get("payments_blocked"):
        raise DomainError("payments_blocked",
                          "Payments are blocked until Introserv has verified the company's data.")
    if not profile.get("postal_address"):
        raise DomainError("postal_address_required",
                          "Add a postal address to the profile before ordering.",
                          fields={"postal_address": ["required"]})


def activation(order_id: str, state: domain.OrderState, today: date, charged: Money,
               keyed: KeyedRequest | None, announce: bool) -> dict:
    """The pending operation that charges a new order and makes it active."""
    period = domain.activate(state, today, charged).periods[0]
    what = f"{state.plan.name}, {state.period_months} months"
    return {"kind": "activate", "today": today.isoformat(), "charged": charged.to_wire(),
            "reply_to": reply_to(keyed), "announce": announce,
            "charge": {"amount": charged.to_wire(), "key": f"order:{order_id}:activate",
                       "description": what, "lines": [invoice_line(what, period)]}}


class Placement:
    def __init__(self, parts: Parts):
        self.parts = parts
        self.uow, self.repository, self.clock = parts.uow, parts.repository, parts.clock
        self.profile = parts.profile  # the profile service (RPC)
        parts.pending.finishers["activate"] = self.finish_activation

    def place_order(self, account_id: str, body, idempotency_key: str | None = None) -> dict:
        data = load(NewOrderSchema(), body)
        keyed = keyed_request(account_id, "place_order", idempotency_key, data)
        return self.parts.keys.once(keyed, lambda: self._place(account_id, data, idempotency_key, keyed))

    def _place(self, account_id: str, data: dict, idempotency_key: str | None,
               keyed: KeyedRequest | None = None) -> dict:
        plan = self.parts.catalogue.plan(data["plan_id"])
        state = domain.new_order(plan, data["period_months"], data["fields"], self.clock.today(), data["auto_renew"])
        check_payments_allowed(self.profile.get(account_id))
        order_id = order_id_for(account_id, idempotency_key)
        with self.uow.transaction() as session:
            exists = session.scalar(select(Order.status).where(Order.id == order_id))
        if exists is not None:
            if exists == Status.PENDING_PAYMENT.value:
                self.activate(order_id)
            with self.uow.transaction() as session:
                return self.repository.view(self.repository.load(session, order_id, account_id))
        with self.uow.transaction() as session:
            # One placement at a time: the free addresses and the plan's stock are read and taken
            # in one step, so concurrent orders neither collide on an address nor overfill a
            # datacenter, and the lowest free address is always the one given.
            lock(session, "orders:placement")
            placement = self._placement(session, plan, state.fields)
            now = self.clock.now()
            session.add(Order(
                id=order_id, account_id=account_id, plan_id=plan.id, period_months=state.period_months,
                status=Status.PENDING_PAYMENT.value, auto_renew=state.auto_renew, cancel_at=None,
                fields=dict(state.fields), datacenter=placement.datacenter, ip_address=None,
                currency=state.currency, renewals=0, plan_changes=0,
                busy_until=now + LEASE, busy_with="activate", created_at=now, updated_at=now))
            session.flush()
            # Held while the order awaits payment, so a customer who pays gets a server.
            session.add(IpAssignment(ip_address=placement.ip_address, datacenter=placement.datacenter,
                                     order_id=order_id, assigned_at=now))
            self.repository.event(session, order_id, "created", {
                "plan_id": plan.id, "period_months": state.period_months, "cost": state.cost.to_wire()})
        paid = self.activate(order_id, lease_held=True, keyed=keyed, announce=True)
        with self.uow.transaction() as session:
            loaded = self.repository.load(session, order_id)
            if not paid:  # a paid order was announced with its activation, in the same transaction
                announce(session, loaded)
            return self.repository.view(loaded)

    def _placement(self, session, plan: Plan, fields) -> domain.Placement:
        used = session.scalars(select(IpAssignment.ip_address)).all()
        in_use = dict(session.execute(
            select(Order.datacenter, func.count()).where(Order.plan_id == plan.id,
                                                         Order.status.not_in([s.value for s in ENDED]))
            .group_by(Order.datacenter)).all())
        return domain.choose_placement(plan, fields, self.parts.catalogue.ip_pools, used, in_use)

    def activate(self, order_id: str, lease_held: bool = False, keyed: KeyedRequest | None = None,
                 announce: bool = False) -> bool:
        """Charge a pending order and make it active; False (and still pending) without the funds.

        ``announce``: a new order, whose "order received" event goes out with its activation,
        also when the lifecycle timer finishes an activation whose worker died.
        """
        store = self.parts.store
        if not lease_held and store.claim(order_id, None, "activate", only_while=Status.PENDING_PAYMENT) is None:
            return False  # paid or cancelled meanwhile: nothing to do, and no lease taken from anyone
        try:
            with self.uow.transaction() as session:
                loaded = self.repository.load(session, order_id)
            if loaded.state.status != Status.PENDING_PAYMENT:
                return False
            charged = self.parts.billing.customer_price(loaded.row.account_id, loaded.state.cost)
            operation = activation(order_id, loaded.state, self.clock.today(), charged, keyed, announce)
            try:
                self.parts.pending.carry_out(order_id, operation)
            except DomainError as error:
                if error.error_code == "insufficient_funds":
                    return False
                raise
            return True
        finally:
            store.release_lease(order_id)

    def finish_activation(self, order_id: str, operation: dict) -> dict:
        with self.uow.transaction() as session:
            row = session.get(Order, order_id)
        transaction = self.parts.billing.charge(row, operation["charge"])
        charged = Money.from_wire(operation["charged"])
        with self.uow.transaction() as session:
            loaded = self.repository.load(session, order_id, lock=True)
            row = loaded.row
            paid = domain.activate(loaded.state, date.fromisoformat(operation["today"]), charged)
            row.ip_address = self.repository.assigned_ip(session, order_id)
            self.repository.save(session, row, paid)
            self.repository.record_charge(session, order_id, transaction, charged, "activate")
            self.repository.event(session, order_id, "paid", {"amount": charged.to_wire(),
                                                              "transaction_id": transaction_id(transaction),
                                                              "paid_until": paid.paid_until.isoformat()})
            if operation.get("announce"):
                announce(session, Loaded(row, paid))
            publish_later(session, "order_activated", {
                **about(Loaded(row, paid)), "ip_address": row.ip_address,
                "paid_until": paid.paid_until.isoformat(), "cost": charged.to_wire()})
            return self.parts.pending.done(session, row, operation, self.repository.view(Loaded(row, paid)))

    def pay_pending(self, account_id: str) -> int:
        """Pay the account's pending orders from its balance, oldest first; stops at the first it cannot pay."""
        with self.uow.transaction() as session:
            pending = self.repository.pending_orders(session, account_id)
        paid = 0
        for order_id in pending:
            try:
                if not self.activate(order_id):
                    break  # an older order waits first: a newer, cheaper one does not jump the queue
            except DomainError as error:
                if error.error_code == "conflict":
                    continue  # being paid or cancelled right now by another worker
                raise
            paid += 1
        return paid

    def on_balance_changed(self, payload: dict) -> None:
        """``ledger.balance_changed``: pay what waits; recorded as processed only once done."""
        event_id, account_id = payload.get("event_id"), payload.get("account_id")
        if not event_id or not account_id:
            log.warning("balance_changed without event_id or account_id ignored")
            return
        with self.uow.transaction() as session:
            if already_processed(session, BALANCE_CONSUMER, event_id):
                return
        # Paying is idempotent in itself (ledger keys per order), so a redelivery mid-way is harmless.
        self.pay_pending(account_id)
        with self.uow.transaction() as session:
            first_delivery(session, BALANCE_CONSUMER, event_id)


def announce(session, loaded: Loaded) -> None:
    """The "order received" event, with the status the order has now (active or pending_payment)."""
    publish_later(session, "order_created", {
        **about(loaded), "period_months": loaded.state.period_months,
        "cost": loaded.state.cost.to_wire(), "status": loaded.state.status.value})
