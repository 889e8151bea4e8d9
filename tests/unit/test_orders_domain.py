"""Order rules: statuses over time, actions, renewals, plan changes, refunds, IP addresses."""
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from services.common.clock import FrozenClock
from services.common.errors import DomainError, ValidationError
from services.common.money import Money
from services.orders.catalogue import load_catalogue
from services.orders.domain import (
    LifecycleSettings, OrderState, PaidPeriod, Status, actions, activate, advance,
    auto_renewal_due, cancel, change_plan, days_left, days_the_clock_looks_ahead, months_after,
    new_order, quote_cancellation, quote_plan_change, refund_for_unused_days, renew,
    renewal_reminders_due, renewed_until)

CATALOGUE = load_catalogue()
VPS_S = CATALOGUE.plan("vps-s")      # 9.90 a month
VPS_M = CATALOGUE.plan("vps-m")      # 18.90 a month
DEDICATED = CATALOGUE.plan("ded-e2388g")
MARCH_1 = date(2026, 3, 1)           # paid for March: 31 days, paid_until April 1
MARCH_15 = date(2026, 3, 15)
APRIL_1 = date(2026, 4, 1)


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def fields_for(plan) -> dict:
    fields = {"hostname": "web1.example.com", "os_template": "debian-12"}
    if plan.kind == "dedicated":
        fields["datacenter"] = "WAW1"
    return fields


def pending_order(plan=VPS_S, months=1, on=MARCH_1, **changes) -> OrderState:
    return replace(new_order(plan, months, fields_for(plan), on), **changes)


def active_order(plan=VPS_S, months=1, starts=MARCH_1, charged=None, **changes) -> OrderState:
    return replace(activate(pending_order(plan, months, starts), starts, charged), **changes)


def net_of_23_percent_vat(price: Money) -> Money:
    """What a company under the EU reverse charge pays for a list price with 23% VAT."""
    return price.times(Decimal(1) / Decimal("1.23"))


def walk(order: OrderState, start: date, days: int, lifecycle=LifecycleSettings()) -> dict:
    """Run the daily timer for ``days`` days with a frozen clock; the status changes by date."""
    clock = FrozenClock(datetime(start.year, start.month, start.day, 3, tzinfo=timezone.utc))
    changes = {}
    for _ in range(days):
        status = advance(order, clock.today(), lifecycle)
        if status is not None:
            changes[clock.today()] = status
            order = replace(order, status=status)
        clock.advance(days=1)
    return changes


# --- calendar ----------------------------------------------------------------------------

@pytest.mark.parametrize("start, months, expected", [
    (date(2026, 1, 31), 1, date(2026, 2, 28)),
    (date(2028, 1, 31), 1, date(2028, 2, 29)),    # leap year
    (date(2026, 3, 31), 1, date(2026, 4, 30)),
    (date(2026, 8, 31), 6, date(2027, 2, 28)),
    (date(2026, 12, 15), 1, date(2027, 1, 15)),
    (date(2028, 2, 29), 12, date(2029, 2, 28)),   # from a leap day to a common year
    (date(2027, 2, 28), 12, date(2028, 2, 28)),
    (date(2026, 11, 30), 3, date(2027, 2, 28)),
    (date(2026, 3, 1), 12, date(2027, 3, 1)),
])
def test_months_after_keeps_the_day_or_clamps_to_the_month_end(start, months, expected):
    assert months_after(start, months) == expected


def test_days_left_counts_today_and_is_zero_from_paid_until_on():
    assert days_left(APRIL_1, MARCH_1) == 31
    assert days_left(APRIL_1, date(2026, 3, 31)) == 1
    assert days_left(APRIL_1, APRIL_1) == 0
    assert days_left(APRIL_1, date(2026, 5, 1)) == 0
    assert days_left(None, MARCH_1) == 0


def test_renewal_extends_from_paid_until_while_it_is_ahead():
    assert renewed_until(APRIL_1, MARCH_15, 1) == date(2026, 5, 1)


def test_renewal_after_paid_until_extends_from_today():
    assert renewed_until(APRIL_1, date(2026, 4, 5), 3) == date(2026, 7, 5)


def test_renewal_on_paid_until_extends_from_it():
    assert renewed_until(APRIL_1, APRIL_1, 1) == date(2026, 5, 1)


