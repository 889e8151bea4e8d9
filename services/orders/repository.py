"""Orders and their periods, charges, events and addresses in the database, and back to the rules' view.

Every function works inside a transaction its caller opened (``session``): the repository
never decides where a unit of work begins or ends.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from sqlalchemy import Table, bindparam, delete, func, insert, select, update

from services.common.clock import as_utc, iso
from services.common.errors import NotFound
from services.common.locks import is_postgres
from services.common.money import Money
from services.common.outbox import publish_all
from services.common.statements import bound_values, numbered, prefixed, rows_of
from services.orders import address_stock, domain, numbers
from services.orders.catalogue import Catalogue
from services.orders.domain import OrderState, PaidPeriod, Status
from services.orders.models import IpAssignment, Order, OrderCharge, OrderEvent, OrderPeriod

# Built once (the panel's order lists and every order loaded read it): see application.ORDER_LISTS.
PERIODS_OF = select(OrderPeriod).where(OrderPeriod.order_id.in_(bindparam("order_ids", expanding=True))) \
    .order_by(OrderPeriod.order_id, OrderPeriod.starts)
# Read on every payment to the account (``balance_changed``): built once too.
PENDING_OF = select(Order.id).where(Order.account_id == bindparam("account_id"),
                                    Order.status == Status.PENDING_PAYMENT.value) \
    .order_by(Order.created_at, Order.id)


@dataclass
class Loaded:
    """An order row and the rules' view of it."""

    row: Order
    state: OrderState


