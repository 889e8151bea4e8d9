"""The ledger's invoice documents: each invoice's PDF rendered once, off the hot path, and kept.

``service.py`` is the document worker (``python -m deploy.serve ledger_documents``), the only
process that imports ReportLab; ``application.py`` is what it and the ledger's RPC process do with
the stored PDFs.
"""
