"""ReportLab and its fonts live only in the ledger's document worker, never in the process that prices and charges."""
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
