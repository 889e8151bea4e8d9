"""The forecast's rules: the renewal schedule the clock follows, and the balance walked through it."""
from __future__ import annotations

from datetime import date, datetime, timezone

from services.common.money import Money
from services.ledger.forecast import walk
from services.orders import domain
from services.orders.catalogue import load_catalogue
from services.orders.forecast import Renewable, renewal_schedule

CATALOGUE = load_catalogue()
TODAY = date(2026, 12, 5)


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def order(order_id: str, plan_id: str, months: int, paid_until: date | None, *, auto_renew=True,
          status="active", created: int = 0, cancel_at=None, tried_on=None) -> Renewable:
    plan = CATALOGUE.plan(plan_id)
    periods = ()
    if paid_until is not None:
        periods = (domain.PaidPeriod(domain.months_after(paid_until, -months), paid_until, months,
                                     plan.price_for(months)),)
    state = domain.OrderState(plan=plan, period_months=months, created_on=TODAY, status=status,
                              periods=periods, cancel_at=cancel_at, auto_renew=auto_renew)
    return Renewable(order_id, state, datetime(2026, 1, 1, 0, created, tzinfo=timezone.utc), tried_on)


def test_each_order_renews_on_its_last_paid_day_for_its_period_in_date_order():
    schedule = renewal_schedule([order("a", "vps-s", 1, date(2026, 12, 20)),
                                 order("b", "vps-m", 3, date(2026, 12, 10), created=1)], TODAY, horizon_days=120)
    assert [(c.order_id, c.on.isoformat()) for c in schedule] == [
        ("b", "2026-12-09"), ("a", "2026-12-19"), ("a", "2027-01-19"), ("a", "2027-02-19"),
        ("b", "2027-03-09"), ("a", "2027-03-19")]
    assert schedule[0].list_price == CATALOGUE.plan("vps-m").price_for(3)
    assert schedule[0].overdue_on == date(2026, 12, 10) and schedule[0].paid_until == date(2027, 3, 10)
    # each with the ledger key the clock charges it with, so that one already taken is not counted twice
    assert [c.key for c in schedule if c.order_id == "a"] == ["order:a:renew:1", "order:a:renew:2", "order:a:renew:3",
                                                             "order:a:renew:4"]


def test_a_pending_order_counts_first_and_orders_without_auto_renew_or_cancelled_at_the_end_renew_nothing():
    schedule = renewal_schedule([
        order("off", "vps-s", 1, date(2026, 12, 7), auto_renew=False),
        order("ending", "vps-s", 1, date(2026, 12, 7), cancel_at=date(2026, 12, 7)),
        order("renews", "vps-s", 1, date(2026, 12, 7)),
        order("new", "vps-l", 1, None, status="pending_payment", auto_renew=False, created=5)], TODAY, 20)
    assert [(c.order_id, c.kind, c.on.isoformat(), c.key) for c in schedule] == [
        ("new", "payment", "2026-12-05", "order:new:activate"), ("renews", "renewal", "2026-12-06", "order:renews:renew:1")]
    assert renewal_schedule([order("off", "vps-s", 1, date(2026, 12, 7), auto_renew=False)], TODAY) == []


def test_orders_due_the_same_day_renew_in_the_order_they_were_made_and_an_overdue_one_tomorrow_once_tried():
    schedule = renewal_schedule([order("late", "vps-s", 1, date(2026, 12, 8), created=2),
                                 order("early", "vps-s", 1, date(2026, 12, 8), created=1),
                                 order("overdue", "vps-s", 1, date(2026, 12, 4), status="overdue",
                                       tried_on=TODAY)], TODAY, 5)
    assert [(c.order_id, c.on.isoformat(), c.overdue_on.isoformat()) for c in schedule] == [
        ("overdue", "2026-12-06", "2026-12-04"), ("early", "2026-12-07", "2026-12-08"),
        ("late", "2026-12-07", "2026-12-08")]


def test_the_walk_stops_at_the_first_charge_below_the_credit_limit_and_says_what_covers_the_next_days():
    schedule = renewal_schedule([order("a", "vps-s", 1, date(2026, 12, 20)),
                                 order("b", "vps-m", 1, date(2026, 12, 25))], TODAY, 366)
    priced = [(c.to_wire() | {"on": c.on, "overdue_on": c.overdue_on, "paid_until": c.paid_until}, c.list_price)
              for c in schedule]
    forecast = walk(TODAY, eur("20.00"), eur("10.00"), priced, 366)
    wire = forecast.to_wire()
    # 20.00 + 10.00 of credit: 9.90 (a, 19 Dec) leaves 10.10; 18.90 (b, 24 Dec) leaves -8.80; a again (-18.70) cannot
    assert [(r["order_id"], r["amount"]["amount"], r["balance_after"]["amount"]) for r in wire["renewals"]] == [
        ("a", "9.90", "10.10"), ("b", "18.90", "-8.80")]
    assert wire["stops"]["order_id"] == "a" and wire["stops"]["on"] == "2027-01-20"
    assert wire["covered_until"] == "2027-01-20" and wire["days"] == 46 and not wire["renews_nothing"]
    assert forecast.under(47) and not forecast.under(46) and not forecast.under(None)
    # to run 60 days: a (19 Dec, 19 Jan), b (24 Dec, 24 Jan) = 57.60 against 30.00 available
    assert forecast.to_cover(60) == eur("27.60")
    assert forecast.to_cover(10) == eur("0.00")


def test_an_account_that_renews_nothing_says_so_and_has_no_end():
    wire = walk(TODAY, eur("5.00"), eur("0.00"), [], 366).to_wire()
    assert wire["renews_nothing"] and wire["renewals"] == [] and wire["stops"] is None
    assert wire["covered_until"] is None and wire["days"] is None