class OrderRepository:
    def __init__(self, catalogue: Catalogue, clock):
        self.catalogue = catalogue
        self.clock = clock

    def load(self, session, order_id, account_id: str | None = None, lock: bool = False) -> Loaded:
        """The order (another customer's is not_found); ``lock``: FOR UPDATE until the transaction ends."""
        if not isinstance(order_id, str) or len(order_id) > 36:
            raise NotFound("order")
        query = select(Order).where(Order.id == order_id)
        if account_id is not None:
            query = query.where(Order.account_id == account_id)
        if lock:
            query = query.with_for_update()
        row = session.scalar(query)
        if row is None:
            raise NotFound("order")
        return self.loaded(session, row)

    def loaded(self, session, row: Order) -> Loaded:
        return self.loaded_all(session, [row])[0]

    def loaded_all(self, session, rows) -> list[Loaded]:
        """The rules' view of each row, in the same order, with the periods of all of them read in one query."""
        periods: dict[str, list] = {row.id: [] for row in rows}
        if periods:
            for period in session.scalars(PERIODS_OF, {"order_ids": list(periods)}):
                periods[period.order_id].append(period)
        return [Loaded(row, self.state_of(row, periods[row.id])) for row in rows]

    def state_of(self, row: Order, periods) -> OrderState:
        """The rules' view of an order row and its period rows."""
        return OrderState(
            plan=self.catalogue.plan(row.plan_id), period_months=row.period_months,
            created_on=as_utc(row.created_at).date(), status=Status(row.status),
            periods=tuple(PaidPeriod(p.starts, p.ends, p.months, money(p.paid_minor, row.currency),
                                     money(p.price_minor, row.currency), money(p.charged_minor, row.currency),
                                     money(p.adjustment_minor, row.currency), p.adjusted_from)
                          for p in periods),
            cancel_at=row.cancel_at, auto_renew=row.auto_renew, fields=row.fields or {})

    def add_placed(self, session, values: dict, ip_address: str, history: tuple[str, dict]) -> Order:
        """A new order (``values``: its columns but its number), the address it holds and the history's
        first entry (kind, details), written together: the order as written, with its number (numbers.py).

        On PostgreSQL in one statement that takes the number from the sequence; the row it returns
        stays out of the session. Elsewhere through the session.
        """
        held = {"ip_address": ip_address, "datacenter": values["datacenter"], "order_id": values["id"],
                "assigned_at": values["created_at"]}
        kind, details = history
        if not is_postgres(session):
            row = Order(**values, number=numbers.next_number(session))
            session.add(row)
            session.flush()
            session.add(IpAssignment(**held))
            self.event(session, row.id, kind, details)
            return row
        parameters = {**prefixed("order_", values), **prefixed("held_", held), "history_order_id": values["id"],
                      "history_at": self.clock.now(), "history_kind": kind, "history_details": details}
        return Order(**values, number=session.scalar(_placed_statement(tuple(values)), parameters))

    def save(self, session, row: Order, state: OrderState, had_periods: bool = True) -> None:
        """Write the rules' view back on the row and replace its periods (``had_periods``: False for none to delete)."""
        self._take_state(row, state)
        if had_periods:
            session.execute(delete(OrderPeriod).where(OrderPeriod.order_id == row.id))
        for period in period_rows(row.id, state):
            session.add(OrderPeriod(**period))

    def save_paid(self, session, row: Order, state: OrderState, had_periods: bool, charge: dict,
                  history: tuple[str, dict], events: list[dict]) -> None:
        """An order an operation has just paid for: the rules' view on the row, the operation's lease
        dropped and its operation cleared, its periods, ``charge`` (an ``order_charges`` row), the
        history's entry (kind, details) and ``events`` (:func:`outbox_row`'s), written together.

        On PostgreSQL, when there are no periods to replace (a new order's activation), in one
        statement: the row leaves the session (a flush would write it again) and keeps the values
        written. Elsewhere through the session, as :meth:`save` and :meth:`event` write.
        """
        row.pending_operation = None
        row.busy_until = row.busy_with = None
        if had_periods or not (state.periods and events and is_postgres(session)):
            self.save(session, row, state, had_periods)
            session.add(OrderCharge(**charge))
            self.event(session, row.id, *history)
            publish_all(session, events)
            return
        session.expunge(row)
        self._take_state(row, state)
        kind, details = history
        periods = period_rows(row.id, state)
        statement = _paid_statement(session.info["tables"]["outbox"], tuple(periods[0]), len(periods),
                                    tuple(events[0]), len(events))
        session.execute(statement, {
            **{f"paid_{name}": getattr(row, name) for name in PAID_COLUMNS}, "paid_id": row.id,
            **numbered("period", periods), **numbered("event", events), **prefixed("charge_", charge),
            "history_order_id": row.id, "history_at": self.clock.now(), "history_kind": kind,
            "history_details": details})

    def _take_state(self, row: Order, state: OrderState) -> None:
        row.status = state.status.value
        row.period_months = state.period_months
        row.cancel_at = state.cancel_at
        row.plan_id = state.plan.id
        row.updated_at = self.clock.now()

    def delete_periods(self, session, order_ids: list[str]) -> None:
        """The periods of these orders, deleted in one statement (``save(..., had_periods=False)`` writes theirs)."""
        if order_ids:
            session.execute(delete(OrderPeriod).where(OrderPeriod.order_id.in_(order_ids)))

    def pending_orders(self, session, account_id: str) -> list[str]:
        """The account's orders awaiting payment, oldest first."""
        return session.scalars(PENDING_OF, {"account_id": account_id}).all()

    def assigned_ip(self, session, order_id: str) -> str | None:
        return session.scalar(select(IpAssignment.ip_address).where(IpAssignment.order_id == order_id))

    def free_ip(self, session, order_id: str) -> None:
        """The order has ended: its address goes back to the free addresses (address_stock.py)."""
        address_stock.give_back(session, order_id, self.catalogue.ip_pools)

    def event(self, session, order_id: str, kind: str, details: dict) -> None:
        session.add(OrderEvent(order_id=order_id, at=self.clock.now(), kind=kind, details=details))

    def events(self, session, order_id: str) -> list[dict]:
        rows = session.scalars(select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)).all()
        return [{"at": iso(as_utc(e.at)), "kind": e.kind, "details": e.details} for e in rows]

    def refundable(self, session, row: Order) -> list[tuple[str, Money]]:
        """The order's charges, oldest first, each with what is left of it to refund."""
        charges = session.scalars(select(OrderCharge).where(OrderCharge.order_id == row.id)
                                  .order_by(OrderCharge.at, OrderCharge.transaction_id)).all()
        return [(c.transaction_id, money(c.amount_minor - c.refunded_minor, row.currency)) for c in charges]

    def record_charge(self, session, order_id: str, transaction: dict, amount: Money, reason: str) -> None:
        session.add(OrderCharge(**self.charge_row(order_id, transaction, amount, reason)))

    def charge_row(self, order_id: str, transaction: dict, amount: Money, reason: str) -> dict:
        """The ``order_charges`` row of a ledger charge taken for the order."""
        return {"transaction_id": transaction_id(transaction), "order_id": order_id, "amount_minor": amount.minor,
                "refunded_minor": 0, "reason": reason, "at": self.clock.now()}

    def record_refunds(self, session, refunds) -> None:
        for charge_id, part, _ in refunds:
            session.execute(update(OrderCharge).where(OrderCharge.transaction_id == charge_id)
                            .values(refunded_minor=OrderCharge.refunded_minor + part.minor))

    def view(self, loaded: Loaded) -> dict:
        """The Order shape of the API; days_left and actions are computed from the clock and the status."""
        return order_view(loaded, self.clock.today())


