"""A new order (O3): placed with its address, charged, active; or pending until the money arrives.

A paid order takes three transactions here and one call to the ledger: the request's key
claimed and the customer's eligibility read from the copy of profile; the order, its address
and its pending operation written together; the ledger's ``charge_order`` (priced and charged
at once); the activation, its events and the request's answer written together. On PostgreSQL
the order's writes of each of the last two are one statement (repository.py).
"""
from __future__ import annotations

import uuid
from datetime import date

import structlog
from sqlalchemy import select

from services.common import profile_copy
from services.common.errors import DomainError
from services.common.idempotency import KeyedRequest, request_in_progress
from services.common.money import Money
from services.common.outbox import already_processed, first_delivery, outbox_row, publish_all
from services.common.schemas import load
from services.orders import address_stock, domain
from services.orders.catalogue import Plan
from services.orders.domain import Status
from services.orders.models import Order
from services.orders.operations import LEASE, keyed_request, release, reply_to
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


def activation(order_id: str, state: domain.OrderState, today: date, keyed: KeyedRequest | None,
               announce: bool) -> dict:
    """The pending operation that charges a new order's list price (the ledger prices it) and makes it active."""
    period = domain.activate(state, today, state.cost).periods[0]
    what = f"{state.plan.name}, {state.period_months} months"
    return {"kind": "activate", "today": today.isoformat(), "reply_to": reply_to(keyed), "announce": announce,
            "charge": {"amount": state.cost.to_wire(), "key": f"order:{order_id}:activate",
                       "description": what, "lines": [invoice_line(what, period)]}}


def money_arrived(payload: dict) -> bool:
    """Whether a balance change can make a pending order payable: money in, not a charge."""
    try:
        return Money.from_wire(payload["amount"]).minor > 0
    except (KeyError, TypeError, ValueError, DomainError):
        return True  # an event without a readable amount: look, as before


