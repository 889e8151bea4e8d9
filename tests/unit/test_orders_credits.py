"""Credits never exceed what was paid for the same days: no plan change or cancellation mints money.

A plan change credits or charges the difference between what the unused days are worth on
the new plan and what the customer actually paid for them, so a rounding in the customer's
favour is granted once, not again on every change back and forth (issue 16, item 8).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings, strategies as st

from services.common.errors import DomainError, ValidationError
from services.common.money import Money
from services.orders.catalogue import load_catalogue
from services.orders.domain import (
    OrderState, PaidPeriod, activate, advance, allocate_refund, cancel, change_plan, new_order,
    quote_cancellation, quote_plan_change, refund_for_unused_days, renew)

CATALOGUE = load_catalogue()
VPS_S = CATALOGUE.plan("vps-s")      # 9.90 a month
VPS_M = CATALOGUE.plan("vps-m")      # 18.90 a month
VPS_L = CATALOGUE.plan("vps-l")      # 34.90 a month
MARCH_1 = date(2026, 3, 1)           # paid for March: 31 days
MARCH_15 = date(2026, 3, 15)         # 16 unused days: March 16 to 31
MARCH_20 = date(2026, 3, 20)
APRIL_1 = date(2026, 4, 1)


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def fields_for(plan) -> dict:
    fields = {"hostname": "web1.example.com", "os_template": "debian-12"}
    if plan.kind == "dedicated":
        fields["datacenter"] = "WAW1"
    return fields


def active_order(plan=VPS_S, months=1, starts=MARCH_1, charged=None) -> OrderState:
    return activate(new_order(plan, months, fields_for(plan), starts), starts, charged)


def net_of_23_percent_vat(price: Money) -> Money:
    """What a company under the EU reverse charge pays for a list price with 23% VAT."""
    return price.times(Decimal(1) / Decimal("1.23"))


def round_trips(order: OrderState, there, today: date, times: int) -> tuple[OrderState, Money]:
    """Change to ``there`` and back ``times`` times on ``today``: the order and the balance's change."""
    back, moved = order.plan, Money.zero("EUR")
    for _ in range(times):
        for plan in (there, back):
            change = change_plan(order, plan, today)
            moved = moved - change.quote.charge + change.quote.credit
            order = change.order
    return order, moved


# --- the round trip of the issue ---------------------------------------------------------------

def test_an_upgrade_and_the_downgrade_back_the_same_day_leave_the_balance_where_it_was():
    order = active_order(VPS_S)
    up = change_plan(order, VPS_M, MARCH_15)
    # paid for the 16 days 9.90 x 16 / 31 = 5.1096..., worth on VPS M 9.7548...: 4.6451... rounded down
    assert up.quote.charge == eur("4.64")
    down = quote_plan_change(up.order, VPS_S, MARCH_15)
    # paid for them now 5.1096... + 4.64 = 9.7496..., worth on VPS S 5.1096...: the 4.64 back, not 4.65
    assert down.credit == eur("4.64")
    assert down.to_wire()["lines"] == [{
        "description": "Downgrade from VPS M to VPS S: 16 days (2026-03-16 to 2026-03-31)",
        "period_from": "2026-03-16", "period_to": "2026-03-31", "days": 16,
        "old_daily_price": "0.6094", "new_daily_price": "0.3194",
        "amount": {"amount": "-4.64", "currency": "EUR"}}]


def test_a_hundred_round_trips_move_no_money_and_leave_the_refund_as_it_was():
    order = active_order(VPS_S)
    after, moved = round_trips(order, VPS_M, MARCH_15, 100)
    assert moved == eur("0.00")
    assert after.plan == VPS_S and after.periods[0].paid == eur("9.90")
    assert quote_cancellation(after, MARCH_15) == quote_cancellation(order, MARCH_15) == eur("5.11")


def test_a_downgrade_and_the_upgrade_back_the_same_day_leave_the_balance_where_it_was():
    order = active_order(VPS_M)
    down = change_plan(order, VPS_S, MARCH_15)
    assert down.quote.credit == eur("4.65")     # 9.7548... - 5.1096... = 4.6451..., rounded up once
    up = change_plan(down.order, VPS_M, MARCH_15)
    assert up.quote.charge == eur("4.65")       # 9.7548... - (9.7548... - 4.65): the cent comes back
    assert quote_cancellation(up.order, MARCH_15) == quote_cancellation(order, MARCH_15) == eur("9.76")


