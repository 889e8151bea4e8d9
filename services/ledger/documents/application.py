"""Invoice PDFs: rendered once by the document worker, stored with their checksum, reused.

The worker renders an invoice's PDF when the ledger announces the invoice (``invoice_issued``), or
sooner when a download asks for it first, and stores it in the ledger's database in the same
transaction as the event that announces it (``invoice_pdf_ready``, which the notifier mails).
Whoever stores it first announces it; a second rendering (a redelivered event, a download racing
the event) finds the row taken and announces nothing, so an invoice is announced, and mailed,
once. What no event rendered is rendered in the background (:meth:`InvoicePdfs.backfill`): the
invoices issued before the ledger kept PDFs, announced never (their mail went out when they were
issued), and any later one whose event the worker missed, announced like the others.

The ledger's RPC process only reads what is stored and asks the worker for what is not: it never
imports ReportLab (the renderer is handed in by the worker, ``services/ledger/invoice_pdf.py``).
"""
from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Callable
from datetime import timedelta

import structlog
from sqlalchemy import BigInteger, Table, bindparam, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from services.common.clock import as_utc
from services.common.errors import NotFound, ServiceUnavailable
from services.common.locks import InsertIfAbsent, is_postgres
from services.common.outbox import outbox_row, publish_later
from services.common.statements import bound_values, numbered, prefixed, rows_of
from services.ledger.invoice_view import invoice_view
from services.ledger.models import Invoice, InvoicePdf, PdfBackfill

log = structlog.get_logger(__name__)

BACKFILL_BATCH = 20          # PDFs per tick: about a second of one core, so new invoices' events come first
BACKFILL_LOOK = 500          # invoices looked at per tick, most of them with their PDF already
EVENT_GRACE = timedelta(minutes=1)   # an invoice's own event renders it within seconds; the backfill waits longer


# An invoice and its PDF if kept, each read in one statement built once (a statement built on every
# call is keyed for SQLAlchemy's cache on every call): what a download and a mail need, and what a
# rendering needs.
_KEPT = select(Invoice.id, Invoice.account_id, Invoice.number, Invoice.kind, InvoicePdf.content, InvoicePdf.sha256) \
    .outerjoin(InvoicePdf, InvoicePdf.invoice_id == Invoice.id).where(Invoice.id == bindparam("invoice_id"))
_TO_RENDER = select(Invoice, InvoicePdf).outerjoin(InvoicePdf, InvoicePdf.invoice_id == Invoice.id) \
    .where(Invoice.id == bindparam("invoice_id"))


