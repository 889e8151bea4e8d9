"""The lifecycle clock (O1, O7): overdue, suspended, closed; renewal reminders; automatic renewals.

It works through the live orders it may act on today (:meth:`LifecycleClock.needs_the_clock`)
in batches of ``ORDERS_CLOCK_BATCH`` (500), one short transaction each, account by account. The
due automatic renewals are made in calls of whole accounts, sent once they hold
``ORDERS_RENEWALS_PER_CALL`` (100) renewals (``Renewal.renew_many``: one transaction to write them,
one ``ledger.charge_orders``, one transaction to finish them), and ``ORDERS_RENEWALS_AT_ONCE`` (4)
such calls run side by side: a month end with a hundred thousand renewals due on one day holds no
transaction and no lock for the run (``bench.run --renewals``).
One account's renewals are charged in the order its orders were placed, never by two calls at
once, so the balance pays them in the order the balance forecast counts them
(services/orders/forecast.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import eventlet
import structlog
from sqlalchemy import or_, select, tuple_

from services.common.config import env_float, env_int
from services.common.money import Money
from services.common.outbox import outbox_row, publish_all, publish_later
from services.orders import domain
from services.orders.domain import ENDED, LifecycleSettings, Status
from services.orders.models import Order, OrderPeriod, RenewalReminder
from services.orders.parts import Parts
from services.orders.renewal import Renewal
from services.orders.repository import Loaded, about, iso_date

log = structlog.get_logger(__name__)


def lifecycle_settings() -> LifecycleSettings:
    """The lifecycle's day counts, configurable for a deployment (defaults: SPEC O7 and issue 4)."""
    return LifecycleSettings(grace_days=env_int("ORDERS_GRACE_DAYS", 3),
                             close_after_days=env_int("ORDERS_CLOSE_AFTER_DAYS", 14),
                             pending_payment_days=env_int("ORDERS_PENDING_PAYMENT_DAYS", 7))


def tick_seconds() -> float:
    return env_float("ORDERS_TICK_SECONDS", 60.0)


def retry_seconds() -> float:
    """How often the operations whose ledger call failed are tried again (issue 16, item 6)."""
    return env_float("ORDERS_RETRY_SECONDS", 5.0)


def clock_batch() -> int:
    """How many orders the clock reads and moves in one transaction."""
    return env_int("ORDERS_CLOCK_BATCH", 500)


def renewals_at_once() -> int:
    """How many calls of automatic renewals run side by side (each waits on the ledger a good part of its time)."""
    return env_int("ORDERS_RENEWALS_AT_ONCE", 4)


def renewals_per_call() -> int:
    """How many automatic renewals of whole accounts make a ledger call (an account's are never split across
    calls running at once; an account with more than twice as many is charged in calls one after the other)."""
    return env_int("ORDERS_RENEWALS_PER_CALL", 100)


# The most ``ledger.charge_orders`` takes in one call.
LEDGER_CHARGES_AT_ONCE = 200


@dataclass
class Batch:
    """What one transaction of the clock did: where it stopped, how many it read, and the renewals due."""

    last: tuple | None = None          # (account_id, created_at, id) of its last order
    read: int = 0
    moved: int = 0
    reminded: int = 0
    due: list[tuple[str, str, int]] = field(default_factory=list)   # (account_id, order_id, months), in order