def test_round_trips_through_several_plans_move_no_money():
    order = active_order(VPS_S)
    moved = Money.zero("EUR")
    for plan in (VPS_L, VPS_M, VPS_L, VPS_S, VPS_M, VPS_S):
        change = change_plan(order, plan, MARCH_15)
        moved = moved - change.quote.charge + change.quote.credit
        order = change.order
    assert moved == eur("0.00")


def test_round_trips_over_periods_of_different_prices_move_no_money():
    # March for 9.90, then April to June paid ahead for 28.81 (3 months less 3%) and a year
    # from July for 106.92 (12 months less 10%): each period its own line and its own price.
    order = renew(renew(active_order(VPS_S), MARCH_1, 3), MARCH_1, 12)
    up = quote_plan_change(order, VPS_M, MARCH_15)
    # 4.64 for March's 16 days; VPS M for 3 months is 55.00, for 12 months 204.12, paid ahead in full
    assert [line.amount for line in up.lines] == [eur("4.64"), eur("26.19"), eur("97.20")]
    after, moved = round_trips(order, VPS_M, MARCH_15, 10)
    assert moved == eur("0.00")
    assert [p.paid for p in after.periods] == [eur("9.90"), eur("28.81"), eur("106.92")]
    assert quote_cancellation(after, MARCH_15) == eur("5.11") + eur("28.81") + eur("106.92")


def test_round_trips_for_a_reverse_charge_company_move_no_money():
    order = active_order(VPS_S, charged=net_of_23_percent_vat(VPS_S.price_for(1)))     # 8.05
    moved = Money.zero("EUR")
    for _ in range(20):
        for plan in (VPS_M, VPS_S):
            change = change_plan(order, plan, MARCH_15, net_of_23_percent_vat)
            moved = moved - change.quote.charge + change.quote.credit
            order = change.order
    assert moved == eur("0.00")


# --- changes on different days -----------------------------------------------------------------

def test_a_downgrade_days_after_an_upgrade_credits_what_was_paid_for_the_days_left():
    upgraded = change_plan(active_order(VPS_S), VPS_M, MARCH_15).order
    down = quote_plan_change(upgraded, VPS_S, MARCH_20)
    # 11 days left (March 21 to 31): paid for them 9.90 x 11 / 31 + 4.64 x 11 / 16 = 6.7029...,
    # worth on VPS S 3.5129...: 3.19 (the old plan's price would have said 9.00 x 11 / 31 = 3.20)
    assert down.credit == eur("3.19")
    assert down.lines[0].old_daily_price == "0.6094"


def test_a_refund_days_after_an_upgrade_is_what_was_paid_for_the_days_left():
    upgraded = change_plan(active_order(VPS_S), VPS_M, MARCH_15).order
    assert quote_cancellation(upgraded, MARCH_15) == eur("9.75")    # 5.1096... + 4.64, rounded up
    assert quote_cancellation(upgraded, MARCH_20) == eur("6.71")    # 6.7029..., rounded up


def test_a_plain_upgrade_costs_what_it_did_before():
    # No earlier change: what was paid for the unused days is the old plan's price for them.
    for today in (MARCH_1, MARCH_15, MARCH_20, date(2026, 3, 30)):
        unused = (APRIL_1 - today).days - 1
        before = (VPS_M.price_for(1).minor - VPS_S.price_for(1).minor) * unused // 31
        assert quote_plan_change(active_order(VPS_S), VPS_M, today).charge == Money(before, "EUR")


# --- caps --------------------------------------------------------------------------------------

def test_a_period_from_before_these_rules_never_returns_more_than_was_taken_for_it():
    # The migration takes a period's worth on its plan (price) for its own charge. One worth
    # 18.90 on VPS M of which only 10.00 was taken: what was paid for the unused days is at
    # most 10.00, so VPS S (worth 9.5806... for 30 days) credits 0.42, not
    # (18.90 - 9.90) x 30 / 31 = 8.71, and cancelling returns 10.00, not 18.29.
    period = PaidPeriod(MARCH_1, APRIL_1, 1, eur("10.00"), price=eur("18.90"), charged=eur("18.90"))
    order = replace(active_order(VPS_M), periods=(period,))
    assert quote_plan_change(order, VPS_S, MARCH_1).credit == eur("0.42")
    assert quote_cancellation(order, MARCH_1) == eur("10.00")


# --- any sequence ------------------------------------------------------------------------------

KINDS = {"vps": [CATALOGUE.plan(p) for p in ("vps-s", "vps-m", "vps-l", "vps-xl")],
         "dedicated": CATALOGUE.list_plans("dedicated")}