class InvoicePdfs:
    """The invoices' PDFs: ``render``, ``backfill`` and the notifier's ``get`` in the worker, the panel's
    ``get`` in the ledger's RPC process."""

    def __init__(self, uow, clock, render: Callable[[dict, str], bytes] | None = None, worker=None):
        self.uow = uow
        self.clock = clock
        self.render_pdf = render   # the worker's: (invoice document, language) -> PDF bytes
        self.worker = worker       # the RPC process's: anything with render_invoice_pdf(invoice_id); None in the worker

    def get(self, invoice_id, account_id=None) -> dict:
        """The invoice's stored PDF; with ``account_id``, another customer's invoice is ``not_found``.

        One the worker has not stored yet (it is behind, or the download came first) is rendered by
        the worker now: asked over RPC from the ledger's process, which never renders one itself.
        """
        with self.uow.read() as session:
            found = session.execute(_KEPT, {"invoice_id": _invoice_id(invoice_id)}).first()
        if found is None or (account_id is not None and found.account_id != account_id):
            raise NotFound("invoice")
        if found.content is not None:
            return pdf_view(found.id, found.number, found.kind, found.content, found.sha256)
        if self.worker is None:
            return self.render(found.id)
        return self.worker.render_invoice_pdf(found.id)

    def render(self, invoice_id) -> dict:
        """Render and store the invoice's PDF unless it is stored; the stored PDF either way."""
        with self.uow.read() as session:   # the invoice never changes; a PDF stored meanwhile is _store's
            found = session.execute(_TO_RENDER, {"invoice_id": _invoice_id(invoice_id)}).first()
            if found is None:
                raise NotFound("invoice")
            invoice, stored = found
            # Printed with what the books say of it now: its sale date, and whether the balance paid it.
            shown = invoice_view(session, invoice) if stored is None else None
        if stored is None:
            # On the worker's own thread, one PDF at a time: drawing holds the GIL in a thread pool
            # too, so a pool would only add its threads and their memory (the worker must stay under
            # 100 MB); the hub answers /health between two PDFs (a few tens of milliseconds each).
            content = self.render_pdf(shown, invoice.language)
            stored = self._store(invoice, content)
        return pdf_view(invoice.id, invoice.number, invoice.kind, stored.content, stored.sha256)

    def backfill(self, batch: int = BACKFILL_BATCH) -> int:
        """Render the PDFs no event rendered, oldest first, a batch at a time; how many it rendered.

        Those of the invoices issued before the ledger kept PDFs, and of any issued later whose
        event the worker missed (it had not started yet, the event was parked): a minute after
        issue, when their own event would long have rendered them.
        """
        settled = self.clock.now() - EVENT_GRACE
        with self.uow.transaction() as session:
            progress = session.scalar(select(PdfBackfill))
            if progress is None:
                return 0
            invoices = session.execute(
                select(Invoice.seq, Invoice.id, Invoice.issued_at, InvoicePdf.invoice_id.label("kept"))
                .outerjoin(InvoicePdf, InvoicePdf.invoice_id == Invoice.id)
                .where(Invoice.seq > progress.rendered_seq).order_by(Invoice.seq).limit(BACKFILL_LOOK)).all()
        rendered, seen = 0, None
        for invoice in invoices:
            if invoice.seq > progress.through_seq and as_utc(invoice.issued_at) > settled:
                break   # its own event has it
            if invoice.kept is None:
                if rendered == batch:
                    break
                self._render_left_behind(invoice.id)
                rendered += 1
            seen = invoice.seq
        if seen is not None:
            self._rendered_through(seen)
        return rendered

    def _render_left_behind(self, invoice_id: str) -> None:
        try:
            self.render(invoice_id)
        except ServiceUnavailable:
            raise   # the database is away: this invoice is looked at again next time
        except Exception:
            # A PDF that cannot be drawn is a bug to fix, not a reason to leave every later invoice
            # without one; a download asks the worker for it again.
            log.exception("could not render an invoice's PDF; the backfill goes on", invoice_id=invoice_id)

    def _store(self, invoice: Invoice, content: bytes) -> InvoicePdf:
        """Keep the PDF and announce it, unless another rendering stored it first; the stored one.

        On PostgreSQL in one statement (the PDF's insert-or-nothing, and the event's insert when the
        PDF went in and the invoice came after the backfill's start); elsewhere through the session.
        """
        pdf = {"invoice_id": invoice.id, "content": content, "sha256": hashlib.sha256(content).hexdigest(),
               "rendered_at": self.clock.now()}
        document = invoice.document
        ready = {"account_id": invoice.account_id, "invoice_id": invoice.id, "number": invoice.number,
                 "kind": invoice.kind, "gross": document["gross"], "issued_at": document["issued_at"],
                 "order_id": document.get("order_id"), "sha256": pdf["sha256"]}
        with self.uow.transaction() as session:
            if is_postgres(session):
                event = outbox_row(session, "invoice_pdf_ready", ready)
                statement = _stored_statement(session.info["tables"]["outbox"], tuple(event))
                kept = session.scalar(statement, {**prefixed("pdf_", pdf), **numbered("event", [event]),
                                                  "invoice_seq": invoice.seq})
            else:
                try:
                    with session.begin_nested():
                        session.add(InvoicePdf(**pdf))
                    kept = True
                except IntegrityError:
                    kept = False
                if kept and invoice.seq > _issued_before(session):
                    publish_later(session, "invoice_pdf_ready", ready)
            if not kept:
                return session.get(InvoicePdf, invoice.id)   # a concurrent rendering won; its bytes are the same
        log.info("invoice PDF stored", invoice_id=invoice.id, number=invoice.number, size=len(content))
        return InvoicePdf(**pdf)

    def _rendered_through(self, seq: int) -> None:
        with self.uow.transaction() as session:
            session.execute(update(PdfBackfill).where(PdfBackfill.rendered_seq < seq).values(rendered_seq=seq))


def pdf_view(invoice_id: str, number: str, kind: str, content: bytes, sha256: str) -> dict:
    """The answer of ``get_invoice_pdf`` (docs/CONTRACTS.md): the PDF in base64, with its number and checksum."""
    return {"invoice_id": invoice_id, "number": number, "kind": kind,
            "content": base64.b64encode(content).decode("ascii"), "sha256": sha256}


@functools.lru_cache(maxsize=2)
def _stored_statement(outbox: Table, event: tuple[str, ...]):
    """:meth:`InvoicePdfs._store`'s statement on PostgreSQL, built once (services/common/statements.py): the
    PDF's insert, which does nothing when another rendering stored it first, and, as a CTE beside it, the
    event's insert when the PDF went in and the invoice was issued after ``_issued_before``; true when
    the PDF went in. One round trip where a savepoint, the insert, the backfill's row and the event took
    five: 2.7 ms of the worker's CPU an invoice before (README Performance)."""
    pdfs, backfill = InvoicePdf.__table__, PdfBackfill.__table__
    kept = InsertIfAbsent(pdfs).values(bound_values(pdfs, "pdf_", ("invoice_id", "content", "sha256", "rendered_at"))) \
        .returning(pdfs.c.invoice_id).cte("kept")
    issued_before = select(func.coalesce(func.max(backfill.c.through_seq), 0)).scalar_subquery()
    announced = rows_of(outbox, "event", event, 1).where(
        exists(select(kept.c.invoice_id)), bindparam("invoice_seq", type_=BigInteger) > issued_before)
    return select(exists(select(kept.c.invoice_id))).add_cte(
        insert(outbox).from_select(list(event), announced).cte("announced"))


def _issued_before(session) -> int:
    """The last invoice issued before the ledger kept PDFs (0 on a ledger that always did)."""
    return session.scalar(select(PdfBackfill.through_seq)) or 0


def _invoice_id(invoice_id) -> str:
    if not isinstance(invoice_id, str) or not 1 <= len(invoice_id) <= 36:
        raise NotFound("invoice")
    return invoice_id