class LifecycleClock:
    """The clock's run: the live orders in batches, each batch its own short transaction.

    A batch locks its orders (``FOR UPDATE SKIP LOCKED``: a replica running the clock at the same
    time takes other orders, and an order being changed right now waits for the next tick), moves
    them along, records the reminders and marks today's automatic renewals, and commits. Its
    renewals then run, in calls of whole accounts, a few calls at a time, while the next batch is
    read: a call takes its orders' leases and writes their pending operations in a transaction of
    its own, never inside a batch's, so an interrupted renewal is finished as a customer's would be.
    No transaction lasts longer than one batch, however many orders are due on one day.
    """

    def __init__(self, parts: Parts, renewal: Renewal, settings: LifecycleSettings | None = None,
                 batch: int | None = None, at_once: int | None = None, per_call: int | None = None):
        self.parts = parts
        self.renewal = renewal
        self.uow, self.repository, self.clock = parts.uow, parts.repository, parts.clock
        self.settings = settings or lifecycle_settings()
        self.batch = batch or clock_batch()
        self.at_once = at_once or renewals_at_once()
        self.per_call = per_call or renewals_per_call()

    def tick(self) -> dict:
        """Move orders along their lifecycle, send renewal reminders, and make the due auto-renewals."""
        finished = self.parts.pending.finish_interrupted()
        today, now = self.clock.today(), self.clock.now()
        totals = {"moved": 0, "reminded": 0, "renewed": 0, "finished": finished, "batches": 0}
        renewals = eventlet.GreenPool(self.at_once)
        started = []
        after = None
        account, turn = None, []   # whole accounts' due renewals: an account's orders come together
        try:
            while True:
                with self.uow.transaction() as session:
                    batch = self.advance_batch(session, after, today, now)
                totals["batches"] += 1
                totals["moved"] += batch.moved
                totals["reminded"] += batch.reminded
                for account_id, order_id, months in batch.due:
                    if account_id != account and len(turn) >= self.per_call:
                        started.append(renewals.spawn(self.renew_accounts, turn))  # waits for a slot
                        turn = []
                    account = account_id
                    turn.append((order_id, months))
                if batch.read < self.batch:
                    break
                after = batch.last
        finally:
            if turn:  # marked as tried today by a committed batch: renewed now or not today
                started.append(renewals.spawn(self.renew_accounts, turn))
            renewals.waitall()  # a batch that failed (the database away) still lets the started renewals end
        totals["renewed"] = sum(renewal.wait() for renewal in started)
        return totals

    def renew_accounts(self, due: list[tuple[str, int]]) -> int:
        """Whole accounts' due renewals, in order: one call, or calls of at most twice ``per_call`` one after
        the other (an account with that many). A call that fails is logged and the next one goes on."""
        most = min(2 * self.per_call, LEDGER_CHARGES_AT_ONCE)
        renewed = 0
        for start in range(0, len(due), most):
            call = due[start:start + most]
            try:
                renewed += self.renewal.renew_many(call, still_due=self.still_due)
            except Exception:  # one call's failure must not stop the others' renewals
                log.exception("automatic renewals failed", orders=len(call))
        return renewed

    def still_due(self, state: domain.OrderState) -> bool:
        """Whether an order listed by a batch is still to be renewed automatically now (read again under its lock)."""
        return domain.auto_renewal_due(state, self.clock.today(), self.settings)

    def advance_batch(self, session, after: str | None, today, now) -> Batch:
        """The next ``batch`` live orders after ``after`` (by account, then as placed), moved along in the
        caller's transaction."""
        query = select(Order).where(
            Order.status.not_in([s.value for s in ENDED]), Order.pending_operation.is_(None),
            or_(Order.busy_until.is_(None), Order.busy_until < now), self.needs_the_clock(today))
        position = tuple_(Order.account_id, Order.created_at, Order.id)
        if after is not None:
            query = query.where(position > tuple_(*after))
        rows = session.scalars(query.order_by(Order.account_id, Order.created_at, Order.id).limit(self.batch)
                               .with_for_update(skip_locked=True)).all()
        batch = Batch(last=(rows[-1].account_id, rows[-1].created_at, rows[-1].id) if rows else after, read=len(rows))
        if not rows:
            return batch
        ids = [row.id for row in rows]
        reminders: dict[tuple[str, object], list[int]] = {}
        for order_id, paid_until, days in session.execute(
                select(RenewalReminder.order_id, RenewalReminder.paid_until, RenewalReminder.days)
                .where(RenewalReminder.order_id.in_(ids))):
            reminders.setdefault((order_id, paid_until), []).append(days)
        reminded = []   # their events, written in one statement
        for loaded in self.repository.loaded_all(session, rows):
            row = loaded.row
            due = domain.advance(loaded.state, today, self.settings)
            if due is not None:
                self._move(session, loaded, due)
                batch.moved += 1
                continue
            sent = reminders.get((row.id, loaded.state.paid_until), [])
            for days in domain.renewal_reminders_due(loaded.state, today, sent, self.settings):
                session.add(RenewalReminder(order_id=row.id, paid_until=loaded.state.paid_until, days=days))
                reminded.append(outbox_row(session, "renewal_due", {
                    **about(loaded), "paid_until": iso_date(loaded.state.paid_until),
                    "days_left": loaded.state.days_left(today), "cost": loaded.state.cost.to_wire(),
                    "auto_renew": row.auto_renew}))
                batch.reminded += 1
            if domain.auto_renewal_due(loaded.state, today, self.settings) and row.auto_renew_tried_on != today:
                # marked tried today when its renewal is written (Renewal.renew_many), not here: a clock
                # killed after this batch lists it again at its next tick
                batch.due.append((row.account_id, row.id, row.period_months))
        publish_all(session, reminded)
        return batch

    def needs_the_clock(self, today):
        """The live orders the clock may have something to do for today, as SQL: every one that is not
        active (pending payment, overdue, suspended: few), and the active ones cancelled for a day that
        has come or whose paid days end within the reminders' and the automatic renewal's horizon. An
        active order paid for weeks ahead is not read at all: a tick reads what is due, not every live
        order (it read them all, with their periods, every tick: a tenth of orders' CPU while orders
        were placed in the benchmark). ``paid_until`` as the rules take it (domain.OrderState): the end
        of the period that starts last; of two starting the same day, the earlier end (read, never missed).
        """
        horizon = today + timedelta(days=domain.days_the_clock_looks_ahead(self.settings))
        paid_until = (select(OrderPeriod.ends).where(OrderPeriod.order_id == Order.id)
                      .order_by(OrderPeriod.starts.desc(), OrderPeriod.ends).limit(1)
                      .correlate(Order).scalar_subquery())
        return or_(Order.status != Status.ACTIVE.value, Order.cancel_at <= today,
                   paid_until.is_(None), paid_until <= horizon)

    def _move(self, session, loaded: Loaded, due: Status) -> None:
        row, state = loaded.row, loaded.state
        previous = row.status
        row.status = due.value
        row.updated_at = self.clock.now()
        self.repository.event(session, row.id, due.value if due != Status.CANCELLED else "cancelled",
                              {"from": previous, "by": "lifecycle"})
        said = about(Loaded(row, state))
        paid_until, grace = state.paid_until, self.settings.grace_days
        if due == Status.OVERDUE:
            publish_later(session, "order_overdue", {
                **said, "paid_until": iso_date(paid_until), "cost": state.cost.to_wire(),
                "suspend_on": iso_date(paid_until + timedelta(days=grace))})
        elif due == Status.SUSPENDED:
            publish_later(session, "order_suspended", {
                **said, "ip_address": row.ip_address, "cost": state.cost.to_wire(),
                "close_on": iso_date(paid_until + timedelta(days=grace + self.settings.close_after_days))})
        elif due == Status.CLOSED:
            self.repository.free_ip(session, row.id)
            publish_later(session, "order_closed", said)
        elif due == Status.CANCELLED:  # never paid within the pending-payment days
            self.repository.free_ip(session, row.id)
            publish_later(session, "order_cancelled", {
                **said, "when": domain.CANCEL_NOW, "refund": Money.zero(state.currency).to_wire(), "cancel_at": None})
