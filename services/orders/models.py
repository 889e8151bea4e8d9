"""The orders service's tables.

An order's paid time is a list of paid periods (``order_periods``), its money a list of
ledger charges (``order_charges``, what a refund may draw on), its story a list of events
(``order_events``). An IP address belongs to at most one order (``ip_assignments``: the
address is the primary key); the addresses no order holds are the rows of ``ip_free_addresses``. ``idempotency_keys`` (services/common) keeps the first answer
to a request that carried an ``Idempotency-Key``.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (JSON, BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, String,
                        UniqueConstraint, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.profile_copy import add_profile_copy_table
from services.common.tables import Serial, add_idempotency_table, add_messaging_tables


class Base(DeclarativeBase):
    pass


add_messaging_tables(Base.metadata)
add_idempotency_table(Base.metadata)
add_profile_copy_table(Base.metadata)  # whether the customer may pay, from profile's events


class CataloguePlan(Base):
    """A copy of the catalogue's plans, refreshed at start, so orders can be read with SQL alone."""

    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    monthly_price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    catalogue_version: Mapped[str] = mapped_column(String(32))


# What the partial index ix_orders_live_by_plan covers: a plan's live orders in a datacenter, the
# ones its stock counts (address_stock.py). The statuses of domain.ENDED.
_LIVE = text("status NOT IN ('cancelled', 'closed')")


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_account_created", "account_id", "created_at", "id"),
                      Index("ix_orders_status", "status"),
                      UniqueConstraint("number", name="uq_orders_number"),
                      Index("ix_orders_live_by_plan", "plan_id", "datacenter",
                            postgresql_where=_LIVE, sqlite_where=_LIVE),
                      # The operations to finish, looked for every few seconds (operations.py).
                      Index("ix_orders_interrupted", "busy_until",
                            postgresql_where=text("pending_operation IS NOT NULL"),
                            sqlite_where=text("pending_operation IS NOT NULL")))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # The order's short number, unique in the system: the next one at placement (under the
    # placement lock), shown as ORD-000042 (services/orders/numbers.py).
    number: Mapped[int] = mapped_column(BigInteger)
    account_id: Mapped[str] = mapped_column(String(36))
    plan_id: Mapped[str] = mapped_column(String(48))
    period_months: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_at: Mapped[date | None] = mapped_column(Date, nullable=True)
    fields: Mapped[dict] = mapped_column(JSON)
    datacenter: Mapped[str | None] = mapped_column(String(10), nullable=True)
    ip_address: Mapped[str | None] = mapped_column(String(45), nullable=True)
    currency: Mapped[str] = mapped_column(String(3))
    renewals: Mapped[int] = mapped_column(Integer, default=0)        # numbers renewal keys
    plan_changes: Mapped[int] = mapped_column(Integer, default=0)    # numbers plan-change keys
    # One money-moving operation at a time per order: a lease taken before calling the ledger.
    busy_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    busy_with: Mapped[str | None] = mapped_column(String(120), nullable=True)
    # What a money-moving operation is about to ask the ledger, written before the call: a worker
    # that dies between the ledger and the order's write leaves it here for the lifecycle timer.
    pending_operation: Mapped[dict | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    auto_renew_tried_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OrderPeriod(Base):
    __tablename__ = "order_periods"

    id: Mapped[int] = mapped_column(Serial, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    starts: Mapped[date] = mapped_column(Date)
    ends: Mapped[date] = mapped_column(Date)
    months: Mapped[int] = mapped_column(Integer)
    paid_minor: Mapped[int] = mapped_column(BigInteger)
    price_minor: Mapped[int] = mapped_column(BigInteger)
    # What was paid for the days not used yet (domain.PaidPeriod): the period's own charge over
    # all its days, and the net of its plan changes over the days from adjusted_from on.
    charged_minor: Mapped[int] = mapped_column(BigInteger)
    adjustment_minor: Mapped[int] = mapped_column(BigInteger)
    adjusted_from: Mapped[date] = mapped_column(Date)


class OrderCharge(Base):
    """A ledger charge taken for the order, and how much of it has been refunded since."""

    __tablename__ = "order_charges"

    transaction_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    reason: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OrderEvent(Base):
    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(Serial, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict] = mapped_column(JSON)


class IpAssignment(Base):
    """An address held by an order: the primary key makes a double assignment impossible."""

    __tablename__ = "ip_assignments"

    ip_address: Mapped[str] = mapped_column(String(45), primary_key=True)
    datacenter: Mapped[str] = mapped_column(String(10))
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), unique=True)
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IpFreeAddress(Base):
    """An address of a datacenter's pool that no order holds: a new order takes one (address_stock.py)."""

    __tablename__ = "ip_free_addresses"
    __table_args__ = (Index("ix_ip_free_addresses_datacenter", "datacenter"),)

    ip_address: Mapped[str] = mapped_column(String(45), primary_key=True)
    datacenter: Mapped[str] = mapped_column(String(10))


class RenewalReminder(Base):
    """A renewal_due reminder sent for one paid_until: never twice."""

    __tablename__ = "renewal_reminders"

    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    paid_until: Mapped[date] = mapped_column(Date, primary_key=True)
    days: Mapped[int] = mapped_column(Integer, primary_key=True)



class ForecastCheck(Base):
    """The day the account's forecast was last given to the ledger's alert in days (services/orders/forecast.py)."""

    __tablename__ = "forecast_checks"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    checked_on: Mapped[date] = mapped_column(Date)
