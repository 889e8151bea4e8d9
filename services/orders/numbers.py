"""Orders' short numbers and host names: what a customer reads instead of a 36-character id.

An order's number is the next integer at placement, taken under the placement lock, so it is
unique in the system and has no gaps; it is shown as ``ORD-`` and at least six digits
(``ORD-000042``). The host name is the one the customer gave in the order form (every plan's
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


def next_number(session) -> int:
    """The number for the order being placed; the caller holds the placement lock."""
    return (session.scalar(select(func.max(Order.number))) or 0) + 1


def hostname(fields: Mapping[str, str] | None) -> str | None:
    """The order's host name from its form, or None when the plan's form asks for none."""
    value = (fields or {}).get("hostname")
    return value if isinstance(value, str) and value else None
