"""A statement's CSV and PDF from its JSON (services/ledger/statements.py, statement_pdf.py)."""
from __future__ import annotations

import csv
import io
from decimal import Decimal

from pypdf import PdfReader

from services.ledger.statement_pdf import render_statement_pdf
from services.ledger.statements import statement_csv


def eur(amount: str) -> dict:
    return {"amount": amount, "currency": "EUR"}


def tx(kind: str, amount: str, after: str, number: str | None = None, reference: str = "ref-1") -> dict:
    return {"id": f"tx-{kind}", "at": "2026-11-03T10:00:00Z", "kind": kind, "amount": eur(amount),
            "balance_after": eur(after), "reference": reference, "description": f"a {kind}, with a comma",
            "invoice_id": None, "invoice_number": number}


STATEMENT = {"from": "2026-11-01", "to": "2026-11-30", "currency": "EUR", "language": "en", "holder": "Anna Nowak",
             "login": "anna", "generated_at": "2026-12-01T08:00:00Z", "opening_balance": eur("10.00"),
             "closing_balance": eur("21.60"),
             "totals": {"payment": eur("50.00"), "charge": eur("-18.90"), "refund": eur("-0.00"),
                        "adjustment": eur("-19.50")},
             "transactions": [tx("payment", "50.00", "60.00"), tx("charge", "-18.90", "41.10", "2026/000007"),
                              tx("refund", "0.00", "41.10", "2026/000008"), tx("adjustment", "-19.50", "21.60")]}


def test_the_csv_reads_back_to_the_same_sums_with_its_header_in_the_customers_language():
    rows = list(csv.DictReader(io.StringIO(statement_csv(STATEMENT))))
    opening, *movements, closing = rows
    assert (opening["kind"], closing["kind"]) == ("opening balance", "closing balance")
    assert Decimal(opening["balance after"]) + sum(Decimal(row["amount"]) for row in movements) \
        == Decimal(closing["balance after"]) == Decimal("21.60")
    assert movements[0]["description"] == "a payment, with a comma"
    assert [row["invoice number"] for row in movements] == ["", "2026/000007", "2026/000008", ""]
    polish = list(csv.reader(io.StringIO(statement_csv({**STATEMENT, "language": "pl"}))))
    assert polish[0][:2] == ["data", "rodzaj"] and polish[2][1] == "wpłata" and polish[-1][1] == "saldo zamknięcia"


def test_the_pdf_says_the_period_the_balances_and_every_movement_in_its_language():
    text = " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(render_statement_pdf(STATEMENT))).pages).split())
    assert "Statement of account" in text and "Period: 2026-11-01 – 2026-11-30" in text
    assert "Opening balance 10.00" in text and "Closing balance 21.60" in text and "2026/000007" in text
    polish = " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(
        render_statement_pdf({**STATEMENT, "language": "pl", "transactions": []}))).pages).split())
    assert "Wyciąg z rachunku" in polish and "Brak operacji w tym okresie." in polish and "21,60" in polish