def test_monthly_renewals_from_january_31_settle_on_the_28th():
    order = active_order(starts=date(2026, 1, 31))
    assert order.paid_until == date(2026, 2, 28)
    order = renew(order, date(2026, 2, 20), 1)
    assert order.paid_until == date(2026, 3, 28)


def test_a_yearly_order_taken_on_a_leap_day_ends_on_february_28():
    order = active_order(months=12, starts=date(2028, 2, 29))
    assert order.paid_until == date(2029, 2, 28)
    assert order.periods[0].days == 365


# --- a new order -------------------------------------------------------------------------

def test_a_new_order_waits_for_payment_with_the_fields_it_was_given():
    order = new_order(DEDICATED, 3, fields_for(DEDICATED), MARCH_1, auto_renew=True)
    assert order.status == Status.PENDING_PAYMENT
    assert order.fields == fields_for(DEDICATED)
    assert order.paid_until is None and order.days_left(MARCH_1) == 0
    assert order.cost == eur("346.29")   # 119.00 x 3 less 3%
    assert actions(order) == ["cancel"]


def test_a_new_order_reports_a_bad_period_and_bad_fields_together():
    with pytest.raises(ValidationError) as refused:
        new_order(VPS_S, 2, {"hostname": "-x"}, MARCH_1)
    assert refused.value.fields == {"period_months": ["must be one of 1, 3, 6, 12"],
                                    "fields.hostname": ["is not in the required format"],
                                    "fields.os_template": ["required"]}


def test_payment_activates_an_order_for_its_period_from_today():
    order = activate(pending_order(months=3), MARCH_15)
    assert order.status == Status.ACTIVE
    assert (order.paid_from, order.paid_until) == (MARCH_15, date(2026, 6, 15))
    assert order.periods[0].paid == eur("28.81")
    assert order.days_left(MARCH_15) == 92


def test_activation_remembers_what_the_ledger_actually_charged():
    order = activate(pending_order(), MARCH_1, charged=eur("8.05"))
    assert order.current_period(MARCH_15).paid == eur("8.05")
    assert order.cost == eur("9.90")   # the list price the customer sees


def test_an_order_that_is_not_pending_cannot_be_activated_again():
    with pytest.raises(DomainError) as refused:
        activate(active_order(), MARCH_15)
    assert refused.value.error_code == "conflict"


# --- statuses driven by the calendar -----------------------------------------------------

def test_an_unpaid_order_goes_overdue_then_suspended_then_closed():
    assert walk(active_order(), MARCH_1, 60) == {
        APRIL_1: Status.OVERDUE,             # paid_until reached, not renewed
        date(2026, 4, 4): Status.SUSPENDED,  # 3 days of grace
        date(2026, 4, 18): Status.CLOSED,    # 14 days suspended
    }


def test_grace_and_closing_follow_the_settings():
    lifecycle = LifecycleSettings(grace_days=5, close_after_days=30)
    assert walk(active_order(), MARCH_1, 90, lifecycle) == {
        APRIL_1: Status.OVERDUE, date(2026, 4, 6): Status.SUSPENDED, date(2026, 5, 6): Status.CLOSED}


def test_an_active_order_stays_active_until_paid_until():
    order = active_order()
    assert advance(order, date(2026, 3, 31)) is None
    assert order.days_left(date(2026, 3, 31)) == 1


def test_a_pending_order_is_cancelled_after_seven_days_unpaid():
    assert walk(pending_order(), MARCH_1, 30) == {date(2026, 3, 8): Status.CANCELLED}


def test_the_unpaid_order_limit_follows_the_settings():
    assert walk(pending_order(), MARCH_1, 30, LifecycleSettings(pending_payment_days=2)) == {
        date(2026, 3, 3): Status.CANCELLED}


def test_an_order_cancelled_at_the_end_of_its_period_closes_on_paid_until():
    order = cancel(active_order(), MARCH_15, "end_of_period").order
    assert walk(order, MARCH_15, 40) == {APRIL_1: Status.CLOSED}


def test_when_the_timer_was_down_the_order_jumps_to_the_status_the_dates_call_for():
    assert advance(active_order(), date(2026, 6, 1)) == Status.CLOSED
    assert advance(active_order(status=Status.OVERDUE), date(2026, 4, 10)) == Status.SUSPENDED


@pytest.mark.parametrize("status", [Status.CANCELLED, Status.CLOSED])
def test_an_ended_order_never_moves(status):
    assert advance(active_order(status=status), date(2027, 1, 1)) is None


