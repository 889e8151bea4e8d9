"""What a mail costs the notifier, on its real database (SQLite, or PostgreSQL with TEST_DATABASE=postgres):
an event's message recorded, and a sender's round against the mail stand-in in a process of its own.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from services.common.clock import FrozenClock
from services.common.database import UnitOfWork, make_engine
from services.common.locks import is_postgres
from services.common.migrations import upgrade
from services.notifier.application import Notifications, Sender
from services.notifier.mailer import SmtpMailer
from services.notifier.models import Base, Delivery, Subscriber
from tests.integration.test_mailer import connections, relay, stand_in  # noqa: F401 (fixtures)
from tests.support import databases, statements_compiled, statements_executed, statements_sent

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 6, 14, 0, tzinfo=timezone.utc)


@pytest.fixture
def uow(tmp_path):
    with databases(tmp_path, services=("notifier",)) as urls:
        upgrade("notifier", urls["notifier"])
        engine = make_engine(urls["notifier"], green=False)
        yield UnitOfWork(engine, "notifier", Base.metadata)
        engine.dispose()


def due(uow, *recipients: str) -> None:
    with uow.transaction() as session:
        for recipient in recipients:
            session.add(Delivery(id=str(uuid.uuid4()), event_id=str(uuid.uuid4()), account_id=None, kind="balance_low",
                                 recipient=recipient, language="en", subject="Balance below your threshold",
                                 text="Hello,\nyour balance is 8.00 EUR.\n", state="pending", attempts=0,
                                 next_attempt_at=NOW - timedelta(seconds=1), created_at=NOW - timedelta(seconds=1)))


def states(uow, *recipients: str) -> list[tuple]:
    with uow.transaction() as session:
        rows = session.scalars(select(Delivery).where(Delivery.recipient.in_(recipients))
                               .order_by(Delivery.seq)).all()
        return [(row.recipient, row.state, row.attempts, row.sent_at is not None, row.last_error) for row in rows]


def deliveries_of(uow, account_id: str) -> list[Delivery]:
    with uow.transaction() as session:
        return session.scalars(select(Delivery).where(Delivery.account_id == account_id)).all()


def test_an_event_s_message_is_recorded_in_one_statement_and_a_redelivery_records_nothing(uow):
    account = str(uuid.uuid4())
    with uow.transaction() as session:   # the copy as profile's events left it (services/notifier/dispatch.py)
        session.add(Subscriber(account_id=account, email="anna@example.com", first_name="Anna", language="en",
                               answered=True))
    notifications = Notifications(uow, profile=None, ledger=None, documents=None, clock=FrozenClock(NOW))
    created = {"event_id": str(uuid.uuid4()), "occurred_at": "2026-12-06T14:00:00Z", "account_id": account,
               "order_id": "ord-1042", "plan_name": "VPS S", "period_months": 1,
               "cost": {"amount": "24.48", "currency": "EUR"}, "status": "active"}
    with statements_sent(uow.engine) as sent:
        delivery_id = notifications.on_event("order_created", created)
    # The copy read, then the event marked processed and its message: on PostgreSQL one statement, the
    # inbox's insert a CTE of the message's (it commits itself), on SQLite two in one transaction.
    assert sent[0].startswith("SELECT SUBSCRIBERS."), sent
    if is_postgres(uow.engine):
        assert len(sent) == 2 and sent[1].startswith("WITH FIRST AS"), sent
    else:
        assert sent[1:] == ["INSERT INTO PROCESSED_MESSAGES (CONSUMER, MESSAGE_ID, PROCESSED_AT) VALUES (?, ?, ?) "
                            "ON CONFLICT DO NOTHING", sent[2]] and sent[2].startswith("INSERT INTO DELIVERIES"), sent
    assert notifications.on_event("order_created", created) is None   # the same event delivered again
    assert [(d.id, d.recipient) for d in deliveries_of(uow, account)] == [(delivery_id, "anna@example.com")]
    compiled, reads = [], []
    for _ in range(2):   # two more events: the second's statements as SQLAlchemy compiled them for the first
        with statements_compiled(uow.engine) as sent, statements_executed(uow.engine) as executed:
            notifications.on_event("order_created", dict(created, event_id=str(uuid.uuid4())))
        compiled.append([form for _, form in sent])
        reads.append(executed[0])
    assert compiled[0] == compiled[1]
    assert reads[0] is reads[1]   # the copy's read built once, not for each event


def test_a_round_sends_on_one_connection_and_records_each_result_in_one_statement(uow, stand_in, connections):
    recipients = [f"round-{n}@example.com" for n in range(3)]
    due(uow, *recipients)
    sender = Sender(uow, SmtpMailer(port=stand_in.port, timeout=5), FrozenClock(NOW))
    with statements_sent(uow.engine) as sent, statements_executed(uow.engine) as built:
        assert sender.send_due() == 3
    assert len(connections) == 1
    assert [len(stand_in.to(recipient)) for recipient in recipients] == [1, 1, 1]
    assert states(uow, *recipients) == [(recipient, "sent", 1, True, None) for recipient in recipients]
    # The claim reads the due rows once; each result is one UPDATE, not a read and a write.
    assert sum(statement.startswith("SELECT DELIVERIES") for statement in sent) == 1, sent
    assert [statement.split()[0] for statement in sent[-3:]] == ["UPDATE"] * 3, sent
    assert built[-3] is built[-2] is built[-1], built   # built once, not for each mail


def test_a_burst_goes_out_in_full_rounds_one_after_another_not_one_round_a_tick(uow, stand_in, connections):
    recipients = [f"burst-{n}@example.com" for n in range(7)]
    due(uow, *recipients)
    sender = Sender(uow, SmtpMailer(port=stand_in.port, timeout=5), FrozenClock(NOW), batch=3)
    with statements_sent(uow.engine) as sent:
        assert sender.send_due() == 7
    assert states(uow, *recipients) == [(recipient, "sent", 1, True, None) for recipient in recipients]
    # Three rounds (3, 3 and the last 1), each its claim and its connection to the relay; the short
    # round is the last.
    assert sum(statement.startswith("SELECT DELIVERIES") for statement in sent) == 3, sent
    assert len(connections) == 3


@pytest.mark.parametrize("mode, spent", [("tempfail", "pending"),   # 451: the relay defers
                                         ("permfail", "failed")])   # 550 to every one: the relay, not the addresses
def test_a_round_the_relay_took_none_of_ends_the_call_and_the_rest_keep_their_attempts(uow, stand_in, mode, spent):
    recipients = [f"{mode}-{n}@example.com" for n in range(4)]
    due(uow, *recipients)
    stand_in.refuse(mode)
    sender = Sender(uow, SmtpMailer(port=stand_in.port, timeout=5), FrozenClock(NOW), batch=2)
    assert sender.send_due() == 0
    assert [(state, attempts) for _, state, attempts, _, _ in states(uow, *recipients)] == \
        [(spent, 1), (spent, 1), ("pending", 0), ("pending", 0)]


def test_an_address_refused_for_good_among_messages_taken_does_not_end_the_call(uow, stand_in):
    recipients = [f"mixed-{n}@example.com" for n in range(5)]
    due(uow, *recipients)
    stand_in.refuse("ok", unknown_recipients=("mixed-1@example.com",))   # 550 5.1.1 at RCPT TO
    sender = Sender(uow, SmtpMailer(port=stand_in.port, timeout=5), FrozenClock(NOW), batch=3)
    assert sender.send_due() == 4   # the first round (3) was full and the relay took two: the next followed
    assert [(recipient, state, attempts, sent) for recipient, state, attempts, sent, _ in states(uow, *recipients)] == \
        [(recipient, "failed" if recipient == "mixed-1@example.com" else "sent", 1,
          recipient != "mixed-1@example.com") for recipient in recipients]
    assert "5.1.1" in states(uow, "mixed-1@example.com")[0][4]
    assert [len(stand_in.to(recipient)) for recipient in recipients] == [1, 0, 1, 1, 1]


def test_full_rounds_stop_at_the_budget_so_a_stopping_service_does_not_wait_for_the_backlog(uow, stand_in):
    recipients = [f"budget-{n}@example.com" for n in range(5)]
    due(uow, *recipients)
    sender = Sender(uow, SmtpMailer(port=stand_in.port, timeout=5), FrozenClock(NOW), batch=2, budget=0)
    assert sender.send_due() == 2   # one full round, then the budget is spent
    assert sender.send_due() == 2 and sender.send_due() == 1
    assert [state for _, state, *_ in states(uow, *recipients)] == ["sent"] * 5
