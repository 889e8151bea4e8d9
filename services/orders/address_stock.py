"""Where a new server goes and its IP address: taken from a table of free addresses, in O(1).

Every address of every datacenter's pool that no order holds is a row of ``ip_free_addresses``.
A new order takes one row of its datacenter and deletes it (on PostgreSQL ``FOR UPDATE SKIP
LOCKED``: concurrent orders take different rows and never wait for each other), and writes its
``ip_assignments`` row, whose primary key stays the last guard against an address given twice.
An order that ends (cancelled, closed) gives its address back: the row returns to the table.
Which free address a datacenter gives is not defined (any free one, not the lowest).

A plan with a number of servers in a datacenter (``stock``, dedicated servers) counts its live
orders there through a partial index (only live orders, so the count is bounded by that stock,
not by the orders ever placed), under a lock of that plan in that datacenter alone: two orders
for the last server of one plan in one datacenter go one at a time, everything else runs side
by side. A plan without a number (``null``, VPS) is limited by the addresses alone.

SQLite has one writer per file, and the services one connection to it: the same statements
run one transaction at a time there, which serialises them without any lock of ours.

The table is filled from the pools by migration 0006 and brought in line with the catalogue each
time the service starts (``ORDERS_IP_POOLS`` may have changed the pools): addresses new to a pool
become free, addresses no longer in any pool stop being offered (an order holding one keeps it).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, literal, select
from sqlalchemy.orm import Session

from services.common.errors import DomainError
from services.common.locks import insert_first, lock
from services.orders.catalogue import Plan
from services.orders.domain import ENDED
from services.orders.ip_pools import IpPool
from services.orders.models import IpAssignment, IpFreeAddress, Order

_ENDED = sorted(status.value for status in ENDED)  # as ix_orders_live_by_plan names them


@dataclass(frozen=True)
class Allocation:
    """Where a new server goes: its datacenter and the address it took there."""

    datacenter: str
    ip_address: str


def datacenters_to_try(plan: Plan, fields: Mapping[str, str], pools: Mapping[str, IpPool]) -> list[str]:
    """The datacenters a new order of ``plan`` may go to, in the order they are tried.

    The customer's ``datacenter`` field decides when the plan has one (dedicated); a VPS goes to
    the first of the plan's datacenters with room.
    """
    chosen = fields.get("datacenter")
    candidates = [chosen] if chosen else list(plan.stock)
    return [code for code in candidates if code in plan.stock and code in pools]


def out_of_stock(plan: Plan, fields: Mapping[str, str]) -> DomainError:
    chosen = fields.get("datacenter")
    where = f" in {chosen}" if chosen else ""
    return DomainError("out_of_stock", f"{plan.name} is out of stock{where}.",
                       details={"plan_id": plan.id, "datacenter": chosen})


def has_room(capacity: int | None, servers_in_use: int) -> bool:
    """Whether a datacenter with ``capacity`` servers of a plan (None: no limit) takes one more."""
    return capacity is None or servers_in_use < capacity


def take(session: Session, plan: Plan, fields: Mapping[str, str], pools: Mapping[str, IpPool]) -> Allocation:
    """Take a datacenter with room and a free address there for a new order; out_of_stock (422) when none.

    The address is the caller's from now on: it writes the order and its ``IpAssignment`` in this
    transaction (a rollback returns the address to the table).
    """
    for datacenter in datacenters_to_try(plan, fields, pools):
        capacity = plan.stock[datacenter]
        if capacity is not None:
            lock(session, f"orders:stock:{plan.id}:{datacenter}")
            if not has_room(capacity, _servers_in_use(session, plan.id, datacenter)):
                continue
        address = _take_free_address(session, datacenter)
        if address is not None:
            return Allocation(datacenter, address)
    raise out_of_stock(plan, fields)


def give_back(session: Session, order_id: str, pools: Mapping[str, IpPool]) -> None:
    """The order no longer holds its address: it is free again (if its datacenter's pool still has it)."""
    released = session.execute(delete(IpAssignment).where(IpAssignment.order_id == order_id)
                               .returning(IpAssignment.ip_address, IpAssignment.datacenter)).first()
    if released is None:
        return
    address, datacenter = released
    pool = pools.get(datacenter)
    if pool is not None and address in pool:
        insert_first(session, IpFreeAddress.__table__, ip_address=address, datacenter=datacenter)


def fill(session: Session, pools: Mapping[str, IpPool]) -> dict[str, int]:
    """Bring the free-address table in line with the pools; the free addresses per datacenter.

    Runs once per start (and in migration 0006), one replica at a time. The free and the assigned
    addresses are read in one statement, so in one snapshot: an order taking or giving back an
    address meanwhile moves it from one to the other in one transaction, so it is seen in one of
    them and never added twice; only addresses new to a pool are added.
    """
    lock(session, "orders:free-addresses")
    assigned: set[str] = set()
    free_now: dict[str, set[str]] = {}
    both = select(IpFreeAddress.ip_address, IpFreeAddress.datacenter, literal(True).label("free")).union_all(
        select(IpAssignment.ip_address, IpAssignment.datacenter, literal(False)))
    for address, datacenter, free in session.execute(both):
        if free:
            free_now.setdefault(datacenter, set()).add(address)
        else:
            assigned.add(address)
    counts = {}
    for datacenter in set(free_now) | set(pools):
        pool = pools.get(datacenter)
        wanted = set(pool.addresses()) - assigned if pool is not None else set()
        have = free_now.get(datacenter, set())
        gone = have - wanted
        if gone:
            session.execute(delete(IpFreeAddress).where(IpFreeAddress.datacenter == datacenter,
                                                        IpFreeAddress.ip_address.in_(sorted(gone))))
        new = sorted(wanted - have)
        for start in range(0, len(new), 5000):
            session.execute(insert(IpFreeAddress), [{"ip_address": address, "datacenter": datacenter}
                                                     for address in new[start:start + 5000]])
        if pool is not None:
            counts[datacenter] = len(wanted)
    return counts


def free_addresses(session: Session, datacenter: str) -> int:
    """How many addresses a datacenter has left (one indexed count)."""
    return session.scalar(select(func.count()).select_from(IpFreeAddress)
                          .where(IpFreeAddress.datacenter == datacenter))


def _servers_in_use(session: Session, plan_id: str, datacenter: str) -> int:
    # The same predicate as the partial index ix_orders_live_by_plan: only live orders are read.
    return session.scalar(select(func.count()).select_from(Order).where(
        Order.plan_id == plan_id, Order.datacenter == datacenter, Order.status.not_in(_ENDED)))


def _take_free_address(session: Session, datacenter: str) -> str | None:
    one = (select(IpFreeAddress.ip_address).where(IpFreeAddress.datacenter == datacenter)
           .limit(1).with_for_update(skip_locked=True).scalar_subquery())
    return session.scalar(delete(IpFreeAddress).where(IpFreeAddress.ip_address == one)
                          .returning(IpFreeAddress.ip_address))
