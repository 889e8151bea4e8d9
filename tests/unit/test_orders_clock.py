"""The lifecycle clock's run without a database: batches, one short transaction each, renewals in calls of
whole accounts, a few calls at a time.

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
    """Calls of renewals that take a moment (every fourth order longer), some orders refused and some
    calls failing, counting how many calls ran at once; ``done`` in the order the orders were renewed,
    ``calls`` the orders of each call."""

    def __init__(self, refused=(), failing=()):
        self.refused, self.failing = set(refused), set(failing)
        self.done, self.calls, self.running, self.most_running = [], [], 0, 0
        self.accounts_running: list[str] = []

    def renew_many(self, due, still_due=None):
        self.calls.append([order_id for order_id, _ in due])
        accounts = {account_of(order_id) for order_id, _ in due}
        assert not accounts & set(self.accounts_running), "an account's renewals in two calls at once"
        self.accounts_running += accounts
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            eventlet.sleep(0.004 if int(due[0][0][1:]) % 4 == 0 else 0.001)
            if due[0][0] in self.failing:
                raise RuntimeError("the ledger went away")
            renewed = [order_id for order_id, months in due if months == 1 and order_id not in self.refused]
            self.done += renewed
            return len(renewed)
        finally:
            self.running -= 1
            for account in accounts:
                self.accounts_running.remove(account)


class ScriptedClock(LifecycleClock):
    """The clock over ``total`` live orders ``o0000``... of which every ``due_every``-th is due for renewal.

    Orders ``o0000`` to ``o0009`` belong to one account, the next ten to another, and so on; the
    renewals are made in calls of whole accounts, at least ``per_call`` renewals each.
    """

    def __init__(self, total: int, batch: int, at_once: int, renewals: Renewals, per_call: int = 7,
                 due_every: int = 2):
        self.uow_ = Transactions()
        parts = SimpleNamespace(uow=self.uow_, repository=None, pending=SimpleNamespace(finish_interrupted=lambda: 0),
                                clock=SimpleNamespace(today=lambda: TODAY,
                                                      now=lambda: datetime(2026, 3, 31, 12, tzinfo=timezone.utc)))
        super().__init__(parts, renewals, settings=object(), batch=batch, at_once=at_once, per_call=per_call)
        self.ids = [f"o{n:04d}" for n in range(total)]
        self.due_every = due_every
        self.asked_after = []

    def advance_batch(self, session, after, today, now) -> Batch:
        assert self.uow_.open == 1  # inside the batch's own transaction
        self.asked_after.append(after)
        start = 0 if after is None else self.ids.index(after[2]) + 1
        rows = self.ids[start:start + self.batch]
        return Batch(last=(account_of(rows[-1]), None, rows[-1]) if rows else after, read=len(rows),
                     moved=len(rows) // 3,
                     due=[(account_of(order_id), order_id, 1) for order_id in rows
                          if int(order_id[1:]) % self.due_every == 0])


def account_of(order_id: str) -> str:
    return f"a{int(order_id[1:]) // 10:03d}"


def test_a_run_reads_every_order_in_batches_each_in_a_transaction_of_its_own():
    clock = ScriptedClock(total=1234, batch=100, at_once=5, renewals=Renewals())
    result = clock.tick()
    assert result["batches"] == 13 and clock.uow_.opened == 13
    assert clock.uow_.most_open == 1                 # never two at once, none held for the run
    assert [after and after[2] for after in clock.asked_after] == [None] + [f"o{n:04d}" for n in range(99, 1234, 100)]
    assert result["moved"] == 12 * 33 + 11


def test_every_due_order_is_renewed_once_in_calls_of_whole_accounts_a_few_at_a_time():
    renewals = Renewals()
    result = ScriptedClock(total=1000, batch=64, at_once=8, renewals=renewals).tick()
    assert sorted(renewals.done) == [f"o{n:04d}" for n in range(0, 1000, 2)]
    assert result["renewed"] == 500
    assert 1 < renewals.most_running <= 8
    # five due orders an account, at least seven a call: two accounts a call, the last one what is left
    assert [len(call) for call in renewals.calls] == [10] * 50
    assert all(len({account_of(order_id) for order_id in call}) == 2 for call in renewals.calls)


def test_one_accounts_renewals_are_made_one_after_the_other_in_the_order_its_orders_were_placed():
    renewals = Renewals()
    ScriptedClock(total=1000, batch=64, at_once=8, renewals=renewals).tick()   # accounts span batches
    for account in {account_of(order_id) for order_id in renewals.done}:
        mine = [order_id for order_id in renewals.done if account_of(order_id) == account]
        assert mine == sorted(mine), account
    assert renewals.most_running <= 8


def test_an_account_with_more_due_than_one_call_takes_is_charged_in_calls_one_after_the_other():
    renewals = Renewals()   # every order due: ten an account; a call from three on, at most six
    ScriptedClock(total=40, batch=8, at_once=4, renewals=renewals, per_call=3, due_every=1).tick()
    assert sorted(renewals.done) == [f"o{n:04d}" for n in range(40)]
    assert sorted(len(call) for call in renewals.calls) == [4] * 4 + [6] * 4
    for account in {account_of(order_id) for order_id in renewals.done}:
        mine = [order_id for order_id in renewals.done if account_of(order_id) == account]
        assert mine == sorted(mine), account   # and never two of its calls at once: Renewals.renew_many


def test_a_refused_renewal_is_counted_out_and_the_others_go_on():
    renewals = Renewals(refused={"o0002", "o0404"})
    result = ScriptedClock(total=500, batch=50, at_once=4, renewals=renewals).tick()
    assert result["renewed"] == 248 and "o0002" not in renewals.done and "o0498" in renewals.done


def test_a_call_that_fails_is_counted_out_and_the_other_calls_go_on():
    renewals = Renewals(failing={"o0020"})   # the call of accounts a002 and a003
    result = ScriptedClock(total=500, batch=50, at_once=4, renewals=renewals).tick()
    assert result["renewed"] == 240 and "o0020" not in renewals.done and "o0040" in renewals.done


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
