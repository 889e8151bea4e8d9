"""The notifier's sender round on its real database (SQLite, or PostgreSQL with TEST_DATABASE=postgres)
against the mail stand-in in a process of its own: what a round costs the relay and the database.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from services.common.clock import FrozenClock
from services.common.database import UnitOfWork, make_engine
from services.common.migrations import upgrade
from services.notifier.application import Sender
from services.notifier.mailer import SmtpMailer
from services.notifier.models import Base, Delivery
from tests.fakes import MailRelay
from tests.integration.test_mailer import connections  # noqa: F401 (fixture)
from tests.support import databases, statements_sent

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 6, 14, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def uow(tmp_path_factory):
    with databases(tmp_path_factory.mktemp("notifier"), services=("notifier",)) as urls:
        upgrade("notifier", urls["notifier"])
        engine = make_engine(urls["notifier"], green=False)
        yield UnitOfWork(engine, "notifier", Base.metadata)
        engine.dispose()


@pytest.fixture(scope="module")
def relay():
    with MailRelay() as stand_in:
        yield stand_in


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


def test_a_round_sends_on_one_connection_and_records_each_result_in_one_statement(uow, relay, connections):
    relay.reset()
    recipients = [f"round-{n}@example.com" for n in range(3)]
    due(uow, *recipients)
    sender = Sender(uow, SmtpMailer(port=relay.port, timeout=5), FrozenClock(NOW))
    with statements_sent(uow.engine) as sent:
        assert sender.send_due() == 3
    assert len(connections) == 1
    assert [len(relay.to(recipient)) for recipient in recipients] == [1, 1, 1]
    assert states(uow, *recipients) == [(recipient, "sent", 1, True, None) for recipient in recipients]
    # The claim reads the due rows once; each result is one UPDATE, not a read and a write.
    assert sum(statement.startswith("SELECT DELIVERIES") for statement in sent) == 1, sent
    assert [statement.split()[0] for statement in sent[-3:]] == ["UPDATE"] * 3, sent