steps = st.lists(st.one_of(
    st.tuples(st.just("wait"), st.integers(min_value=0, max_value=45)),
    st.tuples(st.just("renew"), st.sampled_from([1, 3, 6, 12])),
    st.tuples(st.just("change"), st.integers(min_value=0, max_value=10)),
    st.tuples(st.just("round_trip"), st.integers(min_value=0, max_value=10)),
    st.tuples(st.just("cancel"), st.sampled_from(["now", "end_of_period"]))), max_size=30)


@dataclass
class Account:
    """The ledger as one customer sees it: a balance, and the order's charges with what was refunded of each."""

    balance: int = 0
    charges: list = field(default_factory=list)   # [charge id, amount, refunded]

    def charge(self, amount: Money) -> None:
        self.balance -= amount.minor
        if amount.minor:
            self.charges.append([f"c{len(self.charges)}", amount.minor, 0])

    def give_back(self, amount: Money) -> None:
        """A credit or refund, spread over the charges as orders does; the ledger refuses more than a charge took."""
        if not amount.minor:
            return
        available = [(charge_id, Money(taken - refunded, "EUR")) for charge_id, taken, refunded in self.charges]
        for charge_id, part in allocate_refund(amount, available):
            next(c for c in self.charges if c[0] == charge_id)[2] += part.minor
        self.balance += amount.minor


def plans_priced(monthly_prices: list[int]) -> list:
    """VPS plans at other monthly prices (in cents), down to a cent a month: a day's worth far below a cent."""
    return [replace(VPS_S, id=f"vps-{cents}", name=f"VPS at {cents}", monthly_price=Money(cents, "EUR"))
            for cents in monthly_prices]


@settings(max_examples=400, deadline=None)
@given(plans=st.one_of(st.sampled_from(sorted(KINDS.values(), key=len)),
                       st.lists(st.integers(min_value=1, max_value=30_000), min_size=2, max_size=4,
                                unique=True).map(plans_priced)),
       first_plan=st.integers(min_value=0, max_value=10), months=st.sampled_from([1, 3, 6, 12]),
       starts=st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)),
       reverse_charge=st.booleans(), steps=steps)
def test_no_sequence_of_renewals_plan_changes_and_cancellations_gives_back_more_than_it_took(
        plans, first_plan, months, starts, reverse_charge, steps):
    customer_price = net_of_23_percent_vat if reverse_charge else (lambda price: price)
    plan = plans[first_plan % len(plans)]
    if not plan.offers(months):
        months = 1
    account, today = Account(), starts
    order = activate(new_order(plan, months, fields_for(plan), today), today, customer_price(plan.price_for(months)))
    account.charge(order.periods[0].paid)

    def walk_away() -> int:
        """The balance if the customer cancelled now: it may only ever go down."""
        return account.balance + refund_for_unused_days(order, today).minor

    def change(new_plan) -> None:
        nonlocal order
        quoted = quote_plan_change(order, new_plan, today, customer_price)
        changed = change_plan(order, new_plan, today, customer_price)
        assert changed.quote == quoted                        # the quote is what the change applies
        assert quoted.charge.minor == 0 or quoted.credit.minor == 0
        account.charge(quoted.charge)
        account.give_back(quoted.credit)
        order = changed.order

    before = walk_away()
    assert before <= 0
    for action, argument in steps:
        try:
            if action == "wait":
                today += timedelta(days=argument)
                status = advance(order, today)
                order = order if status is None else replace(order, status=status)
            elif action == "renew":
                price = customer_price(order.plan.price_for(argument))
                order = renew(order, today, argument, price)
                account.charge(price)
            elif action == "change":
                change(plans[argument % len(plans)])
            elif action == "round_trip":
                balance, back = account.balance, order.plan
                change(plans[argument % len(plans)])
                change(back)
                assert account.balance <= balance             # there and back never pays the customer
            else:
                quoted = quote_cancellation(order, today, argument)
                cancelled = cancel(order, today, argument)
                assert cancelled.refund == quoted
                account.give_back(cancelled.refund)
                order = cancelled.order
        except (DomainError, ValidationError) as refused:
            assert getattr(refused, "error_code", "validation_error") in {
                "not_renewable", "not_changeable", "not_cancellable", "validation_error"}
            continue
        now = walk_away()
        assert now <= before, f"{action} {argument} on {today} made the customer {now - before} cents richer"
        before = now
        # credits and refunds never more than the charges: never more money than before the order
        assert account.balance <= 0
        assert all(refunded <= taken for _, taken, refunded in account.charges)
        assert all(0 <= period.paid.minor for period in order.periods)