def test_the_clock_never_moves_an_order_back():
    assert advance(active_order(status=Status.SUSPENDED), date(2026, 4, 2)) is None


def test_renewing_a_suspended_order_makes_it_active_again_from_today():
    order = renew(active_order(status=Status.SUSPENDED), date(2026, 4, 10), 1)
    assert order.status == Status.ACTIVE
    assert order.paid_until == date(2026, 5, 10)
    assert advance(order, date(2026, 4, 11)) is None
    assert walk(order, date(2026, 4, 10), 31) == {date(2026, 5, 10): Status.OVERDUE}


# --- actions -----------------------------------------------------------------------------

@pytest.mark.parametrize("status, expected", [
    (Status.ACTIVE, ["renew", "change_plan", "cancel"]),
    (Status.OVERDUE, ["renew", "cancel"]),
    (Status.SUSPENDED, ["renew", "cancel"]),
    (Status.PENDING_PAYMENT, ["cancel"]),
    (Status.CANCELLED, []),
    (Status.CLOSED, []),
])
def test_actions_follow_the_status(status, expected):
    assert actions(active_order(status=status)) == expected


def test_an_order_cancelled_at_the_end_of_its_period_can_only_be_cancelled_now():
    assert actions(active_order(cancel_at=APRIL_1)) == ["cancel"]


def test_status_can_be_given_as_its_wire_name():
    assert active_order(status="overdue").status == Status.OVERDUE


# --- renewal -----------------------------------------------------------------------------

def test_renewing_ahead_adds_a_period_after_the_current_one_at_the_list_price():
    order = renew(active_order(), MARCH_15, 3)
    assert order.paid_until == date(2026, 7, 1)
    assert order.period_months == 3
    assert order.cost == eur("28.81")
    assert [(p.starts, p.ends, p.paid) for p in order.periods] == [
        (MARCH_1, APRIL_1, eur("9.90")), (APRIL_1, date(2026, 7, 1), eur("28.81"))]


def test_renewing_an_overdue_order_does_not_charge_the_overdue_days():
    order = renew(active_order(status=Status.OVERDUE), date(2026, 4, 3), 1, charged=eur("9.90"))
    assert order.status == Status.ACTIVE
    assert order.periods[-1].starts == date(2026, 4, 3)
    assert order.paid_until == date(2026, 5, 3)


@pytest.mark.parametrize("changes", [
    {"status": Status.PENDING_PAYMENT}, {"status": Status.CANCELLED}, {"status": Status.CLOSED},
    {"cancel_at": APRIL_1},
])
def test_an_order_that_cannot_be_renewed_is_refused_with_409(changes):
    with pytest.raises(DomainError) as refused:
        renew(active_order(**changes), MARCH_15, 1)
    assert (refused.value.error_code, refused.value.status) == ("not_renewable", 409)


def test_renewing_for_a_period_the_plan_is_not_sold_for_is_a_validation_error():
    with pytest.raises(ValidationError) as refused:
        renew(active_order(), MARCH_15, 2)
    assert "period_months" in refused.value.fields


# --- reminders and auto-renewal -----------------------------------------------------------

@pytest.mark.parametrize("today, sent, expected", [
    (date(2026, 3, 24), [], []),        # 8 days left
    (date(2026, 3, 25), [], [7]),       # 7 days left
    (date(2026, 3, 25), [7], []),
    (date(2026, 3, 27), [7], []),       # 5 days left: nothing new
    (date(2026, 3, 29), [7], [3]),
    (date(2026, 3, 31), [7, 3], [1]),
    (date(2026, 3, 31), [7, 3, 1], []),
    (date(2026, 3, 30), [], [3]),       # missed the 7-day one: only the nearest is sent
    (APRIL_1, [], []),                  # paid_until reached: overdue, not a reminder
])
def test_renewal_reminders_go_out_7_3_and_1_days_before_paid_until(today, sent, expected):
    assert renewal_reminders_due(active_order(), today, sent) == expected


@given(days_before=st.integers(min_value=0, max_value=60), auto=st.booleans(), sent=st.sets(st.sampled_from([7, 3, 1])),
       reminders=st.sets(st.integers(min_value=1, max_value=30), min_size=1), renew_before=st.integers(0, 10))