class Placement:
    def __init__(self, parts: Parts):
        self.parts = parts
        self.uow, self.repository, self.clock = parts.uow, parts.repository, parts.clock
        self.profile = parts.profile  # the profile service (RPC), when the copy is missing
        parts.pending.finishers["activate"] = self.finish_activation

    def place_order(self, account_id: str, body, idempotency_key: str | None = None) -> dict:
        data = load(NewOrderSchema, body)
        keyed = keyed_request(account_id, "place_order", idempotency_key, data)
        plan = self.parts.catalogue.plan(data["plan_id"])
        state = domain.new_order(plan, data["period_months"], data["fields"], self.clock.today(), data["auto_renew"])
        order_id = order_id_for(account_id, idempotency_key)
        with self.uow.transaction() as session:
            if keyed is not None:
                if (answer := self.parts.keys.claim(session, keyed)) is not None:
                    return answer
                placed = session.scalar(select(Order.id).where(Order.id == order_id))
            else:
                placed = None
            profile = profile_copy.read(session, account_id)
        try:
            if placed is not None:  # the first request with this key failed half-way
                return self._again(order_id, account_id, keyed)
            asked = None
            if profile is None:
                profile = asked = self.profile.get(account_id)
            try:
                check_payments_allowed(profile)
            except DomainError:
                if asked is not None:
                    raise
                # The copy may be seconds behind an approval or a new address: a refusal is asked again.
                check_payments_allowed(self.profile.get(account_id))
            return self._place(order_id, account_id, plan, state, keyed, asked)
        except BaseException:
            if keyed is not None:
                with self.uow.transaction() as session:
                    self.parts.keys.forget(session, keyed)
            raise

    def _place(self, order_id: str, account_id: str, plan: Plan, state: domain.OrderState,
               keyed: KeyedRequest | None, asked: dict | None) -> dict:
        operation = activation(order_id, state, self.clock.today(), keyed, announce=True)
        with self.uow.transaction() as session:
            if asked is not None:
                profile_copy.keep_answer(session, account_id, asked)
            # A free address taken, and the plan's stock counted, without waiting for other orders.
            placement = address_stock.take(session, plan, state.fields, self.parts.catalogue.ip_pools)
            now = self.clock.now()
            # The address is held while the order awaits payment, so a customer who pays gets a server.
            row = self.repository.add_placed(session, {
                "id": order_id, "account_id": account_id, "plan_id": plan.id, "period_months": state.period_months,
                "status": Status.PENDING_PAYMENT.value, "auto_renew": state.auto_renew, "cancel_at": None,
                "fields": dict(state.fields), "datacenter": placement.datacenter, "ip_address": None,
                "currency": state.currency, "renewals": 0, "plan_changes": 0, "pending_operation": operation,
                "busy_until": now + LEASE, "busy_with": "activate", "created_at": now, "updated_at": now,
            }, placement.ip_address, history=("created", {
                "plan_id": plan.id, "period_months": state.period_months, "cost": state.cost.to_wire()}))
        state = self.repository.state_of(row, ())
        try:
            transaction, charged = self.parts.billing.take(row, operation)
        except DomainError as error:
            if error.error_code == "service_unavailable":
                self.parts.store.expire_lease(order_id)  # the outcome is unknown: the clock finishes it
                raise
            return self._unpaid(row, state, operation, keyed, error)
        except Exception:
            self.parts.store.expire_lease(order_id)
            raise
        return self._activated(order_id, Loaded(row, state), operation, transaction, charged, placement.ip_address)

    def _unpaid(self, row: Order, state: domain.OrderState, operation: dict, keyed: KeyedRequest | None,
                refusal: DomainError) -> dict:
        """The ledger refused the charge: nothing moved. Without the funds the order waits, announced."""
        answer = None
        with self.uow.transaction() as session:
            current = session.get(Order, row.id, with_for_update=True)
            current.pending_operation = None
            release(current)
            if refusal.error_code == "insufficient_funds":
                loaded = Loaded(current, state)
                announce(session, loaded)
                answer = self.repository.view(loaded)
                if keyed is not None:
                    self.parts.keys.remember(session, keyed, answer)
        if answer is None:
            raise refusal
        return answer

    def _again(self, order_id: str, account_id: str, keyed: KeyedRequest | None) -> dict:
        """A retry of a request whose first attempt failed half-way: finish what it started, or say it runs."""
        answer = self.parts.pending.finish_if_interrupted(order_id)
        if answer is None:
            try:
                self.activate(order_id, keyed)
            except DomainError as error:
                if error.error_code != "conflict":
                    raise
                # Its operation is still being carried out (by the first worker, or the clock).
                raise request_in_progress(2) from None
        with self.uow.transaction() as session:
            return self.repository.view(self.repository.load(session, order_id, account_id))

    def activate(self, order_id: str, keyed: KeyedRequest | None = None) -> bool:
        """Charge a pending order and make it active; False (and still pending) without the funds.

        A background payment that finds the order paid or cancelled meanwhile takes no lease.
        """
        store = self.parts.store
        loaded = store.claim(order_id, None, "activate", only_while=Status.PENDING_PAYMENT)
        if loaded is None:
            return False  # paid or cancelled meanwhile: nothing to do, and no lease taken from anyone
        try:
            operation = activation(order_id, loaded.state, self.clock.today(), keyed, announce=False)
            self.parts.pending.carry_out(order_id, operation)  # its last transaction drops the lease
            return True
        except BaseException as error:
            store.release_lease(order_id)  # a lease kept only while an operation is still written
            if isinstance(error, DomainError) and error.error_code == "insufficient_funds":
                return False
            raise

    def finish_activation(self, order_id: str, operation: dict) -> dict:
        """Carry out a written activation (a pending order paid later, or one the clock finishes)."""
        with self.uow.transaction() as session:
            loaded = self.repository.load(session, order_id)
            ip_address = self.repository.assigned_ip(session, order_id)
        transaction, charged = self.parts.billing.take(loaded.row, operation)
        return self._activated(order_id, loaded, operation, transaction, charged, ip_address)

    def _activated(self, order_id: str, loaded: Loaded, operation: dict, transaction: dict, charged: Money,
                   ip_address: str | None) -> dict:
        """The charge is taken: the order active, its charge, events and the request's answer, in one transaction."""
        with self.uow.transaction() as session:
            row = session.get(Order, order_id, with_for_update=True)
            if row.pending_operation is None:  # finished meanwhile by another worker: that is the answer
                return self.repository.view(self.repository.loaded(session, row))
            paid = domain.activate(loaded.state, date.fromisoformat(operation["today"]), charged)
            row.ip_address = ip_address
            events = [announcement(session, Loaded(row, paid))] if operation.get("announce") else []
            events.append(outbox_row(session, "order_activated", {
                **about(Loaded(row, paid)), "ip_address": row.ip_address,
                "paid_until": paid.paid_until.isoformat(), "cost": charged.to_wire()}))
            self.repository.save_paid(
                session, row, paid, bool(loaded.state.periods),
                charge=self.repository.charge_row(order_id, transaction, charged, "activate"),
                history=("paid", {"amount": charged.to_wire(), "transaction_id": transaction_id(transaction),
                                  "paid_until": paid.paid_until.isoformat()}),
                events=events)
            return self.parts.pending.done(session, row, operation, self.repository.view(Loaded(row, paid)))

    def pay_pending(self, account_id: str) -> int:
        """Pay the account's pending orders from its balance, oldest first; stops at the first it cannot pay."""
        with self.uow.transaction() as session:
            pending = self.repository.pending_orders(session, account_id)
        return self._pay(pending)

    def _pay(self, pending: list[str]) -> int:
        paid = 0
        for order_id in pending:
            try:
                if not self.activate(order_id):
                    break  # an older order waits first: a newer, cheaper one does not jump the queue
            except DomainError as error:
                if error.error_code != "conflict":
                    raise
                # Being paid or cancelled right now by another worker, or interrupted: then finish it now.
                if self.parts.pending.finish_if_interrupted(order_id) is None:
                    continue
            paid += 1
        return paid

    def on_balance_changed(self, payload: dict) -> None:
        """``ledger.balance_changed``: pay what waits when money came in; recorded as processed only once done.

        A charge or another movement that takes money can never make a pending order payable:
        it is not looked at (an order's own charge would otherwise cost three transactions more).
        """
        event_id, account_id = payload.get("event_id"), payload.get("account_id")
        if not event_id or not account_id:
            log.warning("balance_changed without event_id or account_id ignored")
            return
        if not money_arrived(payload):
            return
        # Most payments find nothing waiting: one statement, no transaction, and the inbox is not
        # read (nothing is done and nothing recorded, so a redelivery would find nothing again).
        with self.uow.read() as session:
            pending = self.repository.pending_orders(session, account_id)
            if not pending or already_processed(session, BALANCE_CONSUMER, event_id):
                return
        # Paying is idempotent in itself (ledger keys per order), so a redelivery mid-way is harmless.
        self._pay(pending)
        with self.uow.transaction() as session:
            first_delivery(session, BALANCE_CONSUMER, event_id)

    def on_profile_changed(self, event: dict) -> None:
        """Keep the copy of whether the customer may pay (profile's events)."""
        with self.uow.transaction() as session:
            profile_copy.from_event(session, event)


def announce(session, loaded: Loaded) -> None:
    """The "order received" event, with the status the order has now (active or pending_payment)."""
    publish_all(session, [announcement(session, loaded)])


def announcement(session, loaded: Loaded) -> dict:
    """:func:`announce`'s event as an outbox row, for a caller that writes it with others."""
    return outbox_row(session, "order_created", {
        **about(loaded), "period_months": loaded.state.period_months,
        "cost": loaded.state.cost.to_wire(), "status": loaded.state.status.value})
