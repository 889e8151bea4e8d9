"""Which datacenters can take a new server of a plan now, so an order form offers no sold-out choice.

A datacenter has room for a plan when the plan is stocked there, its live orders there are fewer
than the plan's stock (``null``: no limit but the addresses), and the datacenter's IP pool still has
a free address: the same conditions :func:`services.orders.domain.choose_placement` places by.
What the plans list says is a reading of the moment; placing an order checks again under the
placement lock and may still answer ``out_of_stock`` to the customer who came second.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import func, select

from services.orders.catalogue import Catalogue, Plan
from services.orders.domain import ENDED
from services.orders.ip_pools import IpPool
from services.orders.models import IpAssignment, Order


def has_room(plan: Plan, datacenter: str, pools: Mapping[str, IpPool], used_ips: Iterable[str],
             servers_in_use: Mapping[str, int]) -> bool:
    """Whether an order of ``plan`` placed in ``datacenter`` now would get a server and an address."""
    if datacenter not in plan.stock or datacenter not in pools:
        return False
    capacity = plan.stock[datacenter]
    if capacity is not None and servers_in_use.get(datacenter, 0) >= capacity:
        return False
    return pools[datacenter].free_count(used_ips) > 0


def room(session, catalogue: Catalogue) -> dict[str, dict[str, bool]]:
    """``{plan_id: {datacenter: has room}}`` for every plan of the catalogue, read in one go."""
    used = set(session.scalars(select(IpAssignment.ip_address)).all())
    live = session.execute(select(Order.plan_id, Order.datacenter, func.count())
                           .where(Order.status.not_in([s.value for s in ENDED]))
                           .group_by(Order.plan_id, Order.datacenter)).all()
    in_use: dict[str, dict[str, int]] = {}
    for plan_id, datacenter, count in live:
        in_use.setdefault(plan_id, {})[datacenter] = count
    return {plan.id: {datacenter: has_room(plan, datacenter, catalogue.ip_pools, used, in_use.get(plan.id, {}))
                      for datacenter in plan.stock}
            for plan in catalogue.plans}
