"""What the plans list says about stock is what placing an order would find (services/orders/stock.py)."""
from __future__ import annotations

import itertools

import pytest

from services.common.errors import DomainError
from services.orders.catalogue import load_catalogue
from services.orders.domain import choose_placement
from services.orders.ip_pools import IpPool
from services.orders.stock import has_room

CATALOGUE = load_catalogue()
DEDICATED = CATALOGUE.plan("ded-e2388g")
POOLS = {"WAW1": IpPool(["10.1.0.1-10.1.0.2"], "WAW1"), "FRA1": IpPool(["10.2.0.1"], "FRA1"),
         "AMS1": IpPool(["10.3.0.1"], "AMS1")}
USED = [[], ["10.2.0.1"], ["10.1.0.1", "10.1.0.2", "10.3.0.1"]]
IN_USE = [{}, {"AMS1": DEDICATED.stock.get("AMS1") or 0}, {"WAW1": 1}]


def places(plan, datacenter, used, in_use) -> bool:
    try:
        choose_placement(plan, {"datacenter": datacenter}, POOLS, used, in_use)
        return True
    except DomainError as refused:
        assert refused.error_code == "out_of_stock"
        return False


@pytest.mark.parametrize("used, in_use", itertools.product(USED, IN_USE))
def test_a_datacenter_has_room_exactly_when_an_order_there_would_be_placed(used, in_use):
    for datacenter in (*DEDICATED.datacenters, "NOWHERE"):
        assert has_room(DEDICATED, datacenter, POOLS, used, in_use) == places(DEDICATED, datacenter, used, in_use)


def test_a_datacenter_whose_plan_stock_is_taken_or_whose_addresses_are_gone_has_no_room():
    stocked = next(code for code, servers in DEDICATED.stock.items() if servers is not None)
    assert has_room(DEDICATED, stocked, POOLS, [], {}) is True
    assert has_room(DEDICATED, stocked, POOLS, [], {stocked: DEDICATED.stock[stocked]}) is False
    everything = ["10.1.0.1", "10.1.0.2", "10.2.0.1", "10.3.0.1"]
    assert has_room(DEDICATED, stocked, POOLS, everything, {}) is False
