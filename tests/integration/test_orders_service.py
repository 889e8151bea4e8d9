"""The orders service over real RabbitMQ and a real database, with stand-ins for ledger and profile.

The stand-ins (tests/fakes.py) keep to docs/CONTRACTS.md: ``ledger.price/charge/refund`` with
idempotency keys (same key and arguments: the first result; other arguments: idempotency_conflict), refunds
never beyond their charge, ``balance_changed`` after every movement; ``profile.get`` with
``payments_blocked`` and ``postal_address``. Run on PostgreSQL with TEST_DATABASE=postgres.
"""
from __future__ import annotations

from datetime import date, timedelta

import eventlet
import pytest

from services.common.clock import clock
from services.common.errors import DomainError
from services.common.money import Money
from services.orders.service import OrdersService
from tests.fakes import FakeLedger, FakeProfile
from tests.support import eventually


LEDGER = FakeLedger()     # each test gets fresh ones (the ``orders`` fixture)
PROFILE = FakeProfile()


def customer(balance="0.00", **profile) -> str:
    account_id = PROFILE.add(**profile)
    LEDGER.fund(account_id, balance)
    return account_id


def balance(account_id) -> str:
    return LEDGER.balance(account_id)


def remote_code(excinfo) -> str:
    return excinfo.value.exc_args[0] if hasattr(excinfo.value, "exc_args") else excinfo.value.value


VPS = {"plan_id": "vps-s", "period_months": 1, "fields": {"hostname": "web1.example.com", "os_template": "debian-12"}}


@pytest.fixture
def orders(run_service, rpc_as, monkeypatch, tmp_path):
    """The orders service beside the stand-ins; a slow clock tick unless a test calls it. Called as
    the gateway calls it (the staff's reads go through ``rpc_client``)."""
    global LEDGER, PROFILE
    LEDGER, PROFILE = FakeLedger(), FakeProfile()
    run_service(LEDGER.service())
    run_service(PROFILE.service())
    run_service(OrdersService, ORDERS_TICK_SECONDS=3600,
                ORDERS_IP_POOLS="WAW1=192.0.2.10-192.0.2.12;FRA1=198.51.100.10")
    return rpc_as("gateway").orders


def set_today(monkeypatch, day: date):
    """Move the service's clock (the one module-level clock) to ``day``, noon UTC."""
    from datetime import datetime, timezone
    target = datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc)
    monkeypatch.setattr(clock, "offset", lambda: (target - datetime.now(timezone.utc)).total_seconds())


# --- new orders -------------------------------------------------------------------------

def test_new_order_with_funds_is_active_with_an_ip_and_charged_once(orders):
    account = customer("50.00")
    order = orders.place_order(account, VPS, "key-1")
    assert order["status"] == "active"
    assert order["ip_address"] in {"192.0.2.10", "192.0.2.11", "192.0.2.12", "198.51.100.10"}
    assert order["actions"] == ["renew", "change_plan", "cancel"]
    assert order["cost"] == {"amount": "9.90", "currency": "EUR"}
    assert balance(account) == "40.10"
    replay = orders.place_order(account, VPS, "key-1")
    assert replay == order
    assert balance(account) == "40.10"
    detail = orders.get_customer_order(account, order["id"])
    assert [e["kind"] for e in detail["events"]] == ["created", "paid"]


def test_same_key_with_another_body_is_an_idempotency_conflict(orders):
    account = customer("50.00")
    orders.place_order(account, VPS, "key-1")
    with pytest.raises(DomainError) as excinfo:
        orders.place_order(account, {**VPS, "period_months": 3}, "key-1")
    assert excinfo.value.error_code == "idempotency_conflict"
    assert balance(account) == "40.10"


