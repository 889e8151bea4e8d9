"""Order rules: statuses, renewals, plan changes, cancellations and refunds (placement: address_stock.py).

Pure Python without I/O and without a clock of its own: every rule takes ``today`` (the
UTC date, from ``services.common.clock``) and works on an :class:`OrderState` that the
service builds from its tables and stores back.

Paid time
    An order is paid in periods of whole calendar months. A period covers the days
    ``[starts, ends)``: a month bought on 2026-03-01 covers March 1 to 31 and ends on
    2026-04-01, the order's ``paid_until``, the first day not paid for. ``days_left``
    counts today and the days after it up to ``paid_until`` (0 once it is reached).
    A month added to a day its target month lacks ends on that month's last day
    (Jan 31 + 1 month = Feb 28, Feb 29 in a leap year), and the next renewal continues
    from there (Feb 28 + 1 month = Mar 28). A renewal extends from the later of
    paid_until and today, so the days an order spent overdue or suspended are not charged;
    renewing ahead of time adds a period after the current one.

Money
    Every amount in an OrderState is what this customer pays: the list price (VAT
    included) for an individual or outside the EU, the net for a company under the EU
    reverse charge. Each paid period keeps ``paid`` (the money actually taken for it: its
    charge, plus plan-change charges, minus plan-change credits), ``price`` (what the
    whole period is worth on the order's current plan) and what the customer paid for its
    days not used yet: its own charge (``charged``) spread evenly over all its days, plus
    ``adjustment``, the net of its plan changes, spread evenly over the days from
    ``adjusted_from`` (the first unused day at the last change) to its end. On any day,
    what was paid for the days after it is those two shares, exact to a fraction of a cent
    (:meth:`PaidPeriod.paid_for_unused_days`), and never more than ``paid``.

Plan change (proration)
    Only to another plan of the same kind, only while the order is active and not
    scheduled to cancel; paid_until does not move. Today has begun and counts as used on
    the old plan, so a change is prorated over the unused whole days, the days after
    today up to paid_until (the same days a cancellation would refund). For each paid
    period with such days:

        worth  = the new plan's price for the period (as many months) x unused days / days in the period
        amount = worth - what was paid for the unused days

    A positive amount is charged, a negative one credited to the balance, each line
    rounded to the cent in the customer's favour: a charge down, a credit up, and a credit
    never more than was paid for those days. The quote's charge (or credit) is the sum of
    its lines. Afterwards the period holds, for its unused days, what was paid for them
    plus the amount; the plan changes' share is kept to the cent below, so the fraction
    of a cent an earlier day's change left goes with the days already used.

    Each change starts from what was actually paid, not from the old plan's price, so a
    rounding in the customer's favour is granted once and taken into account by the next
    change, never granted again on the way back. What the customer could walk away with
    (the balance plus what cancelling now would refund) never grows, whatever the order
    of renewals, changes and cancellations. A change and the change back the same day
    leave the balance exactly where it was on an order with no change on an earlier day
    (after one, they may cost the customer a cent or two, never pay them). A change to an
    order with no earlier change costs or credits what it always did.

    Example: VPS S (9.90 a month) paid for March 2026 (31 days), changed to VPS M (18.90)
    on March 15: 16 unused days (16 to 31 March), paid for them 9.90 x 16 / 31 =
    5.1096..., worth 18.90 x 16 / 31 = 9.7548..., charge 4.6451... = 4.64; the period
    then holds 5.1096... + 4.64 = 9.7496... for those days. Back to VPS S the same day:
    credit 9.7496... - 5.1096... = 4.64, and the balance is where it was (the rule before
    this one credited 4.65). VPS M bought for March and changed to VPS S on March 15
    credits 9.7548... - 5.1096... = 4.6451... = 4.65.

Refund (cancel now)
    What was paid for the unused whole days of each paid period, rounded up to the cent
    (the customer's favour, once: the order ends), never more than was paid for that
    period; a period paid ahead is refunded whole. Example: VPS S for March cancelled on
    March 15: 9.90 x 16 / 31 = 5.109... = 5.11; after the upgrade above, 9.7496... = 9.75.
    A pending_payment order was never charged and refunds nothing. Cancelling at the end
    of the period refunds nothing: the order runs until paid_until and is closed then.

Lifecycle (a daily timer calls :func:`advance`)
    pending_payment -> cancelled after 7 days unpaid; active -> overdue on paid_until ->
    suspended 3 days later (the grace) -> closed 14 days after that; an active order
    scheduled to cancel is closed on paid_until. Renewal brings an overdue or suspended
    order back to active. The numbers are :class:`LifecycleSettings`.
"""
from __future__ import annotations

