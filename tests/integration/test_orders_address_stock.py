"""The free-address table on a real database (SQLite, or PostgreSQL with TEST_DATABASE=postgres):
filled by the migration and at start, taken without a scan and without waiting, given back.

The rules without a database: tests/unit/test_orders_address_stock.py; concurrent orders through
the service: test_orders_service.py::test_concurrent_orders_take_free_addresses_one_each_and_never_overfill_the_pools.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
from alembic import command
from sqlalchemy import event, insert, select, text, update

from services.common.database import UnitOfWork, make_engine
from services.common.errors import DomainError
from services.common.migrations import alembic_config, upgrade
from services.orders import address_stock
from services.orders.catalogue import load_catalogue
from services.orders.ip_pools import IpPool
from services.orders.models import Base, IpAssignment, IpFreeAddress, Order
from services.orders.numbers import next_number
from tests.support import databases

pytestmark = pytest.mark.integration

CATALOGUE = load_catalogue()
VPS_S = CATALOGUE.plan("vps-s")                # WAW1, then FRA1; no limit but the addresses
DEDICATED = CATALOGUE.plan("ded-epyc")         # 2 servers in FRA1
NOW = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)


@pytest.fixture
def url(tmp_path):
    with databases(tmp_path, services=("orders",)) as urls:
        yield urls["orders"]


@pytest.fixture
def uow(url):
    upgrade("orders", url)
    engine = make_engine(url, green=False)
    yield UnitOfWork(engine, "orders", Base.metadata)
    engine.dispose()


def add_order(session, datacenter: str, ip_address: str | None, plan_id: str = VPS_S.id,
              status: str = "active", numbered: bool = True) -> str:
    """An order row; ``numbered=False`` before revision 0007, which gave orders their numbers."""
    order_id = str(uuid.uuid4())
    number = {"number": next_number(session)} if numbered else {}
    session.execute(insert(Order).values(
        id=order_id, **number, account_id="acct", plan_id=plan_id, period_months=1, status=status, auto_renew=False,
        fields={}, datacenter=datacenter, currency="EUR", renewals=0, plan_changes=0, created_at=NOW,
        updated_at=NOW))
    if ip_address is not None:
        session.execute(insert(IpAssignment).values(ip_address=ip_address, datacenter=datacenter,
                                                    order_id=order_id, assigned_at=NOW))
    return order_id


def free(uow, datacenter: str) -> set[str]:
    with uow.transaction() as session:
        return set(session.scalars(select(IpFreeAddress.ip_address).where(IpFreeAddress.datacenter == datacenter)))


def test_the_migration_fills_the_table_from_the_pools_less_the_addresses_orders_hold(url):
    config = alembic_config("orders", url)
    command.upgrade(config, "0005")
    engine = make_engine(url, green=False)
    try:
        with engine.begin() as connection:
            for address in ("192.0.2.10", "192.0.2.77"):
                add_order(connection, "WAW1", address, numbered=False)
        command.upgrade(config, "head")
        uow = UnitOfWork(engine, "orders", Base.metadata)
        waw = free(uow, "WAW1")
        assert len(waw) == 245 - 2 and not {"192.0.2.10", "192.0.2.77"} & waw
        assert free(uow, "FRA1") == set(CATALOGUE.ip_pools["FRA1"].addresses())
    finally:
        engine.dispose()


def test_a_changed_pool_offers_its_new_addresses_and_no_longer_offers_those_it_lost(uow):
    with uow.transaction() as session:
        address_stock.fill(session, {"WAW1": IpPool(["10.0.0.1-10.0.0.3"], "WAW1")})
        add_order(session, "WAW1", "10.0.0.4")   # held by an order, the pool changes under it
    with uow.transaction() as session:
        counts = address_stock.fill(session, {"WAW1": IpPool(["10.0.0.2-10.0.0.5"], "WAW1")})
    assert free(uow, "WAW1") == {"10.0.0.2", "10.0.0.3", "10.0.0.5"} and counts == {"WAW1": 3}
    assert free(uow, "FRA1") == set()            # the catalogue's pools are not this test's


def test_every_address_is_given_once_then_out_of_stock_and_a_given_back_one_is_given_again(uow):
    pools = {"WAW1": IpPool(["10.0.0.1-10.0.0.2"], "WAW1"), "FRA1": IpPool(["10.1.0.1"], "FRA1")}
    with uow.transaction() as session:
        address_stock.fill(session, pools)
    given, orders = [], []
    for _ in range(3):
        with uow.transaction() as session:
            placement = address_stock.take(session, VPS_S, {}, pools)
            orders.append(add_order(session, placement.datacenter, placement.ip_address))
            given.append((placement.datacenter, placement.ip_address))
    assert sorted(given) == [("FRA1", "10.1.0.1"), ("WAW1", "10.0.0.1"), ("WAW1", "10.0.0.2")]
    assert [dc for dc, _ in given] == ["WAW1", "WAW1", "FRA1"]   # the first datacenter with room first
    with uow.transaction() as session, pytest.raises(DomainError) as refused:
        address_stock.take(session, VPS_S, {}, pools)
    assert refused.value.error_code == "out_of_stock"
    with uow.transaction() as session:
        address_stock.give_back(session, orders[-1], pools)
        address_stock.give_back(session, orders[-1], pools)      # twice: nothing more
    assert free(uow, "FRA1") == {"10.1.0.1"}
    with uow.transaction() as session:
        assert address_stock.take(session, VPS_S, {}, pools).ip_address == "10.1.0.1"


def test_a_dedicated_plan_counts_only_its_live_orders_in_the_datacenter_against_its_stock(uow):
    pools = {"FRA1": IpPool(["10.1.0.1-10.1.0.9"], "FRA1")}
    fields = {"datacenter": "FRA1"}
    with uow.transaction() as session:
        address_stock.fill(session, pools)
        add_order(session, "FRA1", None, plan_id=DEDICATED.id, status="closed")      # ended: not counted
        add_order(session, "FRA1", None, plan_id="ded-e2236")                         # another plan
        first = add_order(session, "FRA1", address_stock.take(session, DEDICATED, fields, pools).ip_address,
                          plan_id=DEDICATED.id)
    with uow.transaction() as session:
        add_order(session, "FRA1", address_stock.take(session, DEDICATED, fields, pools).ip_address,
                  plan_id=DEDICATED.id)
    with uow.transaction() as session, pytest.raises(DomainError) as refused:
        address_stock.take(session, DEDICATED, fields, pools)
    assert refused.value.details == {"plan_id": DEDICATED.id, "datacenter": "FRA1"}
    with uow.transaction() as session:
        session.execute(update(Order).where(Order.id == first).values(status="cancelled"))
        address_stock.give_back(session, first, pools)
    with uow.transaction() as session:
        assert address_stock.take(session, DEDICATED, fields, pools).datacenter == "FRA1"


def test_a_second_order_takes_another_address_without_waiting_for_the_first_to_commit(uow):
    if uow.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: the second order waits for the first there by design")
    pools = {"WAW1": IpPool(["10.0.0.1-10.0.0.2"], "WAW1")}
    with uow.transaction() as session:
        address_stock.fill(session, pools)
    with uow.transaction() as first:
        mine = address_stock.take(first, VPS_S, {}, pools)          # not committed yet
        with uow.transaction() as second:
            second.execute(text("SET LOCAL lock_timeout = '1s'"))  # waiting would fail the test
            theirs = address_stock.take(second, VPS_S, {}, pools)
            with pytest.raises(DomainError):
                address_stock.take(second, VPS_S, {}, pools)       # the first one's is not free
            second.rollback()
    assert {mine.ip_address, theirs.ip_address} == {"10.0.0.1", "10.0.0.2"}


def test_taking_an_address_reads_neither_every_assignment_nor_a_global_lock(uow):
    pools = {"WAW1": IpPool(["10.0.0.1-10.0.0.9"], "WAW1")}
    with uow.transaction() as session:
        address_stock.fill(session, pools)
    sent = []
    listener = lambda conn, cursor, statement, *rest: sent.append(" ".join(statement.split()))  # noqa: E731
    event.listen(uow.engine, "before_cursor_execute", listener)
    try:
        with uow.transaction() as session:
            address_stock.take(session, VPS_S, {}, pools)
    finally:
        event.remove(uow.engine, "before_cursor_execute", listener)
    taken = [statement for statement in sent if "ip_free_addresses" in statement]
    assert len(taken) == 1 and taken[0].startswith("DELETE FROM ip_free_addresses")
    assert not [statement for statement in sent if "ip_assignments" in statement or "advisory" in statement]
    if uow.engine.dialect.name == "postgresql":
        assert "FOR UPDATE SKIP LOCKED" in taken[0]
