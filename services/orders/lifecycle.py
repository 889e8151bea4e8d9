"""The lifecycle clock (O1, O7): overdue, suspended, closed; renewal reminders; automatic renewals."""
from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy import or_, select

from services.common.config import env_float, env_int
from services.common.errors import DomainError
from services.common.locks import try_lock
from services.common.money import Money
from services.common.outbox import publish_later
from services.orders import domain
from services.orders.domain import ENDED, LifecycleSettings, Status
from services.orders.models import Order, RenewalReminder
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


class LifecycleClock:
    def __init__(self, parts: Parts, renewal: Renewal, settings: LifecycleSettings | None = None):
        self.parts = parts
        self.renewal = renewal
        self.uow, self.repository, self.clock = parts.uow, parts.repository, parts.clock
        self.settings = settings or lifecycle_settings()

    def tick(self) -> dict:
        """Move orders along their lifecycle, send renewal reminders, then try the due auto-renewals."""
        finished = self.parts.pending.finish_interrupted()
        today, now = self.clock.today(), self.clock.now()
        moved, reminded, auto = 0, 0, []
        with self.uow.transaction() as session:
            if not try_lock(session, "orders.lifecycle"):
                return {"skipped": True, "finished": finished}
            rows = session.scalars(select(Order).where(
                Order.status.not_in([s.value for s in ENDED]), Order.pending_operation.is_(None),
                or_(Order.busy_until.is_(None), Order.busy_until < now)).order_by(Order.created_at)).all()
            for row in rows:
                loaded = self.repository.loaded(session, row)
                due = domain.advance(loaded.state, today, self.settings)
                if due is not None:
                    self._move(session, loaded, due)
                    moved += 1
                    continue
                sent = self._reminders_sent(session, loaded)
                for days in domain.renewal_reminders_due(loaded.state, today, sent, self.settings):
                    session.add(RenewalReminder(order_id=row.id, paid_until=loaded.state.paid_until, days=days))
                    publish_later(session, "renewal_due", {
                        **about(loaded), "paid_until": iso_date(loaded.state.paid_until),
                        "days_left": loaded.state.days_left(today), "cost": loaded.state.cost.to_wire(),
                        "auto_renew": row.auto_renew})
                    reminded += 1
                if domain.auto_renewal_due(loaded.state, today, self.settings) and row.auto_renew_tried_on != today:
                    row.auto_renew_tried_on = today  # once a day: a short balance is not retried every tick
                    auto.append((row.id, row.period_months))
        renewed = 0
        for order_id, months in auto:
            try:
                self.renewal.renew_now(order_id, months, None, automatic=True)
                renewed += 1
            except DomainError as error:
                log.info("automatic renewal not done", order_id=order_id, code=error.error_code)
        return {"moved": moved, "reminded": reminded, "renewed": renewed, "finished": finished}

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

    def _reminders_sent(self, session, loaded: Loaded) -> list[int]:
        return session.scalars(select(RenewalReminder.days).where(
            RenewalReminder.order_id == loaded.row.id,
            RenewalReminder.paid_until == loaded.state.paid_until)).all()