import calendar
import math
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Callable, Iterable, Mapping

from services.common.errors import DomainError, ValidationError
from services.common.money import Money
from services.orders.catalogue import Plan


class Status(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    ACTIVE = "active"
    OVERDUE = "overdue"
    SUSPENDED = "suspended"
    CANCELLED = "cancelled"
    CLOSED = "closed"


class Action(StrEnum):
    RENEW = "renew"
    CHANGE_PLAN = "change_plan"
    CANCEL = "cancel"


ENDED = frozenset({Status.CANCELLED, Status.CLOSED})
RENEWABLE = frozenset({Status.ACTIVE, Status.OVERDUE, Status.SUSPENDED})
# The order in which the clock moves a paid order along; it never moves it back.
_CLOCK_ORDER = (Status.ACTIVE, Status.OVERDUE, Status.SUSPENDED, Status.CLOSED)

CANCEL_NOW = "now"
CANCEL_AT_END_OF_PERIOD = "end_of_period"


@dataclass(frozen=True)
class LifecycleSettings:
    """How long each step of an unpaid order's life lasts, in days."""

    grace_days: int = 3               # overdue for this long, then suspended
    close_after_days: int = 14        # suspended for this long, then closed
    pending_payment_days: int = 7     # unpaid new order, then cancelled
    reminder_days: tuple[int, ...] = (7, 3, 1)
    auto_renew_days_before: int = 1   # try the balance on the last paid day


DEFAULT_SETTINGS = LifecycleSettings()


# --- calendar ---------------------------------------------------------------------------

def months_after(start: date, months: int) -> date:
    """The same day ``months`` calendar months later, clamped to the month's last day."""
    year, month_index = divmod(start.month - 1 + months, 12)
    year += start.year
    month = month_index + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def days_left(paid_until: date | None, today: date) -> int:
    """Days from today (counted) to paid_until; 0 once paid_until is reached or when unpaid."""
    if paid_until is None:
        return 0
    return max(0, (paid_until - today).days)


def renewed_until(paid_until: date | None, today: date, months: int) -> date:
    """The new paid_until: ``months`` after the later of paid_until and today."""
    start = today if paid_until is None else max(paid_until, today)
    return months_after(start, months)


# --- state ------------------------------------------------------------------------------

@dataclass(frozen=True)
class PaidPeriod:
    """Days paid for in one go: ``[starts, ends)``, bought as ``months`` months."""

    starts: date
    ends: date
    months: int
    paid: Money                 # taken for these days, after plan-change charges and credits
    price: Money | None = None  # the whole period's worth on the current plan; default: paid
    # What was paid for the days not used yet (see "Money" above): the period's own charge,
    # spread over all its days, and its plan changes' net, spread over the days from
    # adjusted_from on. Defaults: paid, nothing, starts.
    charged: Money | None = None
    adjustment: Money | None = None
    adjusted_from: date | None = None

    def __post_init__(self):
        if self.ends <= self.starts:
            raise ValueError("a paid period ends after it starts")
        defaults = {"price": self.paid, "charged": self.paid,
                    "adjustment": Money.zero(self.paid.currency), "adjusted_from": self.starts}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if not self.starts <= self.adjusted_from <= self.ends:
            raise ValueError("a period's plan changes are spread over days of the period")

    @property
    def days(self) -> int:
        return (self.ends - self.starts).days

    def unused_days(self, today: date) -> int:
        """Whole days of the period after today (today has begun, so it is used)."""
        return max(0, (self.ends - max(self.starts, today + timedelta(days=1))).days)

    def own_charge_share(self, today: date) -> Fraction:
        """The part of the period's own charge for the days after today, in cents, exact."""
        return Fraction(self.charged.minor * self.unused_days(today), self.days)

    def paid_for_unused_days(self, today: date) -> Fraction:
        """What the customer paid for the days after today, in cents, exact: never below 0 nor above ``paid``."""
        unused = self.unused_days(today)
        spread_over = (self.ends - self.adjusted_from).days
        # The days before adjusted_from were already used when the last change was made.
        changes = Fraction(self.adjustment.minor * min(unused, spread_over), spread_over) if spread_over else 0
        return max(min(self.own_charge_share(today) + changes, Fraction(self.paid.minor)), Fraction(0))


@dataclass(frozen=True)
class OrderState:
    """What the rules need to know about one order; the service maps it to and from rows.

    Periods that ended before today change no rule: the service may load only the
    current and later ones, as long as the last one is there (it gives paid_until).
    """

    plan: Plan
    period_months: int
    created_on: date
    status: Status = Status.PENDING_PAYMENT
    periods: tuple[PaidPeriod, ...] = ()
    cancel_at: date | None = None
    auto_renew: bool = False
    fields: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self):
        object.__setattr__(self, "status", Status(self.status))
        object.__setattr__(self, "periods", tuple(sorted(self.periods, key=lambda p: p.starts)))

    @property
    def paid_from(self) -> date | None:
        return self.periods[0].starts if self.periods else None

    @property
    def paid_until(self) -> date | None:
        return self.periods[-1].ends if self.periods else None

    @property
    def cost(self) -> Money:
        """The plan's list price for the order's period (API ``cost``)."""
        return self.plan.price_for(self.period_months)

    @property
    def currency(self) -> str:
        return self.plan.monthly_price.currency

    def current_period(self, today: date) -> PaidPeriod | None:
        """The paid period today falls in, or None."""
        return next((p for p in self.periods if p.starts <= today < p.ends), None)

    def days_left(self, today: date) -> int:
        """Days left as the customer sees them: 0 for an order that ended or was never paid."""
        if self.status in ENDED or self.status == Status.PENDING_PAYMENT:
            return 0
        return days_left(self.paid_until, today)

    def _zero(self) -> Money:
        return Money.zero(self.currency)


