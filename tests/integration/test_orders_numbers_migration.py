"""Revision 0007 numbers the orders placed before it, in the order they were placed, and new
orders continue the sequence (SQLite, or PostgreSQL with TEST_DATABASE=postgres)."""
from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common.database import make_engine
from services.common.migrations import alembic_config, ensure_database
from services.orders.numbers import next_number
from tests.support import databases

INSERT = text("INSERT INTO orders (id, account_id, plan_id, period_months, status, auto_renew, fields, currency, "
              "renewals, plan_changes, created_at, updated_at) VALUES (:id, 'a1', 'vps-s', 1, 'active', false, "
              "'{}', 'EUR', 0, 0, :at, :at)")


def test_orders_from_before_the_revision_are_numbered_oldest_first_and_unique(tmp_path):
    with databases(tmp_path, services=("orders",)) as urls:
        config = alembic_config("orders", urls["orders"])
        ensure_database(urls["orders"])
        command.upgrade(config, "0004")
        engine = make_engine(urls["orders"], green=False)
        try:
            with engine.begin() as connection:
                for order_id, at in (("o-late", "2026-03-01 10:00:00+00"), ("o-early", "2026-01-01 10:00:00+00"),
                                     ("o-middle", "2026-02-01 10:00:00+00")):
                    connection.execute(INSERT, {"id": order_id, "at": at})
            command.upgrade(config, "head")
            with engine.begin() as connection:
                numbers = dict(connection.execute(text("SELECT id, number FROM orders")).all())
                assert numbers == {"o-early": 1, "o-middle": 2, "o-late": 3}
                with pytest.raises(IntegrityError), connection.begin_nested():
                    connection.execute(text("UPDATE orders SET number = 1 WHERE id = 'o-late'"))
            with Session(engine) as session:
                assert next_number(session) == 4   # PostgreSQL: the sequence starts after them
        finally:
            engine.dispose()
