"""The orders service's use cases: read, ask the ledger, then write; never a transaction across an RPC.

Money-moving operations (activate, renew, change plan, cancel) first take a short lease on
the order (``orders.busy_until``) in one transaction, so that a second operation on the same
order, a concurrent renewal or a cancel racing a plan change, is refused cleanly with 409
``conflict`` instead of working on stale state; then they call the ledger with an
idempotency key derived from the order (``order:<id>:renew:<n>``) so that a retried call
never moves money twice; then they write the result and drop the lease in a second
transaction. The lifecycle timer leaves leased orders alone.

Before its first ledger call an operation writes what it is about to ask the ledger
(``orders.pending_operation``: the exact arguments, keys included, and what the order becomes).
A worker that dies between the ledger and the order's write, or a ledger that does not answer,
leaves that behind; the lifecycle timer finds it once the lease has expired and carries the
same calls out again: the ledger answers a key it has seen with its first result, so the
operation is completed with the money that was taken, or charged now, or undone when the
ledger refuses (insufficient funds). Nothing is taken twice and no charge is left without
its order.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta

import structlog
from sqlalchemy import delete, func, or_, select, update

from services.common.clock import as_utc, iso
from services.common.config import env_float, env_int
from services.common.errors import DomainError, NotFound, ValidationError
from services.common.idempotency import IdempotencyKeys, KeyedRequest
from services.common.locks import lock, try_lock
from services.common.money import Money
from services.common.outbox import already_processed, first_delivery, publish_later
from services.common.pagination import keyset_page
from services.common.schemas import load
from services.orders import domain
from services.orders.catalogue import Catalogue, Plan
from services.orders.domain import ENDED, LifecycleSettings, OrderState, PaidPeriod, Status
from services.orders.models import (CataloguePlan, IpAssignment, Order, OrderCharge, OrderEvent, OrderPeriod,
                                    RenewalReminder)
from services.orders.schemas import CancelSchema, ChangePlanSchema, NewOrderSchema, RenewSchema

log = structlog.get_logger(__name__)

# Long enough for the ledger calls of one operation (each waits at most RPC_TIMEOUT).
LEASE = timedelta(seconds=env_float("ORDERS_LEASE_SECONDS", 60.0))
# A request with an Idempotency-Key whose worker died is taken over after this long.
ABANDONED_REQUEST = LEASE
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
        self.keys = IdempotencyKeys(uow, clock, abandoned_after=ABANDONED_REQUEST)

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
        query = select(Order).where(Order.account_id == account_id)
        if status is not None:
            query = query.where(Order.status == status)
        if active_only:
            query = query.where(Order.status.not_in([s.value for s in ENDED]))
        with self.uow.read() as session:   # READ COMMITTED: a transaction would give no common snapshot either
            page = keyset_page(session, query, [Order.created_at, Order.id], limit, cursor)
            return page.answer(lambda row: self._view(self._loaded(session, row)))

    # ------------------------------------------------------------------ new order (O3)
    def place_order(self, account_id: str, body, idempotency_key: str | None = None) -> dict:
        data = load(NewOrderSchema(), body)
        keyed = _keyed(account_id, "place_order", idempotency_key, data)
        return self.keys.once(keyed, lambda: self._place(account_id, data, idempotency_key, keyed))

    def _place(self, account_id: str, data: dict, idempotency_key: str | None,
               keyed: KeyedRequest | None = None) -> dict:
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
            self._event(session, order_id, "created", {
                "plan_id": plan.id, "period_months": state.period_months, "cost": state.cost.to_wire()})
        paid = self._activate(order_id, lease_held=True, keyed=keyed, announce=True)
        with self.uow.transaction() as session:
            loaded = self._load(session, order_id)
            if not paid:  # a paid order was announced with its activation, in the same transaction
                self._announce(session, loaded)
            return self._view(loaded)

    def _announce(self, session, loaded: Loaded) -> None:
        """The "order received" event, with the status the order has now (active or pending_payment)."""
        publish_later(session, "order_created", {
            **self._about(loaded), "period_months": loaded.state.period_months,
            "cost": loaded.state.cost.to_wire(), "status": loaded.state.status.value})

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

    def _activate(self, order_id: str, lease_held: bool = False, keyed: KeyedRequest | None = None,
                  announce: bool = False) -> bool:
        """Charge a pending order and make it active; False (and still pending) without the funds.

        ``announce``: a new order, whose "order received" event goes out with its activation,
        also when the lifecycle timer finishes an activation whose worker died.
        """
        if not lease_held and self._claim(order_id, None, "activate", only_while=Status.PENDING_PAYMENT) is None:
            return False  # paid or cancelled meanwhile: nothing to do, and no lease taken from anyone
        try:
            with self.uow.transaction() as session:
                loaded = self._load(session, order_id)
            state, row = loaded.state, loaded.row
            if state.status != Status.PENDING_PAYMENT:
                return False
            charged = self._customer_price(row.account_id, state.cost)
            today = self.clock.today()
            period = domain.activate(state, today, charged).periods[0]
            what = f"{state.plan.name}, {state.period_months} months"
            try:
                self._carry_out(order_id, {
                    "kind": "activate", "today": today.isoformat(), "charged": charged.to_wire(),
                    "reply_to": _reply_to(keyed), "announce": announce,
                    "charge": {"amount": charged.to_wire(), "key": f"order:{order_id}:activate",
                               "description": what, "lines": [_invoice_line(what, period)]}})
            except DomainError as error:
                if error.error_code == "insufficient_funds":
                    return False
                raise
            return True
        finally:
            self._release_lease(order_id)

    def _finish_activation(self, order_id: str, operation: dict) -> dict:
        row = self._account_of(order_id)
        transaction = self._charge(row, operation["charge"])
        charged = Money.from_wire(operation["charged"])
        with self.uow.transaction() as session:
            loaded = self._load(session, order_id, lock=True)
            row = loaded.row
            paid = domain.activate(loaded.state, date.fromisoformat(operation["today"]), charged)
            assignment = session.get(IpAssignment, _assigned(session, order_id))
            row.ip_address = assignment.ip_address if assignment else None
            self._save(session, row, paid)
            self._record_charge(session, order_id, transaction, charged, "activate")
            self._event(session, order_id, "paid", {"amount": charged.to_wire(),
                                                    "transaction_id": _transaction_id(transaction),
                                                    "paid_until": paid.paid_until.isoformat()})
            if operation.get("announce"):
                self._announce(session, Loaded(row, paid))
            publish_later(session, "order_activated", {
                **self._about(Loaded(row, paid)), "ip_address": row.ip_address,
                "paid_until": paid.paid_until.isoformat(), "cost": charged.to_wire()})
            return self._done(session, row, operation, self._view(Loaded(row, paid)))

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
        with self.uow.transaction() as session:
            if already_processed(session, BALANCE_CONSUMER, event_id):
                return
        # Paying is idempotent in itself (ledger keys per order), so a redelivery mid-way is harmless.
        self.pay_pending(account_id)
        with self.uow.transaction() as session:
            first_delivery(session, BALANCE_CONSUMER, event_id)

    # ------------------------------------------------------------------ renew (O7)
    def renew(self, account_id: str, order_id, body, idempotency_key: str | None = None) -> dict:
        data = load(RenewSchema(), body)
        keyed = _keyed(account_id, "renew", idempotency_key, {"order_id": order_id, **data})
        return self.keys.once(keyed, lambda: self._renew(order_id, data["period_months"], account_id, keyed=keyed))

    def _renew(self, order_id, months: int, account_id: str | None, automatic: bool = False,
               keyed: KeyedRequest | None = None) -> dict:
        loaded = self._claim(order_id, account_id, "renew")
        try:
            state, row = loaded.state, loaded.row
            domain.check_renewable(state)
            list_price = state.plan.price_for(months)
            charged = self._customer_price(row.account_id, list_price)
            today = self.clock.today()
            period = domain.renew(state, today, months, charged).periods[-1]
            number = row.renewals + 1
            what = f"{state.plan.name}, renewal for {months} months"
            return self._carry_out(row.id, {
                "kind": "renew", "today": today.isoformat(), "months": months, "number": number,
                "charged": charged.to_wire(), "automatic": automatic, "reply_to": _reply_to(keyed),
                "charge": {"amount": charged.to_wire(), "key": f"order:{row.id}:renew:{number}",
                           "description": what, "lines": [_invoice_line(what, period)]}})
        finally:
            self._release_lease(order_id)

    def _finish_renewal(self, order_id: str, operation: dict) -> dict:
        row = self._account_of(order_id)
        transaction = self._charge(row, operation["charge"])
        charged, months, number = Money.from_wire(operation["charged"]), operation["months"], operation["number"]
        with self.uow.transaction() as session:
            current = self._load(session, order_id, lock=True)
            state = current.state
            renewed = domain.renew(state, date.fromisoformat(operation["today"]), months, charged)
            current.row.renewals = number
            self._save(session, current.row, renewed)
            self._record_charge(session, order_id, transaction, charged, f"renew:{number}")
            self._event(session, order_id, "renewed", {
                "period_months": months, "amount": charged.to_wire(), "automatic": operation["automatic"],
                "paid_until": renewed.paid_until.isoformat(), "transaction_id": _transaction_id(transaction),
                "previous_status": state.status.value})
            publish_later(session, "order_renewed", {
                **self._about(Loaded(current.row, renewed)), "period_months": months,
                "paid_until": renewed.paid_until.isoformat(), "cost": charged.to_wire()})
            return self._done(session, current.row, operation, self._view(Loaded(current.row, renewed)))

    # ------------------------------------------------------------------ change plan (O4)
    def change_plan_quote(self, account_id: str, order_id, plan_id) -> dict:
        with self.uow.transaction() as session:
            loaded = self._load(session, order_id, account_id)
        new_plan = self.catalogue.plan(plan_id)
        return self._plan_change(loaded, new_plan).quote.to_wire()

    def _plan_change(self, loaded: Loaded, new_plan: Plan) -> domain.PlanChange:
        return domain.change_plan(loaded.state, new_plan, self.clock.today(),
                                  self._plan_prices(loaded, new_plan).__getitem__)

    def _plan_prices(self, loaded: Loaded, new_plan: Plan) -> dict[Money, Money]:
        """What this customer pays for the new plan's list prices over the order's unused periods."""
        today = self.clock.today()
        # The rules first with list prices: refusals (not_changeable) before any ledger call.
        domain.quote_plan_change(loaded.state, new_plan, today)
        months = sorted({p.months for p in loaded.state.periods if p.ends > today})
        return {new_plan.price_for(m): self._customer_price(loaded.row.account_id, new_plan.price_for(m))
                for m in months}

    def change_plan(self, account_id: str, order_id, body, idempotency_key: str | None = None) -> dict:
        data = load(ChangePlanSchema(), body)
        keyed = _keyed(account_id, "change_plan", idempotency_key, {"order_id": order_id, **data})
        return self.keys.once(keyed, lambda: self._change_plan(account_id, order_id, data["plan_id"], keyed))

    def _change_plan(self, account_id: str, order_id, plan_id: str, keyed: KeyedRequest | None = None) -> dict:
        new_plan = self.catalogue.plan(plan_id)
        loaded = self._claim(order_id, account_id, "change_plan")
        try:
            prices = self._plan_prices(loaded, new_plan)
            today = self.clock.today()
            change = domain.change_plan(loaded.state, new_plan, today, prices.__getitem__)
            quote, old_plan = change.quote, loaded.state.plan
            operation = {"kind": "change_plan", "today": today.isoformat(), "plan_id": new_plan.id,
                         "number": loaded.row.plan_changes + 1, "reply_to": _reply_to(keyed),
                         "prices": [[list_price.to_wire(), paid.to_wire()] for list_price, paid in prices.items()],
                         "charge": None}
            if quote.charge:
                charged_lines = [line for line in quote.lines if line.amount.minor > 0]
                if sum(line.amount.minor for line in charged_lines) != quote.charge.minor:
                    charged_lines = []  # periods that moved both ways: one invoice line for the total
                operation["charge"] = {
                    "amount": quote.charge.to_wire(), "key": f"order:{order_id}:change:{operation['number']}",
                    "description": f"Plan change from {old_plan.name} to {new_plan.name}",
                    "lines": [{"description": line.description, "gross": line.amount.to_wire(),
                               "period_from": line.first_day.isoformat(), "period_to": line.last_day.isoformat()}
                              for line in charged_lines] or None}
            return self._carry_out(order_id, operation)
        finally:
            self._release_lease(order_id)

    def _finish_plan_change(self, order_id: str, operation: dict) -> dict:
        row = self._account_of(order_id)
        with self.uow.transaction() as session:
            loaded = self._load(session, order_id)
        new_plan, old_plan = self.catalogue.plan(operation["plan_id"]), loaded.state.plan
        prices = {Money.from_wire(list_price): Money.from_wire(paid) for list_price, paid in operation["prices"]}
        change = domain.change_plan(loaded.state, new_plan, date.fromisoformat(operation["today"]),
                                    prices.__getitem__)
        quote, number = change.quote, operation["number"]
        charge_transaction = self._charge(row, operation["charge"]) if operation["charge"] else None
        credits = []
        if quote.credit:
            credits = self._refund(row, quote.credit, f"order:{order_id}:change:{number}",
                                   f"Plan change from {old_plan.name} to {new_plan.name}: unused days")
        with self.uow.transaction() as session:
            current = self._load(session, order_id, lock=True)
            current.row.plan_id = new_plan.id
            current.row.plan_changes = number
            self._save(session, current.row, change.order)
            if charge_transaction is not None:
                self._record_charge(session, order_id, charge_transaction, quote.charge, f"change:{number}")
            self._record_refunds(session, credits)
            self._event(session, order_id, "plan_changed", {
                "from_plan_id": old_plan.id, "to_plan_id": new_plan.id,
                "charge": quote.charge.to_wire(), "credit": quote.credit.to_wire()})
            if quote.credit:
                self._event(session, order_id, "refunded", {"amount": quote.credit.to_wire(),
                                                            "reason": "plan_change"})
            publish_later(session, "order_plan_changed", {
                **self._about(Loaded(current.row, change.order)), "old_plan_name": old_plan.name,
                "paid_until": _date(change.order.paid_until), "charge": quote.charge.to_wire(),
                "credit": quote.credit.to_wire(), "cost": change.order.cost.to_wire()})
            return self._done(session, current.row, operation, {
                "order": self._view(Loaded(current.row, change.order)),
                "charge": quote.charge.to_wire(), "credit": quote.credit.to_wire()})

    # ------------------------------------------------------------------ cancel (O5, O6)
    def cancel_quote(self, account_id: str, order_id, when: str = domain.CANCEL_NOW) -> dict:
        with self.uow.transaction() as session:
            loaded = self._load(session, order_id, account_id)
        return {"refund": domain.quote_cancellation(loaded.state, self.clock.today(), when).to_wire()}

    def cancel(self, account_id: str, order_id, body, idempotency_key: str | None = None) -> dict:
        data = load(CancelSchema(), body)
        keyed = _keyed(account_id, "cancel", idempotency_key, {"order_id": order_id, **data})
        return self.keys.once(keyed, lambda: self._cancel(account_id, order_id, data["when"], data.get("reason"),
                                                          data.get("verification_id"), keyed))

    def _cancel(self, account_id: str, order_id, when: str, reason: str | None,
                verification_id: str | None = None, keyed: KeyedRequest | None = None) -> dict:
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
                answer = {"order": self._view(Loaded(current.row, cancelled)),
                          "refund": cancellation.refund.to_wire()}
                if keyed is not None:
                    self.keys.remember(session, keyed, answer)
                return answer
        finally:
            self._release_lease(order_id)

    # ------------------------------------------------------------------ the lifecycle clock (O1, O7)
    def tick(self) -> dict:
        """Move orders along their lifecycle, send renewal reminders, then try the due auto-renewals."""
        finished = self.finish_interrupted()
        today, now = self.clock.today(), self.clock.now()
        moved, reminded, auto = 0, 0, []
        with self.uow.transaction() as session:
            if not try_lock(session, "orders.lifecycle"):
                return {"skipped": True, "finished": finished}
            rows = session.scalars(select(Order).where(
                Order.status.not_in([s.value for s in ENDED]), Order.pending_operation.is_(None),
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
        return {"moved": moved, "reminded": reminded, "renewed": renewed, "finished": finished}

    def finish_interrupted(self) -> int:
        """Complete or undo the money-moving operations whose lease expired before they were written."""
        now = self.clock.now()
        with self.uow.transaction() as session:
            stuck = session.scalars(select(Order.id).where(Order.pending_operation.is_not(None),
                                                           Order.busy_until < now)).all()
        finished = 0
        for order_id in stuck:
            with self.uow.transaction() as session:
                taken = session.execute(update(Order).where(
                    Order.id == order_id, Order.pending_operation.is_not(None), Order.busy_until < now)
                    .values(busy_until=now + LEASE, busy_with="finish_interrupted")
                    .execution_options(synchronize_session=False)).rowcount
                operation = session.scalar(select(Order.pending_operation).where(Order.id == order_id))
            if taken != 1 or operation is None:
                continue  # another replica took it
            log.warning("finishing an interrupted operation", order_id=order_id, kind=operation["kind"])
            try:
                self._carry_out(order_id, operation)
                finished += 1
            except DomainError as error:
                log.warning("interrupted operation not finished", order_id=order_id, code=error.error_code)
            finally:
                self._release_lease(order_id)
        return finished

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

    def _carry_out(self, order_id: str, operation: dict) -> dict:
        """Write ``operation`` on the order, then do it; keep it for the timer when the outcome is unknown."""
        with self.uow.transaction() as session:
            session.execute(update(Order).where(Order.id == order_id).values(pending_operation=operation)
                            .execution_options(synchronize_session=False))
        finish = {"activate": self._finish_activation, "renew": self._finish_renewal,
                  "change_plan": self._finish_plan_change}[operation["kind"]]
        try:
            return finish(order_id, operation)
        except DomainError as error:
            if error.error_code != "service_unavailable":
                self._forget_operation(order_id)  # the ledger refused: nothing moved, nothing to finish
                raise
            self._expire_lease(order_id)
            raise
        except Exception:
            self._expire_lease(order_id)
            raise

    def _charge(self, row: Order, charge: dict) -> dict:
        return self.ledger.charge(row.account_id, charge["amount"], charge["key"], row.id,
                                  charge["description"], charge["lines"])

    def _account_of(self, order_id: str) -> Order:
        with self.uow.transaction() as session:
            return session.get(Order, order_id)

    def _done(self, session, row: Order, operation: dict, answer: dict) -> dict:
        """The operation is written: drop it and the lease; keep the answer for its Idempotency-Key."""
        row.pending_operation = None
        self._release(row)
        keyed = KeyedRequest.from_wire(operation.get("reply_to"))
        if keyed is not None:  # also when the request's worker died: a retry gets this answer
            self.keys.remember(session, keyed, answer)
        return answer

    def _forget_operation(self, order_id: str) -> None:
        with self.uow.transaction() as session:
            session.execute(update(Order).where(Order.id == order_id).values(pending_operation=None)
                            .execution_options(synchronize_session=False))

    def _expire_lease(self, order_id: str) -> None:
        """The outcome is unknown (the ledger or the database did not answer): the next tick finishes it."""
        try:
            with self.uow.transaction() as session:
                session.execute(update(Order).where(Order.id == order_id, Order.pending_operation.is_not(None))
                                .values(busy_until=self.clock.now())
                                .execution_options(synchronize_session=False))
        except DomainError:
            log.warning("lease left to expire", order_id=order_id)

    def _record_charge(self, session, order_id: str, transaction: dict, amount: Money, reason: str) -> None:
        session.add(OrderCharge(transaction_id=_transaction_id(transaction), order_id=order_id,
                                amount_minor=amount.minor, refunded_minor=0, reason=reason,
                                at=self.clock.now()))

    def _record_refunds(self, session, refunds) -> None:
        for charge_id, part, _ in refunds:
            session.execute(update(OrderCharge).where(OrderCharge.transaction_id == charge_id)
                            .values(refunded_minor=OrderCharge.refunded_minor + part.minor))

    # ------------------------------------------------------------------ leases and replays
    def _claim(self, order_id, account_id: str | None, operation: str,
               only_while: Status | None = None) -> Loaded | None:
        """Take the order's lease (409 conflict when another operation holds it) and read it.

        ``only_while``: None, and no lease, when the order has another status. A background
        payment that found the order pending must not hold the lease of an order a customer
        has just been told is active (their next step would meet a 409).
        """
        now = self.clock.now()
        with self.uow.transaction() as session:
            loaded = self._load(session, order_id, account_id)
            if only_while is not None and loaded.row.status != only_while.value:
                return None
            free = [Order.id == loaded.row.id, Order.pending_operation.is_(None),
                    or_(Order.busy_until.is_(None), Order.busy_until < now)]
            if only_while is not None:
                free.append(Order.status == only_while.value)
            taken = session.execute(update(Order).where(*free)
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
            # An operation still written on the order keeps its lease: the timer finishes it.
            session.execute(update(Order).where(Order.id == order_id, Order.busy_until.is_not(None),
                                                Order.pending_operation.is_(None))
                            .values(busy_until=None, busy_with=None)
                            .execution_options(synchronize_session=False))

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
                                     _money(p.price_minor, row.currency), _money(p.charged_minor, row.currency),
                                     _money(p.adjustment_minor, row.currency), p.adjusted_from)
                          for p in periods),
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
                                    paid_minor=period.paid.minor, price_minor=period.price.minor,
                                    charged_minor=period.charged.minor, adjustment_minor=period.adjustment.minor,
                                    adjusted_from=period.adjusted_from))

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

def _keyed(account_id: str, route: str, key, request: dict) -> KeyedRequest | None:
    """A request with an Idempotency-Key, bound to it; None without one."""
    return None if key is None else KeyedRequest.of(account_id, route, key, request)


def _reply_to(keyed: KeyedRequest | None) -> dict | None:
    """Where the answer to a keyed request is kept, written with the operation for whoever finishes it."""
    return keyed.to_wire() if keyed is not None else None


def _assigned(session, order_id: str) -> str | None:
    return session.scalar(select(IpAssignment.ip_address).where(IpAssignment.order_id == order_id))


def _transaction_id(transaction: dict) -> str:
    return str(transaction.get("id") or transaction.get("transaction_id"))


def _invoice_line(description: str, period: PaidPeriod) -> dict:
    return {"description": description, "gross": period.paid.to_wire(),
            "period_from": period.starts.isoformat(), "period_to": (period.ends - timedelta(days=1)).isoformat()}


def _date(value: date | None) -> str | None:
    return value.isoformat() if value else None

