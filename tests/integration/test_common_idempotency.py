"""Idempotency keys and the inbox on a real database (services/common): SQLite, or PostgreSQL with
TEST_DATABASE=postgres, where two workers really race for the same key or message."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import eventlet
import pytest
from sqlalchemy import MetaData, func, select

from services.common.clock import FrozenClock
from services.common.database import UnitOfWork, make_engine
from services.common.errors import DomainError
from services.common.idempotency import IdempotencyKeys, KeyedRequest
from services.common.outbox import already_processed, first_delivery
from services.common.tables import add_idempotency_table, add_messaging_tables
from tests.support import databases, on_postgres

metadata = MetaData()
add_messaging_tables(metadata)
add_idempotency_table(metadata)
NOON = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
RENEW = {"order_id": "o-1", "period_months": 1}


@pytest.fixture
def world(tmp_path):
    with databases(tmp_path, services=("common",)) as urls:
        engine = make_engine(urls["common"])
        metadata.create_all(engine)
        uow, clock = UnitOfWork(engine, "common", metadata), FrozenClock(NOON)
        yield uow, clock, IdempotencyKeys(uow, clock, abandoned_after=timedelta(seconds=60))
        engine.dispose()


class Work:
    """Counts how often it ran; answers its count."""

    def __init__(self):
        self.runs = 0

    def __call__(self):
        self.runs += 1
        return {"run": self.runs}


def keyed(key="k-1", request=RENEW) -> KeyedRequest:
    return KeyedRequest.of("a-1", "renew", key, request)


def test_the_same_key_and_request_answer_the_first_answer_and_run_once(world):
    _, _, keys = world
    work = Work()
    assert keys.once(keyed(), work) == {"run": 1}
    assert keys.once(keyed(), work) == {"run": 1}
    assert work.runs == 1
    assert keys.once(keyed("k-2"), work) == {"run": 2}                              # another key
    assert keys.once(KeyedRequest.of("a-2", "renew", "k-1", RENEW), work) == {"run": 3}  # another account


def test_the_same_key_with_another_request_is_an_idempotency_conflict(world):
    _, _, keys = world
    work = Work()
    keys.once(keyed(), work)
    with pytest.raises(DomainError) as refused:
        keys.once(keyed(request={**RENEW, "period_months": 12}), work)
    assert refused.value.error_code == "idempotency_conflict" and work.runs == 1


def test_a_key_still_in_progress_says_when_to_ask_again_until_its_worker_is_taken_for_dead(world):
    uow, clock, keys = world
    with uow.transaction() as session:
        assert keys.claim(session, keyed()) is None          # the first request, still being carried out
    clock.advance(seconds=30)
    with pytest.raises(DomainError) as busy, uow.transaction() as session:
        keys.claim(session, keyed())
    assert busy.value.error_code == "request_in_progress" and busy.value.status == 409
    assert busy.value.details == {"retry_after": 2}
    clock.advance(seconds=29.5)
    with pytest.raises(DomainError) as almost, uow.transaction() as session:
        keys.claim(session, keyed())
    assert almost.value.details == {"retry_after": 1}
    clock.advance(seconds=1)                                   # its claim is older than a minute: taken over
    assert keys.once(keyed(), Work()) == {"run": 1}
    assert keys.once(keyed(), Work()) == {"run": 1}


def test_work_that_fails_answers_nothing_and_keeps_nothing(world):
    _, _, keys = world

    def broken():
        raise RuntimeError("the ledger fell over")
    with pytest.raises(RuntimeError):
        keys.once(keyed(), broken)
    assert keys.once(keyed(), Work()) == {"run": 1}           # the retry runs, not "in progress"


def test_an_answer_kept_by_the_works_own_transaction_is_the_one_kept(world):
    uow, _, keys = world

    def work():
        with uow.transaction() as session:
            keys.remember(session, keyed(), {"kept": "with the work"})
        return {"kept": "after the work"}
    keys.once(keyed(), work)
    assert keys.once(keyed(), Work()) == {"kept": "with the work"}
    with uow.transaction() as session:
        table = session.info["tables"]["idempotency_keys"]
        assert session.scalar(select(func.count()).select_from(table)) == 1


def test_an_answer_for_a_claim_given_up_meanwhile_still_makes_its_row(world):
    # The timer finishes an operation whose request's worker died and whose claim is gone.
    uow, _, keys = world
    with uow.transaction() as session:
        keys.remember(session, keyed(), {"finished": "by the timer"})
    assert keys.once(keyed(), Work()) == {"finished": "by the timer"}


def test_work_done_in_one_transaction_claims_and_answers_in_it(world):
    uow, _, keys = world
    with uow.transaction() as session:
        assert keys.claim(session, keyed()) is None
        keys.remember(session, keyed(), {"recipients": 3})
    with uow.transaction() as session:
        assert keys.claim(session, keyed()) == {"recipients": 3}


def test_the_inbox_records_a_message_once(world):
    uow, _, _ = world
    with uow.transaction() as session:
        assert not already_processed(session, "c", "m-1")
        assert first_delivery(session, "c", "m-1") is True
        assert first_delivery(session, "c", "m-1") is False
        assert already_processed(session, "c", "m-1")
        assert first_delivery(session, "other consumer", "m-1") is True


@pytest.mark.skipif(not on_postgres(), reason="SQLite has one writer: there is no race to lose")
def test_of_two_deliveries_racing_exactly_one_is_first_and_neither_fails(world):
    uow, _, _ = world
    results = []

    def deliver(hold):
        with uow.transaction() as session:
            results.append(first_delivery(session, "c", "m-race"))
            eventlet.sleep(hold)                               # the other insert waits on this one
    pool = eventlet.GreenPool()
    pool.spawn(deliver, 0.3)
    eventlet.sleep(0.1)
    pool.spawn(deliver, 0)
    pool.waitall()
    assert sorted(results) == [False, True]


@pytest.mark.skipif(not on_postgres(), reason="SQLite has one writer: there is no race to lose")
def test_a_request_racing_one_transaction_work_with_its_key_waits_and_gets_its_answer(world):
    uow, _, keys = world
    answers = []

    def first():
        with uow.transaction() as session:
            assert keys.claim(session, keyed()) is None
            eventlet.sleep(0.3)                                # the second claim waits on this row
            keys.remember(session, keyed(), {"recipients": 3})

    def second():
        with uow.transaction() as session:
            answers.append(keys.claim(session, keyed()))
    pool = eventlet.GreenPool()
    pool.spawn(first)
    eventlet.sleep(0.1)
    pool.spawn(second)
    pool.waitall()
    assert answers == [{"recipients": 3}]