def actions(order: OrderState) -> list[str]:
    """What the customer may do with the order now, computed from its status."""
    if order.status in ENDED:
        return []
    if order.cancel_at is not None:
        return [Action.CANCEL.value]
    by_status = {
        Status.ACTIVE: [Action.RENEW, Action.CHANGE_PLAN, Action.CANCEL],
        Status.OVERDUE: [Action.RENEW, Action.CANCEL],
        Status.SUSPENDED: [Action.RENEW, Action.CANCEL],
        Status.PENDING_PAYMENT: [Action.CANCEL],
    }
    return [action.value for action in by_status[order.status]]


# --- new order and payment --------------------------------------------------------------

def new_order(plan: Plan, period_months: int, fields, today: date,
              auto_renew: bool = False) -> OrderState:
    """A pending_payment order, once the period and every field are valid (one error lists all)."""
    problems: dict = {}
    clean_fields: dict = {}
    try:
        plan.price_for(period_months)
    except ValidationError as error:
        problems.update(error.fields)
    try:
        clean_fields = plan.validate_fields(fields)
    except ValidationError as error:
        problems.update(error.fields)
    if problems:
        raise ValidationError(problems)
    return OrderState(plan=plan, period_months=period_months, created_on=today,
                      auto_renew=auto_renew, fields=clean_fields)


def activate(order: OrderState, today: date, charged: Money | None = None) -> OrderState:
    """A paid pending order: active, its first period from today. ``charged``: what the ledger took (default the list price)."""
    if order.status != Status.PENDING_PAYMENT:
        raise DomainError("conflict", f"Only an order awaiting payment can be activated, not a {order.status} one.")
    paid = charged if charged is not None else order.cost
    period = PaidPeriod(today, months_after(today, order.period_months), order.period_months, paid)
    return replace(order, status=Status.ACTIVE, periods=(period,))


# --- renewal ----------------------------------------------------------------------------

def check_renewable(order: OrderState) -> None:
    """Raise not_renewable (409) unless the order is active, overdue or suspended and not scheduled to cancel."""
    if order.status not in RENEWABLE:
        raise DomainError("not_renewable", f"A {order.status.replace('_', ' ')} order cannot be renewed.",
                          details={"status": order.status.value})
    if order.cancel_at is not None:
        raise DomainError("not_renewable", "The order is cancelled at the end of its period and cannot be renewed.",
                          details={"status": order.status.value, "cancel_at": order.cancel_at.isoformat()})


