"""The ledger's document worker: renders each invoice's PDF once, off the hot path (I4).

A process of the ledger (the same code, database and events), not a service of its own: it
answers no price or charge, so the CPU a PDF takes never delays a customer's order, and it is the
only process that loads ReportLab and its fonts. It also hands the notifier each invoice's PDF
for its mail (``get_invoice_pdf``), so that those answers, tens of kilobytes each, are not written
by the process that answers charges either. It works on the ledger's database, where the PDFs
are kept beside the invoices (committed, backed up and restored with the books), and leaves the
ledger's outbox to the ledger's processes, which publish it under their lock.
"""
from __future__ import annotations

import base64
import ctypes
import functools
import gc

from nameko.timer import timer

from services.common.base import ServiceBase
from services.common.clock import clock
from services.common.config import env_float
from services.common.database import Database
from services.common.events import handle_event
from services.common.logging import configure
from services.common.roles import LEDGER, NOTIFIER
from services.common.rpc import rpc
from services.ledger.documents.application import InvoicePdfs
from services.ledger.invoice_pdf import render_invoice_pdf
from services.ledger.models import Base
from services.ledger.statement_pdf import render_statement_pdf

configure("ledger_documents")
BACKFILL_SECONDS = env_float("PDF_BACKFILL_SECONDS", 2.0)

# glibc's malloc_trim (None elsewhere, where only the collection below is done).
_MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None)


def gives_memory_back(render):
    """``render``, after which the memory it freed goes back to the system (README Performance, "Memory").

    A rendering leaves garbage in reference cycles (ReportLab's objects refer to one another), which
    outlives the young generations and waits for a full collection; meanwhile its pages, and the
    small objects freed around them, stay on glibc's heap: 200 PDFs left 3.4 MB more resident, 1,000 left 5 MB.
    Collecting the two young generations right away frees them, and trimming hands the free pages
    back: 0.3 and 0.5 MB, for about 0.1 ms against a PDF's 7 ms (``python -m bench.pdf_memory``).
    """
    @functools.wraps(render)
    def rendered(*args):
        try:
            return render(*args)
        finally:
            gc.collect(1)
            if _MALLOC_TRIM is not None:
                _MALLOC_TRIM(0)
    return rendered


render_invoice = gives_memory_back(render_invoice_pdf)
render_statement = gives_memory_back(render_statement_pdf)


class LedgerDocumentsService(ServiceBase):
    name = "ledger_documents"

    db = Database(Base.metadata, service="ledger", relay=False)

    @property
    def pdfs(self) -> InvoicePdfs:
        return InvoicePdfs(self.db, clock, render=render_invoice)

    # -- the ledger, for a download that came before the invoice's event was handled
    @rpc(roles=LEDGER)
    def render_invoice_pdf(self, invoice_id):
        return self.pdfs.render(invoice_id)

    # -- the notifier, for the invoice mail: the PDF this worker stored, without the ledger's RPC process
    @rpc(roles=NOTIFIER)
    def get_invoice_pdf(self, invoice_id, account_id=None):
        return self.pdfs.get(invoice_id, account_id)

    # -- the ledger, for a statement of the balance asked as a PDF (drawn, not kept: the journal is the record)
    @rpc(roles=LEDGER)
    def render_statement_pdf(self, statement):
        return {"content": base64.b64encode(render_statement(statement)).decode("ascii")}

    # -- every invoice and credit note the ledger issues
    @handle_event("ledger", "invoice_issued")
    def on_invoice_issued(self, event):
        self.pdfs.render(event["invoice_id"])

    # -- what no event rendered: invoices issued before the ledger kept PDFs, and any whose event was missed
    @timer(interval=BACKFILL_SECONDS)
    def backfill(self):
        self.pdfs.backfill()