def period_rows(order_id: str, state: OrderState) -> list[dict]:
    """The ``order_periods`` rows of the order's paid periods."""
    return [{"order_id": order_id, "starts": p.starts, "ends": p.ends, "months": p.months, "paid_minor": p.paid.minor,
             "price_minor": p.price.minor, "charged_minor": p.charged.minor, "adjustment_minor": p.adjustment.minor,
             "adjusted_from": p.adjusted_from} for p in state.periods]


# What :meth:`OrderRepository.save_paid` writes on the row: the rules' view, the address, and no lease or operation.
PAID_COLUMNS = ("status", "period_months", "cancel_at", "plan_id", "updated_at", "ip_address",
                "pending_operation", "busy_until", "busy_with")
_HISTORY_COLUMNS = ("order_id", "at", "kind", "details")


@lru_cache(maxsize=4)
def _placed_statement(columns: tuple[str, ...]):
    """:meth:`OrderRepository.add_placed`'s statement, built once: the order's insert, with its number
    from the sequence and returned, and the address held and the history's entry as CTEs beside it,
    one round trip instead of four; the new rows' foreign keys are checked at the statement's end,
    when the order is there."""
    orders, held, history = Order.__table__, IpAssignment.__table__, OrderEvent.__table__
    number = func.nextval(numbers.SEQUENCE)
    placed = insert(orders).values({**bound_values(orders, "order_", columns), "number": number}) \
        .returning(orders.c.number).cte("placed")
    return select(placed.c.number).add_cte(
        insert(held).values(bound_values(held, "held_", ("ip_address", "datacenter", "order_id", "assigned_at")))
        .cte("held"),
        insert(history).values(bound_values(history, "history_", _HISTORY_COLUMNS)).cte("history"))


@lru_cache(maxsize=8)
def _paid_statement(outbox: Table, period: tuple[str, ...], periods: int, event: tuple[str, ...], events: int):
    """:meth:`OrderRepository.save_paid`'s statement for this shape and number of periods and of events, built once
    (services/common/statements.py): the row's update, its periods, the charge and the history's
    entry as data-modifying CTEs of the events' insert, one round trip instead of six. The row is
    locked by the caller's read; the new rows' foreign keys find it there."""
    orders, charges, history = Order.__table__, OrderCharge.__table__, OrderEvent.__table__
    return insert(outbox).from_select(list(event), rows_of(outbox, "event", event, events)).add_cte(
        update(orders).where(orders.c.id == bindparam("paid_id")).values(bound_values(orders, "paid_", PAID_COLUMNS))
        .cte("paid"),
        insert(OrderPeriod.__table__).from_select(
            list(period), rows_of(OrderPeriod.__table__, "period", period, periods)).cte("periods"),
        insert(charges).values(bound_values(charges, "charge_", tuple(c.name for c in charges.c))).cte("charge"),
        insert(history).values(bound_values(history, "history_", _HISTORY_COLUMNS)).cte("history"))


def order_view(loaded: Loaded, today: date) -> dict:
    """The Order shape of the API on ``today``."""
    row, state = loaded.row, loaded.state
    shown_ip = None if state.status == Status.PENDING_PAYMENT else row.ip_address
    return {
        "id": row.id, "number": numbers.shown(row.number), "hostname": numbers.hostname(state.fields),
        "plan": state.plan.summary_to_wire(), "period_months": state.period_months,
        "ip_address": shown_ip, "paid_until": iso_date(state.paid_until), "days_left": state.days_left(today),
        "status": state.status.value, "cost": state.cost.to_wire(), "auto_renew": state.auto_renew,
        "cancel_at": iso_date(state.cancel_at), "fields": dict(state.fields), "actions": domain.actions(state),
        "created_at": iso(as_utc(row.created_at)),
    }


def about(loaded: Loaded) -> dict:
    """What every event about an order says of it."""
    return {"account_id": loaded.row.account_id, "order_id": loaded.row.id,
            "order_number": numbers.shown(loaded.row.number), "hostname": numbers.hostname(loaded.state.fields),
            "plan_name": loaded.state.plan.name}


def money(minor: int, currency: str) -> Money:
    return Money(int(minor), currency)


def transaction_id(transaction: dict) -> str:
    return str(transaction.get("id") or transaction.get("transaction_id"))


def invoice_line(description: str, period: PaidPeriod) -> dict:
    """The invoice line of a paid period: its price and its first and last day."""
    return {"description": description, "gross": period.paid.to_wire(),
            "period_from": period.starts.isoformat(), "period_to": (period.ends - timedelta(days=1)).isoformat()}


def iso_date(value: date | None) -> str | None:
    return value.isoformat() if value else None