def renew(order: OrderState, today: date, months: int, charged: Money | None = None) -> OrderState:
    """The order renewed for ``months`` (becomes its period), active; ``charged``: what the ledger took."""
    check_renewable(order)
    list_price = order.plan.price_for(months)
    starts = today if order.paid_until is None else max(order.paid_until, today)
    period = PaidPeriod(starts, renewed_until(order.paid_until, today, months), months,
                        charged if charged is not None else list_price)
    return replace(order, status=Status.ACTIVE, period_months=months, periods=order.periods + (period,))


def auto_renewal_due(order: OrderState, today: date, settings: LifecycleSettings = DEFAULT_SETTINGS) -> bool:
    """Whether the timer should try to renew the order from the balance today (retried daily until it ends)."""
    if not order.auto_renew or order.status not in RENEWABLE or order.cancel_at is not None:
        return False
    return days_left(order.paid_until, today) <= settings.auto_renew_days_before


def days_the_clock_looks_ahead(settings: LifecycleSettings = DEFAULT_SETTINGS) -> int:
    """How many days before paid_until an active order first has something for the clock (its first
    reminder, its automatic renewal); before that only the day it is cancelled for can."""
    return max((*settings.reminder_days, settings.auto_renew_days_before))


def renewal_reminders_due(order: OrderState, today: date, already_sent: Iterable[int] = (),
                          settings: LifecycleSettings = DEFAULT_SETTINGS) -> list[int]:
    """The reminder to send today, as ``[days]`` out of 7, 3, 1 days before paid_until, or ``[]``.

    ``already_sent`` are the marks sent for the current paid_until (a renewal starts afresh).
    Only the nearest mark is due: a reminder missed while the timer was down is not sent
    late next to a newer one.
    """
    if order.status != Status.ACTIVE or order.cancel_at is not None:
        return []
    left = days_left(order.paid_until, today)
    if left < 1:
        return []
    window = [mark for mark in sorted(settings.reminder_days) if left <= mark]
    if not window or window[0] in set(already_sent):
        return []
    return [window[0]]


# --- lifecycle clock --------------------------------------------------------------------

def advance(order: OrderState, today: date, settings: LifecycleSettings = DEFAULT_SETTINGS) -> Status | None:
    """The status the dates call for, when it differs from the order's; None when nothing changes.

    It can skip steps (active straight to closed) when the timer has not run for a while.
    """
    if order.status in ENDED:
        return None
    if order.status == Status.PENDING_PAYMENT:
        expires = order.created_on + timedelta(days=settings.pending_payment_days)
        return Status.CANCELLED if today >= expires else None
    paid_until = order.paid_until
    if paid_until is None:
        return None
    if order.cancel_at is not None and today >= order.cancel_at:
        return Status.CLOSED
    suspended_on = paid_until + timedelta(days=settings.grace_days)
    closed_on = suspended_on + timedelta(days=settings.close_after_days)
    if today >= closed_on:
        due = Status.CLOSED
    elif today >= suspended_on:
        due = Status.SUSPENDED
    elif today >= paid_until:
        due = Status.OVERDUE
    else:
        due = Status.ACTIVE
    if _CLOCK_ORDER.index(due) > _CLOCK_ORDER.index(order.status):
        return due
    return None


# --- plan change ------------------------------------------------------------------------

