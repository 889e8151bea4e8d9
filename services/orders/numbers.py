"""Orders' short numbers and host names: what a customer reads instead of a 36-character id.

An order's number is unique in the system, taken at placement without waiting for other orders:
on PostgreSQL from the sequence ``order_numbers`` (an order whose placement was rolled back leaves
its number unused, so numbers may skip), on SQLite the next after the largest (one writer at a
time there). It is shown as ``ORD-`` and at least six digits (``ORD-000042``). The host name is the one the customer gave in the order form (every plan's
form asks for it today); an order of a plan whose form has no ``hostname`` has none (null).
"""
from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import func, select

from services.orders.models import Order

PREFIX = "ORD-"


def shown(number: int) -> str:
    """``42`` -> ``ORD-000042``."""
    return f"{PREFIX}{number:06d}"


SEQUENCE = "order_numbers"   # PostgreSQL; made by migration 0007


def next_number(session) -> int:
    """The number for the order being placed."""
    if session.get_bind().dialect.name == "postgresql":
        return session.scalar(select(func.nextval(SEQUENCE)))
    return (session.scalar(select(func.max(Order.number))) or 0) + 1


def hostname(fields: Mapping[str, str] | None) -> str | None:
    """The order's host name from its form, or None when the plan's form asks for none."""
    value = (fields or {}).get("hostname")
    return value if isinstance(value, str) and value else None
