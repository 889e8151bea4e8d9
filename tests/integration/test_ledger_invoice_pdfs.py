"""Invoice PDFs on a real database: rendered once by the document worker, kept, announced once, reused.

No broker here: the worker's use cases run in this process on the ledger's database (SQLite, or
PostgreSQL with TEST_DATABASE=postgres); the ledger's reading side is given the worker as a plain
object, as its RPC proxy would be. The wiring over RabbitMQ is in test_ledger_service.py.
"""
from __future__ import annotations

import base64
import hashlib
import io
from datetime import timedelta

import pytest
from alembic import command
from pypdf import PdfReader
from sqlalchemy import select, text

from services.common.clock import clock
from services.common.database import UnitOfWork, make_engine
from services.common.locks import is_postgres
from services.common.migrations import alembic_config, ensure_database
from services.ledger.application import Ledger
from services.ledger.documents.application import InvoicePdfs
from services.ledger.invoice_pdf import render_invoice_pdf
from services.ledger.models import Base, InvoicePdf
from services.ledger.tax import Seller
from tests.integration.test_ledger_journal import (database, eur, ledger, outbox, profiles,  # noqa: F401 (fixtures)
                                                   refused)
from tests.support import databases, statements_compiled, statements_executed

pytestmark = pytest.mark.integration


class CountingWorker:
    """The document worker as the ledger's RPC process sees it: ``render_invoice_pdf``, counted."""

    def __init__(self, worker: InvoicePdfs):
        self.worker = worker
        self.asked: list[str] = []

    def render_invoice_pdf(self, invoice_id):
        self.asked.append(invoice_id)
        return self.worker.render(invoice_id)


@pytest.fixture
def worker(database):
    return InvoicePdfs(database, clock, render=render_invoice_pdf)


@pytest.fixture
def reader(database, worker):
    """The ledger's RPC side: no renderer of its own, so rendering here would fail the test."""
    return InvoicePdfs(database, clock, worker=CountingWorker(worker))


def text_of(answer: dict) -> str:
    pdf = base64.b64decode(answer["content"])
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).replace("\xa0", " ")


def stored(uow, invoice_id: str) -> list[InvoicePdf]:
    with uow.transaction() as session:
        return session.scalars(select(InvoicePdf).where(InvoicePdf.invoice_id == invoice_id)).all()


def charged(ledger, profiles, **buyer) -> tuple[str, str]:
    account = profiles.add(**buyer)
    ledger.credit_payment(account, eur("100.00"), "p", "P")
    return account, ledger.charge(account, eur("24.60"), "c", "order-9", "VPS M")["invoice_id"]


@pytest.mark.parametrize("language,title", [("en", "Invoice"), ("pl", "Faktura")])
def test_the_pdf_opens_and_shows_the_number_both_parties_and_the_totals(ledger, profiles, worker, reader,
                                                                         language, title):
    account, invoice_id = charged(ledger, profiles, language=language, first_name="Zażółć", last_name="Gęślą")
    worker.render(invoice_id)
    answer = reader.get(invoice_id, account)
    number = ledger.get_invoice(invoice_id)["number"]
    assert (answer["invoice_id"], answer["number"], answer["kind"]) == (invoice_id, number, "invoice")
    for expected in (title, number, "Introserv", "Zażółć Gęślą", "24.60", "20.00", "4.60"):
        assert expected in text_of(answer).replace(",", "."), expected


def test_an_invoice_is_rendered_once_kept_with_its_checksum_and_announced_once(ledger, profiles, worker, reader):
    account, invoice_id = charged(ledger, profiles)
    first = worker.render(invoice_id)
    again = worker.render(invoice_id)   # the event redelivered: nothing new
    [kept] = stored(ledger.uow, invoice_id)
    assert hashlib.sha256(kept.content).hexdigest() == kept.sha256 == first["sha256"] == again["sha256"]
    assert base64.b64decode(first["content"]) == kept.content and kept.content.startswith(b"%PDF")
    invoice = ledger.get_invoice(invoice_id)
    [ready] = outbox(ledger.uow, account, "invoice_pdf_ready")
    assert {key: ready[key] for key in ("invoice_id", "number", "kind", "gross", "issued_at", "order_id", "sha256")} \
        == {"invoice_id": invoice_id, "number": invoice["number"], "kind": "invoice", "gross": invoice["gross"],
            "issued_at": invoice["issued_at"], "order_id": "order-9", "sha256": kept.sha256}
    # The download and the mail get those bytes; the ledger's process did not ask the worker.
    assert reader.get(invoice_id, account) == first and reader.worker.asked == []


