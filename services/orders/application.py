"""The orders service's use cases: read, ask the ledger, then write; never a transaction across an RPC.

Money-moving operations (activate, renew, change plan, cancel) first take a short lease on
the order (``orders.busy_until``) in one transaction, so that a second operation on the same
order, a concurrent renewal or a cancel racing a plan change, is refused cleanly with 409
``conflict`` instead of working on stale state; then they call the ledger with an
idempotency key derived from the order (``order:<id>:renew:<n>``) so that a retried call
never moves money twice; then they write the result and drop the lease in a second
transaction. The lifecycle timer leaves leased orders alone.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import structlog
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from services.common.clock import as_utc, iso
from services.common.config import env_float, env_int
from services.common.database import try_lock
from services.common.errors import DomainError, NotFound, ValidationError
from services.common.money import Money
from services.common.outbox import first_delivery, publish_later
from services.common.schemas import load
from services.orders import domain
from services.orders.catalogue import Catalogue, Plan
from services.orders.domain import ENDED, LifecycleSettings, OrderState, PaidPeriod, Status
from services.orders.models import (Base, CataloguePlan, IdempotencyKey, IpAssignment, Order, OrderCharge,
                                    OrderEvent, OrderPeriod, RenewalReminder)
from services.orders.schemas import CancelSchema, ChangePlanSchema, NewOrderSchema, RenewSchema

log = structlog.get_logger(__name__)

# Long enough for the ledger calls of one operation (each waits at most RPC_TIMEOUT).
LEASE = timedelta(seconds=60)
# A request with an Idempotency-Key whose worker died is taken over after this long.
ABANDONED_REQUEST = timedelta(seconds=60)
BALANCE_CONSUMER = "orders.balance_changed"
ORDER_IDS = uuid.UUID("5d0c6f4e-8b1f-4a57-9a51-6f7f3c1b2a90")  # uuid5 namespace of keyed new orders


def lifecycle_settings() -> LifecycleSettings:
    """The lifecycle's day counts, configurable for a deployment (defaults: SPEC O7 and issue 4)."""
    return LifecycleSettings(grace_days=env_int("ORDERS_GRACE_DAYS", 3),
                             close_after_days=env_int("ORDERS_CLOSE_AFTER_DAYS", 14),
                             pending_payment_days=env_int("ORDERS_PENDING_PAYMENT_DAYS", 7))


def tick_seconds() -> float:
    return env_float("ORDERS_TICK_SECONDS", 60.0)


def _conflict_busy() -> DomainError:
    return DomainError("conflict", "Another change to this order is in progress; try again in a moment.")


def _money(minor: int, currency: str) -> Money:
    return Money(int(minor), currency)


@dataclass
class Loaded:
    """An order row and the rules' view of it."""

    row: Order
    state: OrderState


