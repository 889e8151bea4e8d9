"""Nothing lost, nothing doubled: the whole stack on PostgreSQL while its parts die.

Each test breaks something for real in the middle of customers' work (kill -9 a service,
restart the broker, stop the database, a poison event) and ends with the ledger's audit,
the order/charge/invoice/e-mail invariants of checks.books, and a count of e-mails.
Sizes: FAULTS_OPERATIONS (default 100 per fault; the issue's 300 with FAULTS_FULL=1) and
the load test's 1,000 orders with FAULTS_FULL=1 (200 by default, to keep CI short).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from nameko.standalone.events import event_dispatcher
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.faults.checks import VPS, Load, during, drive, new_customer, parked_events, settled
from tests.faults.conftest import STACK_ENV
from tests.support import error_code

FULL = os.environ.get("FAULTS_FULL") == "1"
OPERATIONS = int(os.environ.get("FAULTS_OPERATIONS", 300 if FULL else 100))
POISON = "not an event"
CLIENTS = 10


def report(name: str, load: Load, counts: dict) -> None:
    print(f"\n{name}: statuses {dict(load.statuses)}; {counts}")


def running(world) -> dict[str, int | None]:
    return {process.name: world.stack.pid(process.name) for process in world.stack.processes()}


def load_with_fault(world, fault, killed: str | None = None) -> tuple[Load, dict]:
    # 100.00 each: about ten 9.90 payments, so some customers run dry and leave orders pending.
    clients = [new_customer(world, "100.00") for _ in range(CLIENTS)]
    before = running(world)
    load = Load()
    threads = drive(clients, OPERATIONS, load)
    breaker = during(load, OPERATIONS, fault)
    for thread in [*threads, breaker]:
        thread.join(timeout=600)
    # Nothing but the process the test killed went down with the fault (a RabbitMQ restart
    # once made a service exit on an ack to the vanished broker: services/common/consumer.py).
    exited = {name for name, pid in running(world).items() if pid != before[name] and name != killed}
    assert exited == set(), f"exited during the fault: {exited}"
    counts = settled(world, clients)
    assert load.server_errors == []
    assert counts["active"] > 0 and counts["activation_emails"] == counts["active"]
    assert counts["invoice_emails"] == counts["active"] + counts["renewals"]   # one invoice per charge, each mailed
    assert [e for e in parked_events(world) if POISON not in e["payload"]] == []   # nothing dropped aside
    return load, counts


@pytest.mark.parametrize("service", ["ledger", "orders", "notifier", "ledger_documents"])
def test_a_service_killed_mid_load_loses_and_doubles_nothing(world, service):
    def kill_and_restart():
        world.stack.kill(service)
        time.sleep(2)
        world.stack.restart(service)
    load, counts = load_with_fault(world, kill_and_restart, killed=service)
    report(f"kill -9 {service}", load, counts)


def test_a_broker_restart_mid_load_loses_and_doubles_nothing(world):
    def restart_broker():
        world.rabbit.stop()
        world.rabbit.start()
    load, counts = load_with_fault(world, restart_broker)
    world.stack.wait_healthy(60)
    report("RabbitMQ restart", load, counts)


def due_today(world, order_ids: list[str]) -> None:
    """Their paid period ends tomorrow (UTC), as at a month end: the lifecycle clock renews them today."""
    engine = create_engine(world.postgres.url("orders"), poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("""
            UPDATE order_periods SET ends = d.tomorrow, starts = CAST(d.tomorrow - interval '1 month' AS date),
                                     adjusted_from = CAST(d.tomorrow - interval '1 month' AS date)
            FROM (SELECT CAST(now() AT TIME ZONE 'UTC' AS date) + 1 AS tomorrow) AS d
            WHERE order_id = ANY(:ids)"""), {"ids": order_ids})
    engine.dispose()


def renewed(world, order_ids: list[str]) -> int:
    engine = create_engine(world.postgres.url("orders"), poolclass=NullPool)
    with engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM orders WHERE id = ANY(:ids) AND renewals > 0"),
                                   {"ids": order_ids}).scalar()
    engine.dispose()
    return count


def test_the_month_end_renews_each_order_once_while_orders_then_the_ledger_are_killed(world):
    """The lifecycle clock's automatic renewals, whole accounts a ledger call (``charge_orders``), with a
    kill -9 of orders in the middle of one half and of the ledger in the middle of the other (orders
    first: the renewals it had written wait for their lease meanwhile)."""
    each = 30 if FULL else 6
    clients = [new_customer(world, "1000.00") for _ in range(CLIENTS)]
    placed = {client.profile["id"]: [] for client in clients}
    for client in clients:
        for _ in range(each):
            order = client.post("/api/v1/orders", {**VPS, "auto_renew": True},
                                headers={"Idempotency-Key": uuid.uuid4().hex})
            assert order.status_code == 201 and order.json()["status"] == "active", order.text
            placed[client.profile["id"]].append(order.json()["id"])
    halves = [[order_id for mine in placed.values() for order_id in mine[:each // 2]],
              [order_id for mine in placed.values() for order_id in mine[each // 2:]]]
    caught = {}
    for service, half in zip(("orders", "ledger"), halves):
        due_today(world, half)
        deadline = time.monotonic() + 60
        while renewed(world, half) == 0:   # the first call has landed: others are on their way
            assert time.monotonic() < deadline, "the clock renewed nothing"
            time.sleep(0.05)
        caught[service] = renewed(world, half)
        world.stack.kill(service)
        time.sleep(2)
        world.stack.restart(service)
    everything = [*halves[0], *halves[1]]
    deadline = time.monotonic() + 120   # a killed call's orders wait for their lease (ORDERS_LEASE_SECONDS)
    while renewed(world, everything) < len(everything):
        assert time.monotonic() < deadline, f"{renewed(world, everything)} of {len(everything)} renewed"
        time.sleep(1)
    counts = settled(world, clients, seconds=180)
    assert counts["pending"] == 0 and counts["active"] == CLIENTS * each
    assert counts["renewals"] == CLIENTS * each   # every order renewed once, and charged once (checks.books)
    assert counts["invoice_emails"] == counts["active"] + counts["renewals"]
    print(f"\nmonth end, kill -9 orders after {caught['orders']} of {len(halves[0])} renewed, the ledger after "
          f"{caught['ledger']} of {len(halves[1])}: {counts}")


def test_without_the_database_requests_fail_fast_and_the_services_recover_by_themselves(world):
    client = new_customer(world, "50.00")
    world.postgres.stop()
    stopped = time.monotonic()
    try:
        for method, path, body in (("GET", "/api/v1/profile", None), ("POST", "/api/v1/orders", VPS),
                                   ("GET", "/api/v1/balance", None)):
            started = time.monotonic()
            response = client.request(method, path, body, headers={"Idempotency-Key": uuid.uuid4().hex})
            assert response.status_code == 503, response.text
            assert error_code(response) == "service_unavailable"
            assert time.monotonic() - started < 6   # fast: no hang until a client gives up
        time.sleep(max(0.0, 10 - (time.monotonic() - stopped)))
    finally:
        world.postgres.start()
    deadline = time.monotonic() + 120
    while client.get("/api/v1/profile").status_code != 200:
        assert time.monotonic() < deadline, "the services did not recover without a restart"
        time.sleep(0.5)
    order = client.post("/api/v1/orders", VPS, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert order.status_code == 201 and order.json()["status"] == "active"
    counts = settled(world, [client])
    assert counts["active"] == 1 and counts["pending"] == 0   # the refused order left nothing behind
    print(f"\nPostgreSQL stopped 10 s: {counts}")


def test_a_poison_event_is_dead_lettered_and_does_not_block_the_events_behind_it(world):
    queue = "evt-orders-order_activated--notifier.order_activated"
    poison_id = str(uuid.uuid4())
    dispatch = event_dispatcher({"AMQP_URI": world.rabbit.amqp_uri, "serializer": "json"})
    dispatch("orders", "order_activated", [POISON, poison_id])
    client = new_customer(world, "50.00")
    order = client.post("/api/v1/orders", VPS).json()
    counts = settled(world, [client], seconds=30)   # its activation e-mail arrives while the poison retries
    assert counts["activation_emails"] == 1

    env = {**os.environ, "AMQP_URI": world.rabbit.amqp_uri}   # dead letters are the administrator's
    deadletters = [sys.executable, "-m", "introserv_clients", "deadletters"]   # introserv-ops deadletters
    deadline = time.monotonic() + 120
    while True:
        listed = subprocess.run([*deadletters, "list", "--queue", queue, "--json"],
                                env=env, capture_output=True, text=True, check=True).stdout
        parked = json.loads(listed)["items"]
        if parked or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert [item["payload"] for item in parked] == [[POISON, poison_id]]
    assert parked[0]["attempts"] == int(STACK_ENV["EVENT_MAX_ATTEMPTS"]) and parked[0]["error"]
    replayed = subprocess.run([*deadletters, "replay", "--queue", queue, "--json"],
                              env=env, capture_output=True, text=True, check=True).stdout
    assert json.loads(replayed) == {"replayed": 1}
    assert order["status"] == "active"
    print(f"\npoison event: dead-lettered after {parked[0]['attempts']} attempts, replayed; {counts}")


def test_a_thousand_orders_with_replayed_keys_have_no_5xx_and_no_double_charge(world):
    orders = 1000 if FULL else 200
    clients = [new_customer(world, "10000.00") for _ in range(20)]
    load = Load()
    for thread in drive(clients, orders, load, replay_rate=0.2, renew_rate=0.0):
        thread.join(timeout=900)
    counts = settled(world, clients)
    assert not [s for s in load.statuses if s >= 500], load.unavailable + load.server_errors
    assert load.replays_differing == []
    assert counts["active"] == load.done and counts["pending"] == 0
    assert [e for e in parked_events(world) if POISON not in e["payload"]] == []
    report(f"load, {orders} orders, 20 clients", load, counts)