def test_a_download_before_the_worker_got_to_it_is_rendered_by_the_worker_once(ledger, profiles, reader):
    account, invoice_id = charged(ledger, profiles)
    first = reader.get(invoice_id, account)
    assert reader.get(invoice_id, account) == first
    assert reader.worker.asked == [invoice_id]        # once: then it was stored
    assert len(stored(ledger.uow, invoice_id)) == 1
    assert [e["invoice_id"] for e in outbox(ledger.uow, account, "invoice_pdf_ready")] == [invoice_id]


def test_another_customers_invoice_is_not_found_and_the_worker_is_not_asked(ledger, profiles, reader):
    _, invoice_id = charged(ledger, profiles)
    stranger = profiles.add()
    for asked in ((invoice_id, stranger), ("no-such-invoice", None), ("x" * 5000, None), (None, None)):
        assert refused(lambda: reader.get(*asked)).error_code == "not_found"
    assert reader.worker.asked == []


def test_a_rendering_that_loses_the_race_keeps_the_first_pdf_and_announces_nothing(ledger, profiles, database):
    account, invoice_id = charged(ledger, profiles)
    racer = InvoicePdfs(database, clock, render=render_invoice_pdf)

    def render_while_another_stores(document, language):
        racer.render(invoice_id)          # the event's rendering commits while the download's renders
        return render_invoice_pdf(document, language)

    answer = InvoicePdfs(database, clock, render=render_while_another_stores).render(invoice_id)
    [kept] = stored(ledger.uow, invoice_id)
    assert answer["sha256"] == kept.sha256
    assert len(outbox(ledger.uow, account, "invoice_pdf_ready")) == 1


def test_an_invoice_is_read_and_its_pdf_kept_by_statements_built_once(ledger, profiles, database):
    account = profiles.add()
    ledger.credit_payment(account, eur("100.00"), "p", "P")
    invoices = [ledger.charge(account, eur("1.00"), f"c{n}", f"order-{n}", "VPS S")["invoice_id"] for n in range(2)]
    worker = InvoicePdfs(database, clock, render=lambda document, language: b"%PDF-1.4 " + document["id"].encode())
    compiled, reads = [], []
    for invoice_id in invoices:
        with statements_compiled(database.engine) as sent, statements_executed(database.engine) as executed:
            worker.render(invoice_id)
        compiled.append([form for line, form in sent if line.startswith("INSERT") or line.startswith("WITH")])
        reads.append(executed[:2])   # the invoice with its PDF if kept, then the charge that says if it is paid
    # Both reads built once, not for each invoice; the first reads the invoice with its PDF, if kept.
    assert all(first is second for first, second in zip(*reads)) and len(reads[1]) == 2
    lines = [line for line, _ in sent]
    assert lines[0].startswith("SELECT INVOICES.") and "INVOICE_PDFS.CONTENT" in lines[0], lines
    assert lines[1].startswith("SELECT TRANSACTIONS."), lines
    if is_postgres(database.engine):
        # The PDF's insert-or-nothing and the event's insert, as one statement (before: a savepoint, the
        # insert, its release, the backfill's row, the event), the second compiled as the first was.
        assert [len(forms) for forms in compiled] == [1, 1], compiled
        assert str(compiled[0][0]).startswith("WITH kept AS") and compiled[0][0] is compiled[1][0]
    assert [e["invoice_id"] for e in outbox(ledger.uow, account, "invoice_pdf_ready")] == invoices
    assert [stored(ledger.uow, i)[0].content for i in invoices] == [b"%PDF-1.4 " + i.encode() for i in invoices]
    downloads = []
    for invoice_id in invoices:   # a download's or a mail's read of the kept PDF: one statement, built once
        with statements_executed(database.engine) as executed:
            worker.get(invoice_id, account)
        downloads.append(executed)
    assert len(downloads[0]) == 1 and downloads[0][0] is downloads[1][0]


def test_a_stored_pdf_cannot_be_changed_or_deleted(ledger, profiles, worker):
    _, invoice_id = charged(ledger, profiles)
    worker.render(invoice_id)
    for statement in ("UPDATE invoice_pdfs SET content = :bytes WHERE invoice_id = :id",
                      "DELETE FROM invoice_pdfs WHERE invoice_id = :id"):
        with pytest.raises(Exception, match="append-only"):
            with ledger.uow.transaction() as session:
                session.execute(text(statement), {"bytes": b"%PDF forged", "id": invoice_id})
    [kept] = stored(ledger.uow, invoice_id)
    assert kept.content.startswith(b"%PDF") and hashlib.sha256(kept.content).hexdigest() == kept.sha256


