"""What recording an event's mail costs the notifier, in process on PostgreSQL (issue 16).

Prints figures, asserts nothing. Each event is an order's "order received" for a customer the
notifier's copy knows: the copy read, then the event marked processed with its message
(``Notifications.on_event``, nothing sent: the sender's rounds are not part of it).

    .venv/bin/python -m bench.notifier [--events 1500]

Needs PostgreSQL as for the tests (``TEST_POSTGRES_URL``, default postgresql://postgres@127.0.0.1:5432/postgres).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

from services.common.clock import clock
from services.common.database import UnitOfWork, make_engine
from services.common.migrations import upgrade
from services.notifier.application import Notifications
from services.notifier.models import Base, Subscriber
from tests import preflight
from tests.support import databases

WARM_UP = 200


def order_created(account_id: str) -> dict:
    return {"event_id": str(uuid.uuid4()), "occurred_at": "2026-12-07T12:00:00Z", "account_id": account_id,
            "order_id": f"ord-{uuid.uuid4().hex[:8]}", "plan_name": "VPS S", "period_months": 1,
            "cost": {"amount": "24.48", "currency": "EUR"}, "status": "active"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1500)
    args = parser.parse_args()
    os.environ["TEST_DATABASE"] = "postgres"
    preflight.require(postgres=True)
    with databases(Path(tempfile.mkdtemp()), services=("notifier",)) as urls:
        upgrade("notifier", urls["notifier"])
        engine = make_engine(urls["notifier"], green=False)
        uow = UnitOfWork(engine, "notifier", Base.metadata)
        account = str(uuid.uuid4())
        with uow.transaction() as session:   # the copy as profile's events leave it
            session.add(Subscriber(account_id=account, email="anna@example.com", first_name="Anna", language="en",
                                   answered=True))
        notifications = Notifications(uow, profile=None, ledger=None, documents=None, clock=clock)
        for _ in range(WARM_UP):
            notifications.on_event("order_created", order_created(account))
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.events):
            notifications.on_event("order_created", order_created(account))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        engine.dispose()
    print(f"PostgreSQL, {args.events} events recorded one after another (after {WARM_UP} to warm up): "
          f"{args.events / elapsed:.1f} a second, {elapsed / args.events * 1000:.2f} ms each, "
          f"{cpu / args.events * 1000:.2f} ms of this process's CPU each")


if __name__ == "__main__":
    main()
