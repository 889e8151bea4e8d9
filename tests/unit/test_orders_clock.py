"""The lifecycle clock's run without a database: batches, one short transaction each, renewals a few at a time.

On a real database, with more orders than one batch: tests/integration/test_orders_service.py
(``test_the_clock_renews_more_orders_than_one_batch_each_once``).
"""
from __future__ import annotations

import contextlib
from datetime import date, datetime, timezone
from types import SimpleNamespace

import eventlet
import pytest

from services.common.errors import DomainError
from services.orders.lifecycle import Batch, LifecycleClock

TODAY = date(2026, 3, 31)


class Transactions:
    """A unit of work that counts the transactions opened and how many were open at once."""

    def __init__(self):
        self.opened = self.open = self.most_open = 0

    @contextlib.contextmanager
    def transaction(self):
        self.opened += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            yield object()
        finally:
            self.open -= 1


class Renewals:
    """Renewals that take a moment, some refused, counting how many ran at once."""

    def __init__(self, refused=()):
        self.refused = set(refused)
        self.done, self.running, self.most_running = [], 0, 0

    def renew_now(self, order_id, months, account_id, automatic=False):
        assert account_id is None and automatic
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            eventlet.sleep(0.002)
            if order_id in self.refused:
                raise DomainError("insufficient_funds", "short")
            self.done.append(order_id)
        finally:
            self.running -= 1


class ScriptedClock(LifecycleClock):
    """The clock over ``total`` live orders ``o0000``... of which every second is due for renewal."""

    def __init__(self, total: int, batch: int, at_once: int, renewals: Renewals):
        self.uow_ = Transactions()
        parts = SimpleNamespace(uow=self.uow_, repository=None, pending=SimpleNamespace(finish_interrupted=lambda: 0),
                                clock=SimpleNamespace(today=lambda: TODAY,
                                                      now=lambda: datetime(2026, 3, 31, 12, tzinfo=timezone.utc)))
        super().__init__(parts, renewals, settings=object(), batch=batch, at_once=at_once)
        self.ids = [f"o{n:04d}" for n in range(total)]
        self.asked_after = []

    def advance_batch(self, session, after, today, now) -> Batch:
        assert self.uow_.open == 1  # inside the batch's own transaction
        self.asked_after.append(after)
        start = 0 if after is None else self.ids.index(after) + 1
        rows = self.ids[start:start + self.batch]
        return Batch(last_id=rows[-1] if rows else after, read=len(rows), moved=len(rows) // 3,
                     due=[(order_id, 1) for order_id in rows if int(order_id[1:]) % 2 == 0])


def test_a_run_reads_every_order_in_batches_each_in_a_transaction_of_its_own():
    clock = ScriptedClock(total=1234, batch=100, at_once=5, renewals=Renewals())
    result = clock.tick()
    assert result["batches"] == 13 and clock.uow_.opened == 13
    assert clock.uow_.most_open == 1                 # never two at once, none held for the run
    assert clock.asked_after == [None] + [f"o{n:04d}" for n in range(99, 1234, 100)]
    assert result["moved"] == 12 * 33 + 11


def test_every_due_order_is_renewed_once_a_few_at_a_time():
    renewals = Renewals()
    result = ScriptedClock(total=1000, batch=64, at_once=8, renewals=renewals).tick()
    assert sorted(renewals.done) == [f"o{n:04d}" for n in range(0, 1000, 2)]
    assert result["renewed"] == 500
    assert 1 < renewals.most_running <= 8


def test_a_refused_renewal_is_counted_out_and_the_others_go_on():
    renewals = Renewals(refused={"o0002", "o0404"})
    result = ScriptedClock(total=500, batch=50, at_once=4, renewals=renewals).tick()
    assert result["renewed"] == 248 and "o0002" not in renewals.done and "o0498" in renewals.done


@pytest.mark.parametrize("total, batches", [(0, 1), (99, 1), (100, 2), (101, 2)])
def test_the_run_stops_after_the_first_batch_that_is_not_full(total, batches):
    assert ScriptedClock(total=total, batch=100, at_once=2, renewals=Renewals()).tick()["batches"] == batches


def test_a_batch_that_fails_lets_the_renewals_already_started_finish_before_the_error_is_raised():
    renewals = Renewals()

    class FailingSecondBatch(ScriptedClock):
        def advance_batch(self, session, after, today, now):
            if after is not None:
                raise RuntimeError("the database went away")
            return super().advance_batch(session, after, today, now)

    with pytest.raises(RuntimeError):
        FailingSecondBatch(total=300, batch=100, at_once=4, renewals=renewals).tick()
    assert sorted(renewals.done) == [f"o{n:04d}" for n in range(0, 100, 2)] and renewals.running == 0
