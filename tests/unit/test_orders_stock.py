"""What the plans list says about stock follows placement's rules (services/orders/stock.py).

That the list and a real placement agree, sold out and back, is proved over the whole stack in
tests/e2e/test_orders_self_service.py.
"""
from __future__ import annotations

from services.orders.catalogue import load_catalogue
from services.orders.ip_pools import IpPool
from services.orders.stock import has_room

CATALOGUE = load_catalogue()
DEDICATED = CATALOGUE.plan("ded-e2388g")
POOLS = {"WAW1": IpPool(["10.1.0.1-10.1.0.2"], "WAW1"), "FRA1": IpPool(["10.2.0.1"], "FRA1"),
         "AMS1": IpPool(["10.3.0.1"], "AMS1")}
EVERY_POOL_HAS_ADDRESSES = set(POOLS)


def test_a_stocked_datacenter_with_servers_and_addresses_left_has_room():
    stocked = next(code for code, servers in DEDICATED.stock.items() if servers is not None)
    assert has_room(DEDICATED, stocked, POOLS, EVERY_POOL_HAS_ADDRESSES, {}) is True
    assert has_room(DEDICATED, stocked, POOLS, EVERY_POOL_HAS_ADDRESSES, {stocked: DEDICATED.stock[stocked] - 1})


def test_a_datacenter_whose_plan_stock_is_taken_or_whose_addresses_are_gone_has_no_room():
    stocked = next(code for code, servers in DEDICATED.stock.items() if servers is not None)
    assert has_room(DEDICATED, stocked, POOLS, EVERY_POOL_HAS_ADDRESSES, {stocked: DEDICATED.stock[stocked]}) is False
    assert has_room(DEDICATED, stocked, POOLS, EVERY_POOL_HAS_ADDRESSES - {stocked}, {}) is False


def test_a_datacenter_the_plan_is_not_sold_in_or_without_a_pool_has_no_room():
    assert has_room(DEDICATED, "NOWHERE", POOLS, EVERY_POOL_HAS_ADDRESSES | {"NOWHERE"}, {}) is False
    stocked = next(iter(DEDICATED.stock))
    assert has_room(DEDICATED, stocked, {}, EVERY_POOL_HAS_ADDRESSES, {}) is False