@pytest.fixture
def upgraded_ledger(tmp_path, profiles):
    """A ledger whose invoices were issued before it kept PDFs: ``(ledger, upgrade)``.

    Migrated to the head (today's code writes today's columns, such as an operator action's caller,
    which revision 0004 adds), its backfill mark at nothing yet; ``upgrade()`` sets the mark as
    revision 0003 sets it on a ledger that has invoices: every invoice issued so far is the backfill's.
    """
    with databases(tmp_path, services=("ledger",)) as urls:
        config = alembic_config("ledger", urls["ledger"])
        ensure_database(urls["ledger"])
        command.upgrade(config, "head")
        engine = make_engine(urls["ledger"], green=False)

        def upgrade():
            with engine.begin() as connection:
                connection.execute(text("UPDATE pdf_backfill SET through_seq = (SELECT COALESCE(MAX(seq), 0) "
                                        "FROM invoices)"))
        yield Ledger(UnitOfWork(engine, "ledger", Base.metadata), profiles, clock, Seller.from_env({})), upgrade
        engine.dispose()


class Later:
    """The clock a few minutes on: the invoices issued now are old enough for the backfill."""

    def now(self):
        return clock.now() + timedelta(minutes=2)


def test_older_invoices_get_their_pdf_from_the_backfill_and_no_second_mail(upgraded_ledger, profiles):
    ledger, upgrade = upgraded_ledger
    account = profiles.add()
    ledger.credit_payment(account, eur("100.00"), "p", "P")
    older = [ledger.charge(account, eur("1.00"), f"c{n}", "o", "VPS")["invoice_id"] for n in range(5)]
    upgrade()
    newer = ledger.charge(account, eur("1.00"), "c-new", "o", "VPS")["invoice_id"]
    worker = InvoicePdfs(ledger.uow, clock, render=render_invoice_pdf)
    reader = InvoicePdfs(ledger.uow, clock, worker=CountingWorker(worker))
    reader.get(older[3], account)                       # downloaded before the backfill got to it
    assert worker.backfill(batch=2) == 2                # oldest first, a batch at a time
    assert [bool(stored(ledger.uow, i)) for i in older] == [True, True, False, True, False]
    assert worker.backfill(batch=2) == 2 and worker.backfill(batch=2) == 0
    assert all(stored(ledger.uow, i) for i in older)
    assert stored(ledger.uow, newer) == []              # fresh: its own event renders it
    assert outbox(ledger.uow, account, "invoice_pdf_ready") == []   # their mail went out when they were issued
    worker.render(newer)
    assert [e["invoice_id"] for e in outbox(ledger.uow, account, "invoice_pdf_ready")] == [newer]


def test_an_invoice_whose_event_the_worker_missed_gets_its_pdf_and_its_mail_a_minute_later(ledger, profiles,
                                                                                          database):
    account, invoice_id = charged(ledger, profiles)
    worker = InvoicePdfs(database, clock, render=render_invoice_pdf)
    while worker.backfill():
        pass
    assert stored(ledger.uow, invoice_id) == []         # fresh: its own event renders it
    later = InvoicePdfs(database, Later(), render=render_invoice_pdf)
    while later.backfill():
        pass
    assert len(stored(ledger.uow, invoice_id)) == 1
    assert [e["invoice_id"] for e in outbox(ledger.uow, account, "invoice_pdf_ready")] == [invoice_id]
    worker.render(invoice_id)                            # the event, replayed at last: nothing new
    assert len(outbox(ledger.uow, account, "invoice_pdf_ready")) == 1


def test_a_pdf_that_cannot_be_drawn_does_not_hold_up_the_backfill_of_the_others(ledger, profiles, database):
    account, broken = charged(ledger, profiles)
    fine = ledger.charge(account, eur("1.00"), "c-fine", "order-10", "VPS S")["invoice_id"]

    def render_all_but_one(document, language):
        if document["id"] == broken:
            raise ValueError("a glyph ReportLab cannot draw")
        return render_invoice_pdf(document, language)

    later = InvoicePdfs(database, Later(), render=render_all_but_one)
    while later.backfill():
        pass
    assert stored(ledger.uow, broken) == [] and len(stored(ledger.uow, fine)) == 1
    assert [e["invoice_id"] for e in outbox(ledger.uow, account, "invoice_pdf_ready")] == [fine]
