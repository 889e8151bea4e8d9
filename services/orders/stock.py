"""Which datacenters can take a new server of a plan now, so an order form offers no sold-out choice.

A datacenter has room for a plan when the plan is stocked there, its live orders there are fewer
than the plan's stock (``null``: no limit but the addresses), and the datacenter still has a free
address: the conditions placement takes a server by (services/orders/address_stock.py). What the
plans list says is a reading of the moment; placing an order checks again and may still answer
``out_of_stock`` to the customer who came second.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlalchemy import func, select

from services.orders import address_stock
from services.orders.catalogue import Catalogue, Plan
from services.orders.domain import ENDED
from services.orders.ip_pools import IpPool
from services.orders.models import IpFreeAddress, Order


def has_room(plan: Plan, datacenter: str, pools: Mapping[str, IpPool], with_free_address: Collection[str],
             servers_in_use: Mapping[str, int]) -> bool:
    """Whether an order of ``plan`` placed in ``datacenter`` now would get a server and an address."""
    if datacenter not in plan.stock or datacenter not in pools or datacenter not in with_free_address:
        return False
    return address_stock.has_room(plan.stock[datacenter], servers_in_use.get(datacenter, 0))


def room(session, catalogue: Catalogue) -> dict[str, dict[str, bool]]:
    """``{plan_id: {datacenter: has room}}`` for every plan: one indexed look per datacenter, one count."""
    with_free_address = {datacenter for datacenter in catalogue.ip_pools if session.scalar(
        select(IpFreeAddress.ip_address).where(IpFreeAddress.datacenter == datacenter).limit(1)) is not None}
    live = session.execute(select(Order.plan_id, Order.datacenter, func.count())
                           .where(Order.status.not_in([s.value for s in ENDED]))
                           .group_by(Order.plan_id, Order.datacenter)).all()
    in_use: dict[str, dict[str, int]] = {}
    for plan_id, datacenter, count in live:
        in_use.setdefault(plan_id, {})[datacenter] = count
    return {plan.id: {datacenter: has_room(plan, datacenter, catalogue.ip_pools, with_free_address,
                                           in_use.get(plan.id, {}))
                      for datacenter in plan.stock}
            for plan in catalogue.plans}