def test_without_funds_the_order_waits_and_is_paid_when_money_arrives_oldest_first(orders, rpc_client, payment_system):
    account = customer("5.00")
    first = orders.place_order(account, {**VPS, "plan_id": "vps-m"}, None)   # 18.90
    second = orders.place_order(account, VPS, None)                          # 9.90
    assert first["status"] == second["status"] == "pending_payment"
    assert first["ip_address"] is None and first["paid_until"] is None and first["days_left"] == 0
    assert first["actions"] == ["cancel"]
    # 20.00 pays either order, not both; the older one goes first.
    payment_system.ledger.credit_payment(account, {"amount": "15.00", "currency": "EUR"}, "pay-1", "p1")
    eventually(lambda: rpc_client.orders.get_order(first["id"])["status"] == "active", timeout=10)
    eventlet.sleep(1)
    assert rpc_client.orders.get_order(second["id"])["status"] == "pending_payment"
    assert balance(account) == "1.10"
    payment_system.ledger.credit_payment(account, {"amount": "10.00", "currency": "EUR"}, "pay-2", "p2")
    eventually(lambda: rpc_client.orders.get_order(second["id"])["status"] == "active", timeout=10)
    assert balance(account) == "1.20"
    assert rpc_client.orders.get_order(first["id"])["ip_address"] is not None


def test_blocked_company_and_missing_postal_address_are_refused_before_anything_is_written(orders, rpc_client):
    blocked = customer("100.00", payments_blocked=True, profile_type="company")
    no_address = customer("100.00", postal_address=None)
    for account, code in ((blocked, "payments_blocked"), (no_address, "postal_address_required")):
        with pytest.raises(DomainError) as excinfo:
            orders.place_order(account, VPS, "k")
        assert code in str(excinfo.value)
        assert rpc_client.orders.list_orders(account) == {"items": [], "next_cursor": None}
        assert balance(account) == "100.00"


@pytest.mark.parametrize("body, field", [
    ({**VPS, "plan_id": "nope"}, "plan_id"),
    ({**VPS, "period_months": 2}, "period_months"),
    ({**VPS, "period_months": "1"}, "period_months"),
    ({**VPS, "fields": {"hostname": "-bad-", "os_template": "debian-12"}}, "fields.hostname"),
    ({**VPS, "fields": {"hostname": "x" * 5000, "os_template": "debian-12"}}, "fields.hostname"),
    ({**VPS, "fields": {"os_template": "debian-12"}}, "fields.hostname"),
    ({**VPS, "fields": {**VPS["fields"], "datacenter": "WAW1"}}, "fields.datacenter"),
    ({**VPS, "surprise": 1}, "surprise"),
])
def test_bad_orders_are_refused_with_the_field_named(orders, body, field, rpc_client):
    account = customer("100.00")
    with pytest.raises(DomainError) as excinfo:
        orders.place_order(account, body, None)
    assert field in str(excinfo.value)
    assert rpc_client.orders.list_orders(account)["items"] == []
    assert balance(account) == "100.00"


def test_an_exhausted_pool_refuses_before_any_money_moves(orders):
    account = customer("1000.00")
    body = {"plan_id": "ded-e2236", "period_months": 1,
            "fields": {"hostname": "db1", "os_template": "debian-12", "datacenter": "FRA1"}}
    assert orders.place_order(account, body, None)["ip_address"] == "198.51.100.10"
    with pytest.raises(DomainError) as excinfo:
        orders.place_order(account, body, None)
    assert "out_of_stock" in str(excinfo.value)
    assert balance(account) == "931.00"


def test_concurrent_orders_take_free_addresses_one_each_and_never_overfill_the_pools(orders):
    # Five orders at once for four addresses, three in WAW1 and one in FRA1 (the service runs them
    # on concurrent workers); a VPS goes to the first datacenter with room.
    accounts = [customer("100.00") for _ in range(5)]
    replies = [orders.place_order.call_async(account, VPS, None) for account in accounts]
    results = [outcome(reply) for reply in replies]
    placed = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if not isinstance(r, dict)]
    assert sorted(r["ip_address"] for r in placed) == ["192.0.2.10", "192.0.2.11", "192.0.2.12", "198.51.100.10"]
    assert all(r["status"] == "active" for r in placed)
    assert [r.error_code for r in refused] == ["out_of_stock"]
    assert sorted(balance(a) for a in accounts) == ["100.00", "90.10", "90.10", "90.10", "90.10"]