def test_an_active_order_has_nothing_for_the_clock_before_the_days_it_looks_ahead(days_before, auto, sent,
                                                                                    reminders, renew_before):
    """The clock reads only the active orders within this many days of paid_until (lifecycle.py):
    no rule may act on one further out."""
    rules = LifecycleSettings(reminder_days=tuple(reminders), auto_renew_days_before=renew_before)
    order = active_order(auto_renew=auto)
    today = APRIL_1 - timedelta(days=days_before)
    acts = (advance(order, today, rules) is not None or auto_renewal_due(order, today, rules)
            or renewal_reminders_due(order, today, sent, rules) != [])
    if days_before > days_the_clock_looks_ahead(rules):
        assert not acts


def test_the_clock_looks_as_far_ahead_as_the_first_reminder_or_the_automatic_renewal():
    assert days_the_clock_looks_ahead() == 7
    assert days_the_clock_looks_ahead(LifecycleSettings(reminder_days=(3,), auto_renew_days_before=5)) == 5


@pytest.mark.parametrize("changes", [{"cancel_at": APRIL_1}, {"status": Status.OVERDUE},
                                     {"status": Status.CANCELLED}])
def test_no_renewal_reminder_for_an_order_that_will_not_renew(changes):
    assert renewal_reminders_due(active_order(**changes), date(2026, 3, 31), []) == []


def test_auto_renewal_is_tried_from_the_last_paid_day_on():
    order = active_order(auto_renew=True)
    assert not auto_renewal_due(order, date(2026, 3, 30))
    assert auto_renewal_due(order, date(2026, 3, 31))
    assert auto_renewal_due(replace(order, status=Status.OVERDUE), date(2026, 4, 2))


@pytest.mark.parametrize("changes", [{"auto_renew": False}, {"cancel_at": APRIL_1},
                                     {"status": Status.CLOSED}])
def test_no_auto_renewal_when_off_cancelled_or_ended(changes):
    assert not auto_renewal_due(active_order(**{"auto_renew": True, **changes}), date(2026, 3, 31))


# --- plan change --------------------------------------------------------------------------

def test_upgrade_charges_the_difference_for_the_unused_days_rounded_down():
    quote = quote_plan_change(active_order(VPS_S), VPS_M, MARCH_15)
    # (18.90 - 9.90) x 16 / 31 = 4.645...: 16 days (March 16 to 31) of a 31-day period
    assert (quote.charge, quote.credit) == (eur("4.64"), eur("0.00"))
    assert quote.to_wire()["lines"] == [{
        "description": "Upgrade from VPS S to VPS M: 16 days (2026-03-16 to 2026-03-31)",
        "period_from": "2026-03-16", "period_to": "2026-03-31", "days": 16,
        "old_daily_price": "0.3194", "new_daily_price": "0.6097",
        "amount": {"amount": "4.64", "currency": "EUR"}}]


def test_downgrade_credits_unused_days_to_balance_rounded_up():
    quote = quote_plan_change(active_order(VPS_M), VPS_S, MARCH_15)
    assert (quote.charge, quote.credit) == (eur("0.00"), eur("4.65"))
    assert quote.lines[0].amount == eur("-4.65")
    assert quote.lines[0].description.startswith("Downgrade from VPS M to VPS S: 16 days")


def test_plan_change_keeps_paid_until_and_reprices_the_period():
    change = change_plan(active_order(VPS_S), VPS_M, MARCH_15)
    assert change.order.plan == VPS_M
    assert change.order.paid_until == APRIL_1
    assert change.order.cost == eur("18.90")
    period = change.order.periods[0]
    assert (period.paid, period.price) == (eur("14.54"), eur("18.90"))
    assert change.quote.charge == eur("4.64")


def test_plan_change_on_the_last_paid_day_costs_nothing():
    quote = quote_plan_change(active_order(VPS_S), VPS_M, date(2026, 3, 31))
    assert (quote.charge, quote.credit, quote.lines) == (eur("0.00"), eur("0.00"), ())


def test_plan_change_prorates_a_period_paid_ahead_in_full():
    order = renew(active_order(VPS_S), MARCH_1, 3)   # April to June (91 days) for 28.81
    quote = quote_plan_change(order, VPS_M, MARCH_15)
    # March: 4.64 as above; April to June: VPS M for 3 months is 55.00 (18.90 x 3 less 3%,
    # 54.999 rounded), all 91 days unused: 55.00 - 28.81 = 26.19
    assert [line.amount for line in quote.lines] == [eur("4.64"), eur("26.19")]
    assert quote.charge == eur("30.83")


