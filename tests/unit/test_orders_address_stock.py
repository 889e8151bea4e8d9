"""IP pools and where a new server goes, without a database (the free-address table on a real
one: tests/integration/test_orders_address_stock.py)."""
from __future__ import annotations

import pytest

from services.common.errors import DomainError
from services.orders.address_stock import datacenters_to_try, has_room, out_of_stock
from services.orders.catalogue import load_catalogue
from services.orders.ip_pools import MAX_POOL_SIZE, IpPool

CATALOGUE = load_catalogue()
VPS_S = CATALOGUE.plan("vps-s")
DEDICATED = CATALOGUE.plan("ded-e2388g")


# --- IP pools ------------------------------------------------------------------------------

def test_a_cidr_pool_holds_its_hosts_without_network_and_broadcast():
    pool = IpPool(["10.0.0.0/29"], datacenter="WAW1")
    assert pool.size == 6
    assert list(pool.addresses()) == [f"10.0.0.{n}" for n in range(1, 7)]


def test_a_pool_of_dash_ranges_and_single_addresses_lists_each_range_in_turn():
    pool = IpPool(["10.0.2.9", "10.0.1.5-10.0.1.6"])
    assert pool.size == 3
    assert list(pool.addresses()) == ["10.0.1.5", "10.0.1.6", "10.0.2.9"]


@pytest.mark.parametrize("block, first, size", [
    ("10.0.0.8/31", "10.0.0.8", 2),            # point-to-point: both addresses
    ("10.0.0.8/32", "10.0.0.8", 1),
    ("2001:db8::/126", "2001:db8::1", 3),      # no subnet-router anycast address
])
def test_small_blocks_give_every_usable_address(block, first, size):
    pool = IpPool([block])
    assert (next(pool.addresses()), pool.size, len(list(pool.addresses()))) == (first, size, size)


def test_ipv6_addresses_are_recognised_however_they_are_written_and_listed_in_one_form():
    pool = IpPool(["2001:db8::1-2001:db8::2"])
    assert "2001:DB8:0:0::1" in pool and "2001:db8::2" in pool
    assert "10.0.0.1" not in pool and "banana" not in pool
    assert list(pool.addresses()) == ["2001:db8::1", "2001:db8::2"]


@pytest.mark.parametrize("ranges", [["10.0.0.9-10.0.0.1"], ["10.0.0.0/33"], ["10.0.0.1/24"],
                                    ["10.0.0.1-2001:db8::1"], ["banana"], [""],
                                    ["10.0.0.0/24", "10.0.0.200-10.0.1.5"]])
def test_a_malformed_or_overlapping_range_is_refused(ranges):
    with pytest.raises(ValueError):
        IpPool(ranges)


def test_a_pool_too_large_to_keep_every_free_address_is_refused():
    assert IpPool(["10.0.0.0/12"]).size == MAX_POOL_SIZE - 2
    with pytest.raises(ValueError, match="more than"):
        IpPool(["2001:db8::/64"], "WAW1")


# --- where a new server goes ----------------------------------------------------------------

POOLS = {"WAW1": IpPool(["10.1.0.1-10.1.0.2"], "WAW1"), "FRA1": IpPool(["10.2.0.1"], "FRA1"),
         "AMS1": IpPool(["10.3.0.1"], "AMS1")}


def test_a_dedicated_server_goes_only_to_the_datacenter_the_customer_chose():
    assert datacenters_to_try(DEDICATED, {"datacenter": "FRA1"}, POOLS) == ["FRA1"]


def test_a_vps_tries_the_plans_datacenters_in_the_catalogues_order():
    assert datacenters_to_try(VPS_S, {}, POOLS) == [code for code in VPS_S.stock if code in POOLS]


def test_a_datacenter_without_a_pool_or_without_the_plan_is_never_tried():
    assert datacenters_to_try(VPS_S, {}, {"FRA1": POOLS["FRA1"]}) == ["FRA1"]
    assert datacenters_to_try(DEDICATED, {"datacenter": "XYZ1"}, POOLS) == []


def test_a_plans_stock_in_a_datacenter_is_its_servers_less_the_live_orders_there():
    assert has_room(4, 3) and not has_room(4, 4)
    assert has_room(None, 10_000)  # a VPS: only the addresses limit it


def test_out_of_stock_names_the_plan_and_the_datacenter_asked_for():
    refused = out_of_stock(DEDICATED, {"datacenter": "AMS1"})
    assert isinstance(refused, DomainError)
    assert (refused.error_code, refused.status) == ("out_of_stock", 422)
    assert refused.details == {"plan_id": "ded-e2388g", "datacenter": "AMS1"}