def test_a_movement_asks_the_ledger_for_a_forecast_only_for_an_account_with_an_alert_in_days(orders):
    quiet, alerted = customer("50.00"), customer("50.00")
    LEDGER.alert_in_days[alerted] = 30
    orders.place_order(quiet, VPS)       # its charge's balance_changed says alert_in_days: null
    orders.place_order(alerted, VPS)
    eventually(lambda: alerted in LEDGER.forecasts_asked)
    eventlet.sleep(1)                    # the quiet account's event, handled alongside, had its time
    assert LEDGER.forecasts_asked == [alerted]


# --- renew, change plan, cancel ---------------------------------------------------------

def test_renewal_extends_from_paid_until_and_insufficient_funds_changes_nothing(orders, rpc_client):
    account = customer("20.00")
    order = orders.place_order(account, VPS, None)
    renewed = orders.renew(account, order["id"], {"period_months": 1}, "r1")
    assert date.fromisoformat(renewed["paid_until"]) > date.fromisoformat(order["paid_until"])
    assert balance(account) == "0.20"
    with pytest.raises(DomainError) as excinfo:
        orders.renew(account, order["id"], {"period_months": 1}, "r2")
    assert "insufficient_funds" in str(excinfo.value)
    assert rpc_client.orders.get_order(order["id"])["paid_until"] == renewed["paid_until"]
    assert orders.renew(account, order["id"], {"period_months": 1}, "r1") == renewed   # replay


def test_upgrade_charges_the_quote_and_downgrade_credits_it(orders):
    account = customer("100.00")
    order = orders.place_order(account, VPS, None)
    quote = orders.change_plan_quote(account, order["id"], "vps-m")
    result = orders.change_plan(account, order["id"], {"plan_id": "vps-m"}, "c1")
    assert result["charge"] == quote["charge"] and result["credit"]["amount"] == "0.00"
    assert result["order"]["plan"]["id"] == "vps-m"
    assert result["order"]["paid_until"] == order["paid_until"]
    after_upgrade = Money.of(balance(account), "EUR")
    assert after_upgrade == Money.of("90.10", "EUR") - Money.from_wire(quote["charge"])
    down = orders.change_plan_quote(account, order["id"], "vps-s")
    result = orders.change_plan(account, order["id"], {"plan_id": "vps-s"}, "c2")
    assert result["credit"] == down["credit"] and result["charge"]["amount"] == "0.00"
    assert Money.of(balance(account), "EUR") == after_upgrade + Money.from_wire(down["credit"])


def test_change_to_another_kind_or_while_not_active_is_not_changeable(orders):
    account = customer("100.00")
    order = orders.place_order(account, VPS, None)
    with pytest.raises(DomainError) as excinfo:
        orders.change_plan_quote(account, order["id"], "ded-e2236")
    assert "not_changeable" in str(excinfo.value)


def test_cancel_now_refunds_unused_days_releases_the_ip_and_a_new_key_is_not_cancellable(orders):
    account = customer("100.00")
    order = orders.place_order(account, VPS, None)
    quote = orders.cancel_quote(account, order["id"], "now")
    result = orders.cancel(account, order["id"], {"when": "now"}, "x1")
    assert result["refund"] == quote["refund"]
    assert result["order"]["status"] == "cancelled" and result["order"]["actions"] == []
    assert Money.of(balance(account), "EUR") == Money.of("90.10", "EUR") + Money.from_wire(quote["refund"])
    assert orders.cancel(account, order["id"], {"when": "now"}, "x1") == result
    with pytest.raises(DomainError) as excinfo:
        orders.cancel(account, order["id"], {"when": "now"}, "x2")
    assert "not_cancellable" in str(excinfo.value)
    # the address is free again: the pools' four addresses all go to the next four orders
    again = [orders.place_order(account, VPS, None)["ip_address"] for _ in range(4)]
    assert order["ip_address"] in again and len(set(again)) == 4


def test_cancel_at_end_of_period_keeps_it_active_without_renew(orders):
    account = customer("100.00")
    order = orders.place_order(account, VPS, None)
    result = orders.cancel(account, order["id"], {"when": "end_of_period"}, None)
    assert result["refund"]["amount"] == "0.00"
    assert result["order"]["status"] == "active"
    assert result["order"]["cancel_at"] == order["paid_until"]
    assert result["order"]["actions"] == ["cancel"]