def test_plan_change_for_a_reverse_charge_company_prorates_what_it_pays():
    order = active_order(VPS_S, charged=eur("8.05"))          # 9.90 / 1.23
    quote = quote_plan_change(order, VPS_M, MARCH_15, net_of_23_percent_vat)
    assert quote.charge == eur("3.77")                        # (15.37 - 8.05) x 16 / 31 = 3.778


def test_a_credit_never_exceeds_what_was_paid_for_the_period():
    # Worth 18.90 on VPS M, but only 12.00 was taken for it: the credit stops at what is left of
    # that after VPS S's worth of the 30 unused days (9.5806...): 2.42, not 8.71.
    period = PaidPeriod(MARCH_1, APRIL_1, 1, eur("12.00"), price=eur("18.90"), charged=eur("18.90"))
    quote = quote_plan_change(active_order(VPS_M, periods=(period,)), VPS_S, MARCH_1)
    assert quote.credit == eur("2.42")


@pytest.mark.parametrize("changes, new_plan", [
    ({"status": Status.OVERDUE}, VPS_M),
    ({"status": Status.SUSPENDED}, VPS_M),
    ({"status": Status.PENDING_PAYMENT}, VPS_M),
    ({"status": Status.CANCELLED}, VPS_M),
    ({"cancel_at": APRIL_1}, VPS_M),
    ({}, DEDICATED),     # another kind
    ({}, VPS_S),         # the same plan
])
def test_a_plan_change_that_is_not_allowed_is_refused_with_409(changes, new_plan):
    with pytest.raises(DomainError) as refused:
        quote_plan_change(active_order(VPS_S, **changes), new_plan, MARCH_15)
    assert (refused.value.error_code, refused.value.status) == ("not_changeable", 409)


# --- cancellation and refunds ---------------------------------------------------------------

def test_cancelling_now_refunds_the_unused_whole_days_rounded_up():
    cancelled = cancel(active_order(), MARCH_15, "now")
    assert cancelled.refund == eur("5.11")      # 9.90 x 16 / 31 = 5.109...
    assert cancelled.order.status == Status.CANCELLED
    assert cancelled.order.paid_until == date(2026, 3, 16)   # today was used
    assert cancelled.order.days_left(MARCH_15) == 0
    assert actions(cancelled.order) == []


def test_cancelling_on_the_first_day_keeps_only_that_day():
    assert quote_cancellation(active_order(), MARCH_1) == eur("9.59")   # 9.90 x 30 / 31 = 9.580...


def test_cancelling_on_the_last_paid_day_refunds_nothing():
    assert quote_cancellation(active_order(), date(2026, 3, 31)) == eur("0.00")


def test_refund_is_a_share_of_what_was_charged_not_of_the_list_price():
    assert quote_cancellation(active_order(charged=eur("8.05")), MARCH_15) == eur("4.16")   # 4.154...


def test_a_period_paid_ahead_is_refunded_whole():
    order = renew(active_order(), date(2026, 3, 10), 3)
    cancelled = cancel(order, MARCH_15, "now")
    assert cancelled.refund == eur("5.11") + eur("28.81")
    assert cancelled.order.paid_until == date(2026, 3, 16)


def test_a_refund_after_an_upgrade_is_at_the_new_plan_and_below_what_was_paid():
    upgraded = change_plan(active_order(VPS_S), VPS_M, MARCH_15).order
    refund = quote_cancellation(upgraded, MARCH_15)
    assert refund == eur("9.75")               # paid for the 16 days: 9.90 x 16 / 31 + 4.64 = 9.749...
    assert refund < eur("9.90") + eur("4.64")


@pytest.mark.parametrize("when", ["now", "end_of_period"])
def test_cancelling_a_pending_order_ends_it_at_once_and_refunds_nothing(when):
    cancelled = cancel(pending_order(), MARCH_1, when)
    assert (cancelled.order.status, cancelled.refund) == (Status.CANCELLED, eur("0.00"))


def test_cancelling_at_the_end_of_the_period_refunds_nothing_and_keeps_the_order_running():
    cancelled = cancel(active_order(), MARCH_15, "end_of_period")
    assert cancelled.refund == eur("0.00")
    assert cancelled.order.status == Status.ACTIVE
    assert cancelled.order.cancel_at == APRIL_1
    assert actions(cancelled.order) == ["cancel"]