def _per_day(cents: Fraction) -> str:
    per_day = Decimal(cents.numerator) / cents.denominator / 100
    return str(per_day.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class QuoteLine:
    """One paid period's share of a plan change: positive amount charged, negative credited."""

    description: str
    first_day: date
    last_day: date
    days: int
    old_daily_price: str   # what was paid per unused day; decimal string, 4 places: rarely whole cents
    new_daily_price: str   # the new plan's price per day of the period
    amount: Money

    def to_wire(self) -> dict:
        return {"description": self.description, "period_from": self.first_day.isoformat(),
                "period_to": self.last_day.isoformat(), "days": self.days,
                "old_daily_price": self.old_daily_price, "new_daily_price": self.new_daily_price,
                "amount": self.amount.to_wire()}


@dataclass(frozen=True)
class ChangeQuote:
    """What a plan change charges or credits now (one of the two is zero), line by line."""

    charge: Money
    credit: Money
    lines: tuple[QuoteLine, ...]
    plan: Plan | None = None   # the plan changed to

    def to_wire(self) -> dict:
        return {"charge": self.charge.to_wire(), "credit": self.credit.to_wire(),
                "lines": [line.to_wire() for line in self.lines]}


@dataclass(frozen=True)
class PlanChange:
    order: OrderState
    quote: ChangeQuote


def _check_changeable(order: OrderState, new_plan: Plan) -> None:
    if order.status != Status.ACTIVE:
        raise DomainError("not_changeable", f"The plan of a {order.status.replace('_', ' ')} order cannot be changed.",
                          details={"status": order.status.value})
    if order.cancel_at is not None:
        raise DomainError("not_changeable", "The order is cancelled at the end of its period; its plan cannot be changed.",
                          details={"cancel_at": order.cancel_at.isoformat()})
    if new_plan.id == order.plan.id:
        raise DomainError("not_changeable", f"The order is already on {new_plan.name}.",
                          details={"plan_id": new_plan.id})
    if new_plan.kind != order.plan.kind:
        raise DomainError("not_changeable", f"A {order.plan.kind} order can only change to another {order.plan.kind} plan.",
                          details={"plan_id": new_plan.id, "kind": new_plan.kind})


def _prorate(order: OrderState, new_plan: Plan, today: date,
             customer_price: Callable[[Money], Money]) -> tuple[ChangeQuote, tuple[PaidPeriod, ...]]:
    _check_changeable(order, new_plan)
    lines: list[QuoteLine] = []
    periods: list[PaidPeriod] = []
    for period in order.periods:
        if period.ends <= today:
            periods.append(period)
            continue
        if not new_plan.offers(period.months):
            raise DomainError("not_changeable", f"{new_plan.name} is not sold for {period.months}-month periods.",
                              details={"plan_id": new_plan.id, "period_months": period.months})
        new_price = customer_price(new_plan.price_for(period.months))
        unused = period.unused_days(today)
        if not unused:
            periods.append(replace(period, price=new_price))
            continue
        paid_for_unused = period.paid_for_unused_days(today)
        own = period.own_charge_share(today)
        # The plan changes' share to the cent below: what is left of a cent goes with the used days.
        adjustment = math.floor(paid_for_unused - own)
        exact = Fraction(new_price.minor * unused, period.days) - paid_for_unused
        # In the customer's favour: a charge rounded down, a credit up, but never more than was
        # paid for these days. The next change starts from what is then paid, so a rounding is
        # granted once, not again on every change back and forth.
        minor = math.floor(exact) if exact >= 0 else -min(math.ceil(-exact), max(0, math.floor(own + adjustment)))
        amount = Money(minor, period.paid.currency)
        first_day = max(period.starts, today + timedelta(days=1))
        what = "Upgrade" if new_price >= period.price else "Downgrade"
        lines.append(QuoteLine(
            description=(f"{what} from {order.plan.name} to {new_plan.name}: {unused} days "
                         f"({first_day.isoformat()} to {(period.ends - timedelta(days=1)).isoformat()})"),
            first_day=first_day, last_day=period.ends - timedelta(days=1), days=unused,
            old_daily_price=_per_day(paid_for_unused / unused),
            new_daily_price=_per_day(Fraction(new_price.minor, period.days)), amount=amount))
        periods.append(replace(period, price=new_price, paid=period.paid + amount,
                               adjustment=Money(adjustment + minor, amount.currency),
                               adjusted_from=first_day))
    total = sum((line.amount.minor for line in lines), 0)
    zero = order._zero()
    quote = ChangeQuote(charge=Money(total, zero.currency) if total > 0 else zero,
                        credit=Money(-total, zero.currency) if total < 0 else zero,
                        lines=tuple(lines), plan=new_plan)
    return quote, tuple(periods)


def _list_price(price: Money) -> Money:
    return price


def quote_plan_change(order: OrderState, new_plan: Plan, today: date,
                      customer_price: Callable[[Money], Money] = _list_price) -> ChangeQuote:
    """What changing to ``new_plan`` today charges or credits (raises not_changeable, 409).

    ``customer_price`` turns a list price into what this customer pays; the default (the
    list price) is right for everyone but a company under the EU reverse charge, for whom
    the service passes the ledger's net.
    """
    return _prorate(order, new_plan, today, customer_price)[0]


def change_plan(order: OrderState, new_plan: Plan, today: date,
                customer_price: Callable[[Money], Money] = _list_price) -> PlanChange:
    """The order on ``new_plan`` with its periods re-priced, and the quote to charge or credit."""
    quote, periods = _prorate(order, new_plan, today, customer_price)
    return PlanChange(order=replace(order, plan=new_plan, periods=periods), quote=quote)


# --- cancellation -----------------------------------------------------------------------

@dataclass(frozen=True)
class Cancellation:
    order: OrderState
    refund: Money


def _period_refund(period: PaidPeriod, today: date) -> int:
    # Rounded up: the customer's favour, granted once since the order ends; never more than was
    # paid for the period (paid_for_unused_days is capped by it, and paid is whole cents).
    return math.ceil(period.paid_for_unused_days(today))


def refund_for_unused_days(order: OrderState, today: date) -> Money:
    """What cancelling now returns to the balance: the unused whole days of every paid period."""
    if order.status in ENDED or order.status == Status.PENDING_PAYMENT:
        return order._zero()
    return Money(sum(_period_refund(period, today) for period in order.periods), order.currency)


def check_cancellable(order: OrderState, when: str) -> None:
    """Raise validation_error for a bad ``when`` and not_cancellable (409) for an order that cannot be cancelled so."""
    if when not in (CANCEL_NOW, CANCEL_AT_END_OF_PERIOD):
        raise ValidationError({"when": [f"must be {CANCEL_NOW} or {CANCEL_AT_END_OF_PERIOD}"]})
    if order.status in ENDED:
        raise DomainError("not_cancellable", f"The order is already {order.status}.",
                          details={"status": order.status.value})
    if when == CANCEL_AT_END_OF_PERIOD and order.cancel_at is not None:
        raise DomainError("not_cancellable", "The order is already cancelled at the end of its period.",
                          details={"cancel_at": order.cancel_at.isoformat()})


def cancel(order: OrderState, today: date, when: str = CANCEL_NOW) -> Cancellation:
    """The cancelled order and its refund.

    ``now``: cancelled today, the unused whole days refunded, paid time cut to tomorrow.
    ``end_of_period``: an active order keeps running, refunds 0, and is closed at paid_until;
    an order with no paid time ahead (pending, overdue, suspended) is cancelled at once.
    """
    check_cancellable(order, when)
    zero = order._zero()
    if when == CANCEL_AT_END_OF_PERIOD and order.status == Status.ACTIVE:
        return Cancellation(order=replace(order, cancel_at=order.paid_until), refund=zero)
    if order.status == Status.PENDING_PAYMENT:
        return Cancellation(order=replace(order, status=Status.CANCELLED), refund=zero)
    kept: list[PaidPeriod] = []
    refund = 0
    tomorrow = today + timedelta(days=1)
    for period in order.periods:
        part = _period_refund(period, today)
        refund += part
        if period.starts >= tomorrow:
            continue  # paid ahead and refunded whole
        if period.ends > tomorrow:
            period = replace(period, ends=tomorrow, paid=period.paid - Money(part, period.paid.currency),
                             adjusted_from=min(period.adjusted_from, tomorrow))
        kept.append(period)
    cancelled = replace(order, status=Status.CANCELLED, periods=tuple(kept))
    return Cancellation(order=cancelled, refund=Money(refund, zero.currency))


def allocate_refund(amount: Money, charges: Iterable[tuple[str, Money]]) -> list[tuple[str, Money]]:
    """Which charges a refund or credit returns money against: newest first, none beyond what is left of it.

    ``charges`` are ``(charge id, amount still refundable)`` oldest first, as the ledger took
    them; the ledger refuses a refund larger than its charge net of earlier refunds, so a
    credit after an upgrade draws on the upgrade's charge before the period's own.
    """
    left = amount.minor
    parts: list[tuple[str, Money]] = []
    for charge_id, available in reversed(list(charges)):
        if left <= 0:
            break
        part = min(left, available.minor)
        if part > 0:
            parts.append((charge_id, Money(part, amount.currency)))
            left -= part
    if left > 0:
        raise DomainError("refund_exceeds_charge", "The refund is larger than what was charged for the order.",
                          details={"missing": Money(left, amount.currency).to_wire()})
    return parts


def quote_cancellation(order: OrderState, today: date, when: str = CANCEL_NOW) -> Money:
    """The refund a cancellation would give today (raises as :func:`cancel` would)."""
    return cancel(order, today, when).refund