def test_cancelling_a_pending_order_refunds_nothing(orders):
    account = customer("0.00")
    order = orders.place_order(account, VPS, None)
    result = orders.cancel(account, order["id"], {"when": "now"}, None)
    assert result["order"]["status"] == "cancelled" and result["refund"]["amount"] == "0.00"


def test_another_customers_order_is_not_found(orders):
    owner, stranger = customer("100.00"), customer("100.00")
    order = orders.place_order(owner, VPS, None)
    for call in (lambda: orders.get_customer_order(stranger, order["id"]),
                 lambda: orders.renew(stranger, order["id"], {"period_months": 1}, None),
                 lambda: orders.cancel(stranger, order["id"], {"when": "now"}, None),
                 lambda: orders.change_plan_quote(stranger, order["id"], "vps-m"),
                 lambda: orders.get_customer_order(stranger, "x" * 500)):
        with pytest.raises(DomainError) as excinfo:
            call()
        assert "not_found" in str(excinfo.value)
    assert balance(owner) == "90.10"


def test_history_pages_newest_first(orders):
    account = customer("100.00")
    ids = [orders.place_order(account, VPS, None)["id"] for _ in range(3)]
    first = orders.list_history(account, 2, None)
    second = orders.list_history(account, 2, first["next_cursor"])
    assert [o["id"] for o in first["items"] + second["items"]] == ids[::-1]
    assert second["next_cursor"] is None


# --- races ------------------------------------------------------------------------------

def outcome(reply):
    try:
        return reply.result()
    except DomainError as error:
        return error


def test_concurrent_renewals_never_lose_an_update(orders, rpc_client):
    account = customer("100.00")
    order = orders.place_order(account, VPS, None)
    # Sent together: the service runs them on concurrent workers.
    replies = [orders.renew.call_async(account, order["id"], {"period_months": 1}, f"k{index}") for index in range(4)]
    results = [outcome(reply) for reply in replies]
    applied = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if not isinstance(r, dict)]
    assert applied, results
    assert all(r.error_code == "conflict" for r in refused), refused
    final = rpc_client.orders.get_order(order["id"])
    assert [e["kind"] for e in final["events"]].count("renewed") == len(applied)
    assert Money.of(balance(account), "EUR") == (
        Money.of("100.00", "EUR") - Money.of("9.90", "EUR").times(1 + len(applied)))
    from services.orders.domain import months_after
    expected = date.fromisoformat(order["paid_until"])
    for _ in applied:
        expected = months_after(expected, 1)
    assert final["paid_until"] == expected.isoformat()


def test_change_plan_racing_cancel_leaves_order_and_money_consistent(orders, rpc_client):
    account = customer("100.00")
    order = orders.place_order(account, VPS, None)
    change = orders.change_plan.call_async(account, order["id"], {"plan_id": "vps-l"}, None)
    cancel = orders.cancel.call_async(account, order["id"], {"when": "now"}, None)
    outcomes = {"change": outcome(change), "cancel": outcome(cancel)}
    final = rpc_client.orders.get_order(order["id"])
    mine = [t for t in LEDGER.journal if t["account_id"] == account]
    charged = sum(-t["minor"] for t in mine if t["minor"] < 0)
    refunded = sum(t["minor"] for t in mine if t["minor"] > 0)
    assert LEDGER.balances[account] == 10000 - charged + refunded
    kinds = [e["kind"] for e in final["events"]]
    if isinstance(outcomes["cancel"], dict):
        assert final["status"] == "cancelled" and final["ip_address"] == order["ip_address"]
        assert refunded == Money.from_wire(outcomes["cancel"]["refund"]).minor
    else:
        assert outcomes["cancel"].error_code == "conflict" and final["status"] == "active"
        assert refunded == 0
    if isinstance(outcomes["change"], dict):
        assert kinds.count("plan_changed") == 1
        assert charged == 990 + Money.from_wire(outcomes["change"]["charge"]).minor
    else:
        assert outcomes["change"].error_code in {"conflict", "not_changeable"}
        assert kinds.count("plan_changed") == 0 and charged == 990
    assert any(isinstance(o, dict) for o in outcomes.values())


# --- the lifecycle clock ----------------------------------------------------------------