def test_an_order_cancelled_at_the_end_of_its_period_can_still_be_cancelled_now_with_a_refund():
    scheduled = cancel(active_order(), MARCH_15, "end_of_period").order
    assert cancel(scheduled, MARCH_15, "now").refund == eur("5.11")


def test_cancelling_at_the_end_of_the_period_twice_is_refused():
    scheduled = cancel(active_order(), MARCH_15, "end_of_period").order
    with pytest.raises(DomainError) as refused:
        cancel(scheduled, date(2026, 3, 16), "end_of_period")
    assert (refused.value.error_code, refused.value.status) == ("not_cancellable", 409)


@pytest.mark.parametrize("status", [Status.CANCELLED, Status.CLOSED])
@pytest.mark.parametrize("when", ["now", "end_of_period"])
def test_an_ended_order_cannot_be_cancelled(status, when):
    with pytest.raises(DomainError) as refused:
        quote_cancellation(active_order(status=status), MARCH_15, when)
    assert (refused.value.error_code, refused.value.status) == ("not_cancellable", 409)


def test_a_cancelled_order_cannot_be_cancelled_again():
    cancelled = cancel(active_order(), MARCH_15, "now").order
    with pytest.raises(DomainError) as refused:
        cancel(cancelled, MARCH_15, "now")
    assert refused.value.error_code == "not_cancellable"


@pytest.mark.parametrize("status", [Status.OVERDUE, Status.SUSPENDED])
@pytest.mark.parametrize("when", ["now", "end_of_period"])
def test_an_order_past_paid_until_is_cancelled_at_once_without_refund(status, when):
    cancelled = cancel(active_order(status=status), date(2026, 4, 5), when)
    assert (cancelled.order.status, cancelled.refund) == (Status.CANCELLED, eur("0.00"))


@pytest.mark.parametrize("when", ["later", "", None, "NOW"])
def test_cancelling_needs_now_or_end_of_period(when):
    with pytest.raises(ValidationError) as refused:
        cancel(active_order(), MARCH_15, when)
    assert refused.value.fields == {"when": ["must be now or end_of_period"]}


def test_a_cancellation_quote_changes_nothing():
    order = active_order()
    assert quote_cancellation(order, MARCH_15) == eur("5.11")
    assert order.status == Status.ACTIVE and order.paid_until == APRIL_1


def test_refund_for_unused_days_of_an_overdue_order_is_zero():
    assert refund_for_unused_days(active_order(status=Status.OVERDUE), date(2026, 4, 2)) == eur("0.00")


@settings(max_examples=300, deadline=None)
@given(price=st.integers(min_value=0, max_value=500_000),
       charged=st.integers(min_value=0, max_value=500_000),
       months=st.sampled_from([1, 3, 6, 12]),
       starts=st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)),
       day=st.integers(min_value=-5, max_value=400))
def test_a_refund_never_exceeds_what_was_paid_for_the_period(price, charged, months, starts, day):
    period = PaidPeriod(starts, months_after(starts, months), months, Money(charged, "EUR"),
                        price=Money(price, "EUR"))
    order = replace(active_order(), periods=(period,))
    refund = quote_cancellation(order, starts + timedelta(days=day))
    assert Money.zero("EUR") <= refund <= Money(charged, "EUR")


@settings(max_examples=200, deadline=None)
@given(changes=st.lists(st.tuples(st.integers(min_value=0, max_value=30),
                                  st.sampled_from(["vps-s", "vps-m", "vps-l", "vps-xl"])),
                        max_size=5),
       cancel_after=st.integers(min_value=0, max_value=35),
       reverse_charge=st.booleans())
def test_plan_changes_and_a_refund_never_return_more_than_was_paid(changes, cancel_after, reverse_charge):
    customer_price = net_of_23_percent_vat if reverse_charge else (lambda price: price)
    order = active_order(VPS_M, charged=customer_price(VPS_M.price_for(1)))
    paid = order.periods[0].paid
    today = MARCH_1
    for days_later, plan_id in changes:
        today = min(today + timedelta(days=days_later), date(2026, 3, 31))
        if plan_id == order.plan.id:
            continue
        change = change_plan(order, CATALOGUE.plan(plan_id), today, customer_price)
        paid = paid + change.quote.charge - change.quote.credit
        assert change.quote.charge.minor == 0 or change.quote.credit.minor == 0
        order = change.order
    refund = quote_cancellation(order, today + timedelta(days=cancel_after))
    assert paid.minor >= 0
    assert refund <= paid
