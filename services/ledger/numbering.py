"""The year's invoice numbers, taken by the last statement of a money movement's transaction.

Every charge and refund of the whole system takes the next number of one row per year, and
that row stays locked until the transaction that took it commits. So the number is taken
last: the movement, its postings, the balance and its events are written first, the document
is built without its number, and then one statement takes the number and writes the numbered
invoice and its ``invoice_issued`` event, right before the commit. The row lock is held for
that statement and the commit, not for the charge.

On PostgreSQL that is one statement (data-modifying CTEs: the counter's UPDATE ... RETURNING,
the invoice's INSERT and the outbox's INSERT, the number written into the document and the
event by the database). SQLite has no data-modifying CTE, but one writer at a time holds the
whole database for the whole transaction, so there the same three writes run one after the
other and nothing waits longer for it.

Many charges in one transaction (``charge_orders``: the lifecycle clock's renewals) take their
numbers together, in their order (:func:`issue_numbered_all`): the counter moved once by their
count, then their invoices and events written in one statement each, right before the commit.

Still gap-free: a rolled-back movement rolls its number back with it, and two movements never
read the same counter value (the UPDATE waits for the row).
"""
from __future__ import annotations

import json

from sqlalchemy import insert, text, update
from sqlalchemy.orm import Session

from services.common.locks import insert_first, is_postgres
from services.common.outbox import outbox_row
from services.ledger import invoicing
from services.ledger.models import Invoice, InvoiceCounter

# The number as invoicing.format_number prints it: the year, a slash, the sequence in six digits or more.
_NUMBER_SQL = ("CAST(:year AS text) || '/' || "
               "lpad(CAST(last_seq AS text), greatest(6, length(CAST(last_seq AS text))), '0')")

_TAKE_AND_ISSUE = text(f"""
    WITH next AS (
        UPDATE invoice_counters SET last_seq = last_seq + 1 WHERE year = :year RETURNING last_seq
    ), numbered AS (
        SELECT last_seq, {_NUMBER_SQL} AS number FROM next
    ), invoice AS (
        INSERT INTO invoices (id, account_id, year, number_seq, number, kind, transaction_id, corrects,
                              gross_minor, language, document, issued_at)
        SELECT :id, :account_id, :year, last_seq, number, :kind, :transaction_id, :corrects, :gross_minor,
               :language, CAST(jsonb_set(CAST(:document AS jsonb), '{{number}}', to_jsonb(number)) AS json),
               :issued_at
        FROM numbered
    ), event AS (
        INSERT INTO outbox (event_id, event_type, payload, headers, created_at, published_at)
        SELECT :event_id, :event_type,
               CAST(jsonb_set(CAST(:payload AS jsonb), '{{number}}', to_jsonb(number)) AS text),
               :headers, :created_at, NULL
        FROM numbered
    )
    SELECT number FROM numbered
""")


def issue_numbered(session: Session, invoice: dict, event: dict) -> str:
    """Take the next number of the document's year and write the invoice and its event with it.

    ``invoice``: the ``invoices`` row without ``number_seq`` and ``number`` (its ``document`` built
    with ``number=None``); ``event``: the ``invoice_issued`` data without ``number``. Call it as the
    transaction's last write: everything else is flushed first. Returns the number given.
    """
    session.flush()
    year = invoice["year"]
    if is_postgres(session):
        number = _take_and_issue(session, invoice, event)
        if number is None:  # the year's first document: open its row, then take again
            insert_first(session, InvoiceCounter.__table__, year=year, last_seq=0)
            number = _take_and_issue(session, invoice, event)
        return number
    seq = _take(session, year)
    if seq is None:
        insert_first(session, InvoiceCounter.__table__, year=year, last_seq=0)
        seq = _take(session, year)
    number = invoicing.format_number(year, seq)
    document = {**invoice["document"], "number": number}
    session.execute(insert(Invoice.__table__).values({**invoice, "number_seq": seq, "number": number, "document": document}))
    session.execute(insert(session.info["tables"]["outbox"]).values(
        **outbox_row(session, "invoice_issued", {**event, "number": number})))
    return number


def issue_numbered_all(session: Session, issued: list[tuple[dict, dict]]) -> list[str]:
    """Number many documents at once, as the transaction's last statements (``charge_orders``).

    ``issued``: ``(invoice, event)`` pairs as :func:`issue_numbered` takes them, numbered in the
    list's order. Each year's counter is moved once, by all of its documents, then the invoices
    and their events are written in one statement each: the counter stays locked for three
    statements and the commit, however many documents there are.
    """
    session.flush()
    taken: list[tuple[int, str] | None] = [None] * len(issued)
    for year in dict.fromkeys(invoice["year"] for invoice, _ in issued):
        of_year = [n for n, (invoice, _) in enumerate(issued) if invoice["year"] == year]
        last = _take(session, year, len(of_year))
        if last is None:
            insert_first(session, InvoiceCounter.__table__, year=year, last_seq=0)
            last = _take(session, year, len(of_year))
        for seq, n in enumerate(of_year, start=last - len(of_year) + 1):
            taken[n] = (seq, invoicing.format_number(year, seq))
    if issued:
        session.execute(insert(Invoice.__table__), [
            {**invoice, "number_seq": seq, "number": number, "document": {**invoice["document"], "number": number}}
            for (invoice, _), (seq, number) in zip(issued, taken)])
        session.execute(insert(session.info["tables"]["outbox"]), [
            outbox_row(session, "invoice_issued", {**event, "number": number})
            for (_, event), (_, number) in zip(issued, taken)])
    return [number for _, number in taken]


def _take_and_issue(session: Session, invoice: dict, event: dict) -> str | None:
    row = outbox_row(session, "invoice_issued", {**event, "number": None})
    del row["published_at"]
    return session.execute(_TAKE_AND_ISSUE, {
        **invoice, "document": json.dumps(invoice["document"]), **row}).scalar()


def _take(session: Session, year: int, count: int = 1) -> int | None:
    """Move the year's counter on by ``count``: the last number taken (None: the year has no counter yet)."""
    return session.scalar(update(InvoiceCounter).where(InvoiceCounter.year == year)
                          .values(last_seq=InvoiceCounter.last_seq + count).returning(InvoiceCounter.last_seq)
                          .execution_options(synchronize_session=False))