def test_the_clock_moves_an_unpaid_order_to_overdue_suspended_closed_and_frees_its_ip(orders, rpc_client, monkeypatch):
    account = customer("9.90")
    order = orders.place_order(account, VPS, None)
    paid_until = date.fromisoformat(order["paid_until"])
    statuses = []
    for day, expected in ((paid_until - timedelta(days=7), "active"), (paid_until, "overdue"),
                          (paid_until + timedelta(days=3), "suspended"),
                          (paid_until + timedelta(days=17), "closed")):
        set_today(monkeypatch, day)
        _tick()
        statuses.append(rpc_client.orders.get_order(order["id"])["status"])
        assert statuses[-1] == expected, statuses
    events = [e["kind"] for e in rpc_client.orders.get_order(order["id"])["events"]]
    assert events[-3:] == ["overdue", "suspended", "closed"]


def _tick():
    """Run one tick in this process against the service's database (the timer does the same)."""
    from services.common.database import UnitOfWork, make_engine
    from services.common.config import database_url
    from services.orders.application import Orders
    from services.orders.models import Base
    from services.orders.service import CatalogueProvider
    provider = CatalogueProvider()
    provider.setup()
    engine = make_engine(database_url("orders"))
    try:
        return Orders(UnitOfWork(engine, "orders", Base.metadata), provider.catalogue, None, None, clock).tick()
    finally:
        engine.dispose()


def test_auto_renew_pays_from_the_balance_on_the_last_paid_day_by_the_timer(run_service, rpc_client, monkeypatch,
                                                                            rpc_as):
    global LEDGER, PROFILE
    LEDGER, PROFILE = FakeLedger(), FakeProfile()
    run_service(LEDGER.service())
    run_service(PROFILE.service())
    run_service(OrdersService, ORDERS_TICK_SECONDS=0.3)
    orders = rpc_as("gateway").orders
    account = customer("19.80")
    order = orders.place_order(account, {**VPS, "auto_renew": True}, None)
    assert order["auto_renew"] is True
    paid_until = date.fromisoformat(order["paid_until"])
    set_today(monkeypatch, paid_until - timedelta(days=1))
    eventually(lambda: rpc_client.orders.get_order(order["id"])["paid_until"] != order["paid_until"], timeout=10)
    renewed = rpc_client.orders.get_order(order["id"])
    assert renewed["status"] == "active" and balance(account) == "0.00"
    assert [e for e in renewed["events"] if e["kind"] == "renewed"][0]["details"]["automatic"] is True


def test_the_clock_renews_more_orders_than_one_batch_each_once(run_service, rpc_client, monkeypatch, rpc_as):
    # Batches of 3 orders, 2 renewals at once: 8 orders due on one day take three batches, each its
    # own transaction (tests/unit/test_orders_clock.py), and every one is renewed exactly once.
    global LEDGER, PROFILE
    LEDGER, PROFILE = FakeLedger(), FakeProfile()
    run_service(LEDGER.service())
    run_service(PROFILE.service())
    run_service(OrdersService, ORDERS_TICK_SECONDS=0.3, ORDERS_CLOCK_BATCH=3, ORDERS_RENEWALS_AT_ONCE=2,
                ORDERS_IP_POOLS="WAW1=10.0.0.0/28;FRA1=10.1.0.1")
    orders = rpc_as("gateway").orders
    accounts = [customer("19.80") for _ in range(6)] + [customer("9.90") for _ in range(2)]  # 2 cannot pay
    placed = [orders.place_order(account, {**VPS, "auto_renew": True}, None) for account in accounts]
    paid_until = date.fromisoformat(placed[0]["paid_until"])
    set_today(monkeypatch, paid_until - timedelta(days=1))

    def renewals():
        return [[e for e in rpc_client.orders.get_order(order["id"])["events"] if e["kind"] == "renewed"]
                for order in placed]
    eventually(lambda: sum(map(len, renewals())) == 6, timeout=20)
    eventlet.sleep(1.5)  # a few more ticks: nothing is renewed twice, the short balances are not retried today
    assert [len(renewed) for renewed in renewals()] == [1] * 6 + [0] * 2
    assert [balance(account) for account in accounts] == ["0.00"] * 6 + ["0.00"] * 2
