"""ReportLab and its fonts live only in the ledger's document worker, never in the process that prices and charges;
the worker loads nothing it does not use and keeps nothing a PDF left behind."""
from __future__ import annotations

import subprocess
import sys

from deploy.serve import RUNS
from services.common.config import ROOT

RENDERING = ("reportlab", "_rl_accel", "services.ledger.invoice_pdf", "services.ledger.statement_pdf")


def loaded_by(process: str) -> set[str]:
    """The modules a fresh interpreter holds after importing what ``deploy.serve <process>`` runs."""
    module = RUNS[process].partition(":")[0]
    listing = subprocess.run([sys.executable, "-c", f"import sys, {module}; print('\\n'.join(sys.modules))"],
                             cwd=ROOT, capture_output=True, text=True, check=True, timeout=120).stdout
    return set(listing.split())


def rendering(modules: set[str]) -> set[str]:
    return {name for name in modules if name.startswith(RENDERING)}


def test_the_ledgers_rpc_process_never_loads_the_pdf_renderer():
    assert rendering(loaded_by("ledger")) == set()


def test_the_gateway_which_streams_statements_and_archives_never_loads_it_either():
    assert rendering(loaded_by("gateway")) == set()


def test_the_document_worker_is_where_pdfs_are_rendered():
    assert {"reportlab", "services.ledger.invoice_pdf",
            "services.ledger.statement_pdf"} <= rendering(loaded_by("ledger_documents"))


def test_the_document_worker_loads_no_http_client_it_never_uses():
    # The VAT rules it prints with (services/ledger/tax.py) ask VIES only in profile: requests,
    # urllib3 and charset_normalizer were about 4 MB of the worker's 100 MB (README Performance).
    assert not {name for name in loaded_by("ledger_documents") if name.startswith(("requests", "urllib3"))}


def test_a_pdf_the_worker_renders_leaves_no_garbage_waiting_for_a_full_collection():
    # ReportLab leaves a rendering's objects in reference cycles; until a full collection they, and
    # the heap pages around them, stayed resident (README Performance, "Memory").
    import gc

    from services.ledger.documents.service import render_invoice
    from tests.unit.test_invoice_pdf import german_company, invoice_for, polish_individual

    invoices = [(invoice_for(polish_individual(), ("VPS", "49.00")), "pl"),
                (invoice_for(german_company(), ("VPS", "49.00"), ("IP", "10.00"), currency="EUR"), "en")]
    gc.collect()
    for invoice, language in invoices:
        assert render_invoice(invoice, language).startswith(b"%PDF")
    assert gc.collect() == 0   # nothing left unreachable for the next full collection to find
