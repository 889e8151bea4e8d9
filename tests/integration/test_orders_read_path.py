"""The orders list's read path (issue 19, item 1): a page of orders costs two statements, not one per order.

The orders application in this process on a real database (SQLite, or PostgreSQL with
TEST_DATABASE=postgres), as in test_orders_write_path.py.
"""
from __future__ import annotations

import uuid

from tests.integration.test_orders_interrupted import VPS, world  # noqa: F401 (fixture)
from tests.support import statements_sent


def test_a_page_of_twenty_orders_reads_the_orders_and_all_their_periods_in_two_selects(world):
    orders, ledger, clock = world
    account = str(uuid.uuid4())
    ledger.fund(account, "500.00")
    placed = [orders.place_order(account, VPS) for _ in range(20)]
    with statements_sent(orders.uow.engine) as run:
        page = orders.list_orders(account, limit=20)
    assert [statement.split(None, 1)[0] for statement in run] == ["SELECT", "SELECT"]  # the page, then the periods of all its orders; no BEGIN, no COMMIT
    assert [order["id"] for order in page["items"]] == [order["id"] for order in reversed(placed)]
    # Each order still shows its own periods: what it was paid until, as placing it answered.
    assert [order["paid_until"] for order in page["items"]] == [order["paid_until"] for order in reversed(placed)]
    assert all(order["status"] == "active" and order["paid_until"] for order in page["items"])