class Orders:
    def __init__(self, uow, catalogue: Catalogue, ledger, profile, clock,
                 settings: LifecycleSettings | None = None):
        self.uow = uow
        self.catalogue = catalogue
        self.ledger = ledger
        self.profile = profile
        self.clock = clock
        self.settings = settings or lifecycle_settings()

    # ------------------------------------------------------------------ catalogue
    def list_plans(self, kind: str | None = None) -> dict:
        return {"items": [plan.to_wire() for plan in self.catalogue.list_plans(kind)], "next_cursor": None}

    def sync_plans(self) -> None:
        """Copy the catalogue's plans into the database (at start), so SQL alone can read orders."""
        with self.uow.transaction() as session:
            for plan in self.catalogue.plans:
                session.merge(CataloguePlan(id=plan.id, kind=plan.kind, name=plan.name,
                                            monthly_price_minor=plan.monthly_price.minor,
                                            currency=plan.monthly_price.currency,
                                            catalogue_version=self.catalogue.version))

    # ------------------------------------------------------------------ reading
    def get_order(self, order_id, account_id: str | None = None) -> dict:
        with self.uow.transaction() as session:
            loaded = self._load(session, order_id, account_id)
            events = session.scalars(select(OrderEvent).where(OrderEvent.order_id == loaded.row.id)
                                     .order_by(OrderEvent.id)).all()
            view = self._view(loaded)
            view["events"] = [{"at": iso(as_utc(e.at)), "kind": e.kind, "details": e.details} for e in events]
            if account_id is None:
                view["account_id"] = loaded.row.account_id
            return view

    def list_orders(self, account_id: str, status: str | None = None, limit: int = 50,
                    cursor: str | None = None, active_only: bool = False) -> dict:
        """The account's orders, newest first, in pages; ``active_only``: all but cancelled and closed."""
        if status is not None and status not in {s.value for s in Status}:
            raise ValidationError({"status": ["must be one of " + ", ".join(s.value for s in Status)]})
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise ValidationError({"limit": ["must be 1 to 100"]})
        with self.uow.transaction() as session:
            query = select(Order).where(Order.account_id == account_id)
            if status is not None:
                query = query.where(Order.status == status)
            if active_only:
                query = query.where(Order.status.not_in([s.value for s in ENDED]))
            if cursor:
                created_at, order_id = _read_cursor(cursor)
                query = query.where(or_(Order.created_at < created_at,
                                        (Order.created_at == created_at) & (Order.id < order_id)))
            rows = session.scalars(query.order_by(Order.created_at.desc(), Order.id.desc()).limit(limit + 1)).all()
            page = rows[:limit]
            items = [self._view(self._loaded(session, row)) for row in page]
        next_cursor = _cursor(page[-1]) if len(rows) > limit else None
        return {"items": items, "next_cursor": next_cursor}

    # ------------------------------------------------------------------ new order (O3)
    def place_order(self, account_id: str, body, idempotency_key: str | None = None) -> dict:
        data = load(NewOrderSchema(), body)
        return self._once(account_id, "place_order", idempotency_key, data,
                          lambda: self._place(account_id, data, idempotency_key))

    def _place(self, account_id: str, data: dict, idempotency_key: str | None) -> dict:
        plan = self.catalogue.plan(data["plan_id"])
        today = self.clock.today()
        state = domain.new_order(plan, data["period_months"], data["fields"], today, data["auto_renew"])
        self._check_payments_allowed(account_id)
        # With a key, a retry after a failure half-way finds the same order instead of making another.
        order_id = (str(uuid.uuid5(ORDER_IDS, f"{account_id}:{idempotency_key}")) if idempotency_key
                    else str(uuid.uuid4()))
        with self.uow.transaction() as session:
            exists = session.scalar(select(Order.status).where(Order.id == order_id))
        if exists is not None:
            if exists == Status.PENDING_PAYMENT.value:
                self._activate(order_id)
            with self.uow.transaction() as session:
                return self._view(self._load(session, order_id, account_id))
        for attempt in range(5):
            try:
                with self.uow.transaction() as session:
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
                    self._event(session, order_id, "created", {
                        "plan_id": plan.id, "period_months": state.period_months, "cost": state.cost.to_wire()})
                break
            except IntegrityError:
                if attempt == 4:
                    raise DomainError("out_of_stock", "No IP address could be reserved; try again.")
        self._activate(order_id, lease_held=True)
        with self.uow.transaction() as session:
            loaded = self._load(session, order_id)
            publish_later(session, "order_created", {
                **self._about(loaded), "period_months": loaded.state.period_months,
                "cost": loaded.state.cost.to_wire(), "status": loaded.state.status.value})
            return self._view(loaded)

    def _check_payments_allowed(self, account_id: str) -> None:
        profile = self.profile.get(account_id)
        if profile.get("payments_blocked"):
            raise DomainError("payments_blocked",
                              "Payments are blocked until Introserv has verified the company's data.")
        if not profile.get("postal_address"):
            raise DomainError("postal_address_required",
                              "Add a postal address to the profile before ordering.",
                              fields={"postal_address": ["required"]})

    def _placement(self, session, plan: Plan, fields) -> domain.Placement:
        used = session.scalars(select(IpAssignment.ip_address)).all()
        in_use = dict(session.execute(
            select(Order.datacenter, func.count()).where(Order.plan_id == plan.id,
                                                         Order.status.not_in([s.value for s in ENDED]))
            .group_by(Order.datacenter)).all())
        return domain.choose_placement(plan, fields, self.catalogue.ip_pools, used, in_use)

    def _activate(self, order_id: str, lease_held: bool = False) -> bool:
        """Charge a pending order and make it active; False (and still pending) without the funds."""
        if not lease_held:
            self._claim(order_id, None, "activate")
        try:
            with self.uow.transaction() as session:
                loaded = self._load(session, order_id)
            state, row = loaded.state, loaded.row
            if state.status != Status.PENDING_PAYMENT:
                return False
            charged = self._customer_price(row.account_id, state.cost)
            today = self.clock.today()
            paid = domain.activate(state, today, charged)
            period = paid.periods[0]
            try:
                transaction = self.ledger.charge(
                    row.account_id, charged.to_wire(), f"order:{order_id}:activate", order_id,
                    f"{state.plan.name}, {state.period_months} months",
                    [_invoice_line(f"{state.plan.name}, {state.period_months} months", period)])
            except DomainError as error:
                if error.error_code == "insufficient_funds":
                    return False
                raise
            with self.uow.transaction() as session:
                loaded = self._load(session, order_id, lock=True)
                row = loaded.row
                assignment = session.get(IpAssignment, _assigned(session, order_id))
                row.ip_address = assignment.ip_address if assignment else None
                self._save(session, row, paid)
                self._record_charge(session, order_id, transaction, charged, "activate")
                self._event(session, order_id, "paid", {"amount": charged.to_wire(),
                                                        "transaction_id": _transaction_id(transaction),
                                                        "paid_until": paid.paid_until.isoformat()})
                publish_later(session, "order_activated", {
                    **self._about(Loaded(row, paid)), "ip_address": row.ip_address,
                    "paid_until": paid.paid_until.isoformat(), "cost": charged.to_wire()})
                self._release(row)
            return True
        finally:
            self._release_lease(order_id)

    def pay_pending(self, account_id: str) -> int:
        """Pay the account's pending orders from its balance, oldest first; stops at the first it cannot pay."""
        with self.uow.transaction() as session:
            pending = session.scalars(select(Order.id).where(
                Order.account_id == account_id, Order.status == Status.PENDING_PAYMENT.value)
                .order_by(Order.created_at, Order.id)).all()
        paid = 0
        for order_id in pending:
            try:
                if not self._activate(order_id):
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
        processed_messages = Base.metadata.tables["processed_messages"]
        with self.uow.transaction() as session:
            processed = session.execute(select(processed_messages.c.message_id).where(
                processed_messages.c.consumer == BALANCE_CONSUMER,
                processed_messages.c.message_id == event_id)).first()
        if processed:
            return
        # Paying is idempotent in itself (ledger keys per order), so a redelivery mid-way is harmless.
        self.pay_pending(account_id)
        with self.uow.transaction() as session:
            first_delivery(session, BALANCE_CONSUMER, event_id)

    # ------------------------------------------------------------------ renew (O7)
    def renew(self, account_id: str, order_id, body, idempotency_key: str | None = None) -> dict:
        data = load(RenewSchema(), body)
        return self._once(account_id, "renew", idempotency_key, {"order_id": order_id, **data},
                          lambda: self._renew(order_id, data["period_months"], account_id))

    def _renew(self, order_id, months: int, account_id: str | None, automatic: bool = False) -> dict:
        loaded = self._claim(order_id, account_id, "renew")
        try:
            state, row = loaded.state, loaded.row
            domain.check_renewable(state)
            list_price = state.plan.price_for(months)
            charged = self._customer_price(row.account_id, list_price)
            today = self.clock.today()
            renewed = domain.renew(state, today, months, charged)
            number = row.renewals + 1
            period = renewed.periods[-1]
            what = f"{state.plan.name}, renewal for {months} months"
            transaction = self.ledger.charge(row.account_id, charged.to_wire(),
                                             f"order:{row.id}:renew:{number}", row.id, what,
                                             [_invoice_line(what, period)])
            with self.uow.transaction() as session:
                current = self._load(session, row.id, lock=True)
                current.row.renewals = number
                self._save(session, current.row, renewed)
                self._record_charge(session, row.id, transaction, charged, f"renew:{number}")
                self._event(session, row.id, "renewed", {
                    "period_months": months, "amount": charged.to_wire(), "automatic": automatic,
                    "paid_until": renewed.paid_until.isoformat(), "transaction_id": _transaction_id(transaction),
                    "previous_status": state.status.value})
                publish_later(session, "order_renewed", {
                    **self._about(Loaded(current.row, renewed)), "period_months": months,
                    "paid_until": renewed.paid_until.isoformat(), "cost": charged.to_wire()})
                self._release(current.row)
                return self._view(Loaded(current.row, renewed))
        finally:
            self._release_lease(order_id)

    # ------------------------------------------------------------------ change plan (O4)
    def change_plan_quote(self, account_id: str, order_id, plan_id) -> dict:
        with self.uow.transaction() as session:
            loaded = self._load(session, order_id, account_id)
        new_plan = self.catalogue.plan(plan_id)
        return self._plan_change(loaded, new_plan).quote.to_wire()

    def _plan_change(self, loaded: Loaded, new_plan: Plan) -> domain.PlanChange:
        today = self.clock.today()
        # The rules first with list prices: refusals (not_changeable) before any ledger call.
        domain.quote_plan_change(loaded.state, new_plan, today)
        months = sorted({p.months for p in loaded.state.periods if p.ends > today})
        prices = {new_plan.price_for(m): self._customer_price(loaded.row.account_id, new_plan.price_for(m))
                  for m in months}
        return domain.change_plan(loaded.state, new_plan, today, prices.__getitem__)

    def change_plan(self, account_id: str, order_id, body, idempotency_key: str | None = None) -> dict:
        data = load(ChangePlanSchema(), body)
        return self._once(account_id, "change_plan", idempotency_key, {"order_id": order_id, **data},
                          lambda: self._change_plan(account_id, order_id, data["plan_id"]))

    def _change_plan(self, account_id: str, order_id, plan_id: str) -> dict:
        new_plan = self.catalogue.plan(plan_id)
        loaded = self._claim(order_id, account_id, "change_plan")
        try:
            row, old_plan = loaded.row, loaded.state.plan
            change = self._plan_change(loaded, new_plan)
            quote, number = change.quote, row.plan_changes + 1
            key = f"order:{row.id}:change:{number}"
            charge_transaction, credits = None, []
            if quote.charge:
                what = f"Plan change from {old_plan.name} to {new_plan.name}"
                charged_lines = [line for line in quote.lines if line.amount.minor > 0]
                if sum(line.amount.minor for line in charged_lines) != quote.charge.minor:
                    charged_lines = []  # periods that moved both ways: one invoice line for the total
                charge_transaction = self.ledger.charge(
                    row.account_id, quote.charge.to_wire(), key, row.id, what,
                    [{"description": line.description, "gross": line.amount.to_wire(),
                      "period_from": line.first_day.isoformat(), "period_to": line.last_day.isoformat()}
                     for line in charged_lines] or None)
            if quote.credit:
                credits = self._refund(row, quote.credit, key,
                                       f"Plan change from {old_plan.name} to {new_plan.name}: unused days")
            with self.uow.transaction() as session:
                current = self._load(session, row.id, lock=True)
                current.row.plan_id = new_plan.id
                current.row.plan_changes = number
                self._save(session, current.row, change.order)
                if charge_transaction is not None:
                    self._record_charge(session, row.id, charge_transaction, quote.charge, f"change:{number}")
                self._record_refunds(session, credits)
                self._event(session, row.id, "plan_changed", {
                    "from_plan_id": old_plan.id, "to_plan_id": new_plan.id,
                    "charge": quote.charge.to_wire(), "credit": quote.credit.to_wire()})
                if quote.credit:
                    self._event(session, row.id, "refunded", {"amount": quote.credit.to_wire(),
                                                              "reason": "plan_change"})
                publish_later(session, "order_plan_changed", {
                    **self._about(Loaded(current.row, change.order)), "old_plan_name": old_plan.name,
                    "paid_until": _date(change.order.paid_until), "charge": quote.charge.to_wire(),
                    "credit": quote.credit.to_wire(), "cost": change.order.cost.to_wire()})
                self._release(current.row)
                return {"order": self._view(Loaded(current.row, change.order)),
                        "charge": quote.charge.to_wire(), "credit": quote.credit.to_wire()}
        finally:
            self._release_lease(order_id)

    # ------------------------------------------------------------------ cancel (O5, O6)
    def cancel_quote(self, account_id: str, order_id, when: str = domain.CANCEL_NOW) -> dict:
        with self.uow.transaction() as session:
            loaded = self._load(session, order_id, account_id)
        return {"refund": domain.quote_cancellation(loaded.state, self.clock.today(), when).to_wire()}

    def cancel(self, account_id: str, order_id, body, idempotency_key: str | None = None) -> dict:
        data = load(CancelSchema(), body)
        return self._once(account_id, "cancel", idempotency_key, {"order_id": order_id, **data},
                          lambda: self._cancel(account_id, order_id, data["when"], data.get("reason"),
                                               data.get("verification_id")))

    def _cancel(self, account_id: str, order_id, when: str, reason: str | None,
                verification_id: str | None = None) -> dict:
        loaded = self._claim(order_id, account_id, "cancel")
        try:
            row = loaded.row
            cancellation = domain.cancel(loaded.state, self.clock.today(), when)
            # A customer who confirms sensitive operations by call must bring a proof (issue 8).
            self.profile.require_operation_proof(account_id, "cancel_order", verification_id, row.id)
            refunds = []
            if cancellation.refund:
                refunds = self._refund(row, cancellation.refund, f"order:{row.id}:cancel",
                                       f"{loaded.state.plan.name}: refund of unused days")
            cancelled = cancellation.order
            with self.uow.transaction() as session:
                current = self._load(session, row.id, lock=True)
                self._save(session, current.row, cancelled)
                self._record_refunds(session, refunds)
                if cancelled.status == Status.CANCELLED:
                    self._free_ip(session, row.id)
                self._event(session, row.id, "cancelled", {
                    "when": when, "reason": reason, "refund": cancellation.refund.to_wire(),
                    "cancel_at": _date(cancelled.cancel_at)})
                if cancellation.refund:
                    self._event(session, row.id, "refunded", {"amount": cancellation.refund.to_wire(),
                                                              "reason": "cancellation"})
                publish_later(session, "order_cancelled", {
                    **self._about(Loaded(current.row, cancelled)), "when": when,
                    "refund": cancellation.refund.to_wire(), "cancel_at": _date(cancelled.cancel_at)})
                self._release(current.row)
                return {"order": self._view(Loaded(current.row, cancelled)),
                        "refund": cancellation.refund.to_wire()}
        finally:
            self._release_lease(order_id)

    # ------------------------------------------------------------------ the lifecycle clock (O1, O7)
    def tick(self) -> dict:
        """Move orders along their lifecycle, send renewal reminders, then try the due auto-renewals."""
        today, now = self.clock.today(), self.clock.now()
        moved, reminded, auto = 0, 0, []
        with self.uow.transaction() as session:
            if not try_lock(session, "orders.lifecycle"):
                return {"skipped": True}
            rows = session.scalars(select(Order).where(
                Order.status.not_in([s.value for s in ENDED]),
                or_(Order.busy_until.is_(None), Order.busy_until < now)).order_by(Order.created_at)).all()
            for row in rows:
                loaded = self._loaded(session, row)
                due = domain.advance(loaded.state, today, self.settings)
                if due is not None:
                    self._move(session, loaded, due)
                    moved += 1
                    continue
                for days in domain.renewal_reminders_due(loaded.state, today, self._reminders_sent(session, loaded),
                                                         self.settings):
                    session.add(RenewalReminder(order_id=row.id, paid_until=loaded.state.paid_until, days=days))
                    publish_later(session, "renewal_due", {
                        **self._about(loaded), "paid_until": _date(loaded.state.paid_until),
                        "days_left": loaded.state.days_left(today), "cost": loaded.state.cost.to_wire(),
                        "auto_renew": row.auto_renew})
                    reminded += 1
                if domain.auto_renewal_due(loaded.state, today, self.settings) and row.auto_renew_tried_on != today:
                    row.auto_renew_tried_on = today  # once a day: a short balance is not retried every tick
                    auto.append((row.id, row.period_months))
        renewed = 0
        for order_id, months in auto:
            try:
                self._renew(order_id, months, None, automatic=True)
                renewed += 1
            except DomainError as error:
                log.info("automatic renewal not done", order_id=order_id, code=error.error_code)
        return {"moved": moved, "reminded": reminded, "renewed": renewed}

    def _move(self, session, loaded: Loaded, due: Status) -> None:
        row, state = loaded.row, loaded.state
        previous = row.status
        row.status = due.value
        row.updated_at = self.clock.now()
        self._event(session, row.id, due.value if due != Status.CANCELLED else "cancelled",
                    {"from": previous, "by": "lifecycle"})
        about = self._about(Loaded(row, state))
        paid_until = state.paid_until
        if due == Status.OVERDUE:
            publish_later(session, "order_overdue", {
                **about, "paid_until": _date(paid_until), "cost": state.cost.to_wire(),
                "suspend_on": _date(paid_until + timedelta(days=self.settings.grace_days))})
        elif due == Status.SUSPENDED:
            publish_later(session, "order_suspended", {
                **about, "ip_address": row.ip_address, "cost": state.cost.to_wire(),
                "close_on": _date(paid_until + timedelta(days=self.settings.grace_days
                                                         + self.settings.close_after_days))})
        elif due == Status.CLOSED:
            self._free_ip(session, row.id)
            publish_later(session, "order_closed", about)
        elif due == Status.CANCELLED:  # never paid within the pending-payment days
            self._free_ip(session, row.id)
            publish_later(session, "order_cancelled", {
                **about, "when": domain.CANCEL_NOW, "refund": Money.zero(state.currency).to_wire(),
                "cancel_at": None})

    def _reminders_sent(self, session, loaded: Loaded) -> list[int]:
        return session.scalars(select(RenewalReminder.days).where(
            RenewalReminder.order_id == loaded.row.id,
            RenewalReminder.paid_until == loaded.state.paid_until)).all()

    # ------------------------------------------------------------------ money through the ledger
    def _customer_price(self, account_id: str, list_price: Money) -> Money:
        """What this customer pays for a list price (less only under the EU reverse charge)."""
        return Money.from_wire(self.ledger.price(account_id, list_price.to_wire())["gross"], "gross")

    def _refund(self, row: Order, amount: Money, key: str, description: str) -> list[tuple[str, Money, dict]]:
        """Return ``amount`` to the balance against the order's charges; one ledger refund per charge drawn on."""
        with self.uow.transaction() as session:
            charges = session.scalars(select(OrderCharge).where(OrderCharge.order_id == row.id)
                                      .order_by(OrderCharge.at, OrderCharge.transaction_id)).all()
            available = [(c.transaction_id, _money(c.amount_minor - c.refunded_minor, row.currency))
                         for c in charges]
        done = []
        for charge_id, part in domain.allocate_refund(amount, available):
            result = self.ledger.refund(row.account_id, part.to_wire(), f"{key}:{charge_id}", row.id,
                                        charge_id, description)
            done.append((charge_id, part, result))
        return done

    def _record_charge(self, session, order_id: str, transaction: dict, amount: Money, reason: str) -> None:
        session.add(OrderCharge(transaction_id=_transaction_id(transaction), order_id=order_id,
                                amount_minor=amount.minor, refunded_minor=0, reason=reason,
                                at=self.clock.now()))

    def _record_refunds(self, session, refunds) -> None:
        for charge_id, part, _ in refunds:
            session.execute(update(OrderCharge).where(OrderCharge.transaction_id == charge_id)
                            .values(refunded_minor=OrderCharge.refunded_minor + part.minor))

    # ------------------------------------------------------------------ leases and replays
    def _claim(self, order_id, account_id: str | None, operation: str) -> Loaded:
        """Take the order's lease (409 conflict when another operation holds it) and read it."""
        now = self.clock.now()
        with self.uow.transaction() as session:
            loaded = self._load(session, order_id, account_id)
            taken = session.execute(update(Order).where(
                Order.id == loaded.row.id, or_(Order.busy_until.is_(None), Order.busy_until < now))
                .values(busy_until=now + LEASE, busy_with=operation)
                .execution_options(synchronize_session=False)).rowcount
            if taken != 1:
                raise _conflict_busy()
            session.refresh(loaded.row)
            return self._loaded(session, loaded.row)

    def _release(self, row: Order) -> None:
        row.busy_until = None
        row.busy_with = None

    def _release_lease(self, order_id: str) -> None:
        with self.uow.transaction() as session:
            session.execute(update(Order).where(Order.id == order_id, Order.busy_until.is_not(None))
                            .values(busy_until=None, busy_with=None)
                            .execution_options(synchronize_session=False))

    def _once(self, account_id: str, route: str, key: str | None, request: dict, work) -> dict:
        """Run ``work`` once per (account, route, Idempotency-Key); a replay gets the first answer."""
        if key is None:
            return work()
        if not isinstance(key, str) or not 1 <= len(key) <= 200:
            raise ValidationError({"Idempotency-Key": ["must be 1 to 200 characters"]})
        digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
        now = self.clock.now()
        scope = (IdempotencyKey.account_id == account_id, IdempotencyKey.route == route, IdempotencyKey.key == key)
        try:
            with self.uow.transaction() as session:
                row = session.scalar(select(IdempotencyKey).where(*scope).with_for_update())
                if row is None:
                    session.add(IdempotencyKey(account_id=account_id, route=route, key=key,
                                               request_hash=digest, response=None, created_at=now))
                else:
                    if row.request_hash != digest:
                        raise DomainError("idempotency_conflict",
                                          "This Idempotency-Key was used with a different request.")
                    if row.response is not None:
                        return json.loads(row.response)
                    if as_utc(row.created_at) > now - ABANDONED_REQUEST:
                        raise DomainError("conflict", "A request with this Idempotency-Key is still being processed.")
                    row.created_at = now  # its worker died: this one takes over (ledger keys keep money safe)
        except IntegrityError:
            raise DomainError("conflict", "A request with this Idempotency-Key is still being processed.") from None
        try:
            result = work()
        except BaseException:
            # Nothing was answered, so nothing is kept: a retry runs again (ledger keys stop double money).
            with self.uow.transaction() as session:
                session.execute(delete(IdempotencyKey).where(*scope, IdempotencyKey.response.is_(None)))
            raise
        with self.uow.transaction() as session:
            session.execute(update(IdempotencyKey).where(*scope).values(response=json.dumps(result)))
        return result

    # ------------------------------------------------------------------ rows <-> rules
    def _load(self, session, order_id, account_id: str | None = None, lock: bool = False) -> Loaded:
        if not isinstance(order_id, str) or len(order_id) > 36:
            raise NotFound("order")
        query = select(Order).where(Order.id == order_id)
        if account_id is not None:
            query = query.where(Order.account_id == account_id)  # another customer's order is not_found
        if lock:
            query = query.with_for_update()
        row = session.scalar(query)
        if row is None:
            raise NotFound("order")
        return self._loaded(session, row)

    def _loaded(self, session, row: Order) -> Loaded:
        periods = session.scalars(select(OrderPeriod).where(OrderPeriod.order_id == row.id)
                                  .order_by(OrderPeriod.starts)).all()
        state = OrderState(
            plan=self.catalogue.plan(row.plan_id), period_months=row.period_months,
            created_on=as_utc(row.created_at).date(), status=Status(row.status),
            periods=tuple(PaidPeriod(p.starts, p.ends, p.months, _money(p.paid_minor, row.currency),
                                     _money(p.price_minor, row.currency)) for p in periods),
            cancel_at=row.cancel_at, auto_renew=row.auto_renew, fields=row.fields or {})
        return Loaded(row, state)

    def _save(self, session, row: Order, state: OrderState) -> None:
        row.status = state.status.value
        row.period_months = state.period_months
        row.cancel_at = state.cancel_at
        row.plan_id = state.plan.id
        row.updated_at = self.clock.now()
        session.execute(delete(OrderPeriod).where(OrderPeriod.order_id == row.id))
        for period in state.periods:
            session.add(OrderPeriod(order_id=row.id, starts=period.starts, ends=period.ends, months=period.months,
                                    paid_minor=period.paid.minor, price_minor=period.price.minor))

    def _free_ip(self, session, order_id: str) -> None:
        session.execute(delete(IpAssignment).where(IpAssignment.order_id == order_id))

    def _event(self, session, order_id: str, kind: str, details: dict) -> None:
        session.add(OrderEvent(order_id=order_id, at=self.clock.now(), kind=kind, details=details))

    def _about(self, loaded: Loaded) -> dict:
        return {"account_id": loaded.row.account_id, "order_id": loaded.row.id,
                "plan_name": loaded.state.plan.name}

    def _view(self, loaded: Loaded) -> dict:
        """API.md's Order shape; days_left and actions are computed from the clock and the status."""
        row, state = loaded.row, loaded.state
        today = self.clock.today()
        shown_ip = None if state.status == Status.PENDING_PAYMENT else row.ip_address
        return {
            "id": row.id, "plan": state.plan.summary_to_wire(), "period_months": state.period_months,
            "ip_address": shown_ip, "paid_until": _date(state.paid_until), "days_left": state.days_left(today),
            "status": state.status.value, "cost": state.cost.to_wire(), "auto_renew": state.auto_renew,
            "cancel_at": _date(state.cancel_at), "fields": dict(state.fields), "actions": domain.actions(state),
            "created_at": iso(as_utc(row.created_at)),
        }


# ---------------------------------------------------------------------- small translations

def _assigned(session, order_id: str) -> str | None:
    return session.scalar(select(IpAssignment.ip_address).where(IpAssignment.order_id == order_id))


def _transaction_id(transaction: dict) -> str:
    return str(transaction.get("id") or transaction.get("transaction_id"))


def _invoice_line(description: str, period: PaidPeriod) -> dict:
    return {"description": description, "gross": period.paid.to_wire(),
            "period_from": period.starts.isoformat(), "period_to": (period.ends - timedelta(days=1)).isoformat()}


def _date(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _cursor(row: Order) -> str:
    raw = json.dumps([iso(as_utc(row.created_at)), row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, order_id = json.loads(raw)
        moment = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
        if not isinstance(order_id, str):
            raise ValueError
        return moment, order_id
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise ValidationError({"cursor": ["is not a cursor from this list"]}) from None
