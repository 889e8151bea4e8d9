"""A statement of the balance as a PDF document, in English or Polish (A8).

Draws the statement dict of :mod:`services.ledger.statements`. Loaded by the ledger's document
worker only (ReportLab stays out of the process that prices and charges); the fonts are the
invoices' (DejaVu Sans, for Polish letters).
"""
from __future__ import annotations

import io
from decimal import Decimal
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from services.ledger.invoice_pdf import FONT, FONT_BOLD
from services.ledger.statements import WORDS

# Landscape: a transaction's reference (an order id) and description fit on one line.
PAGE = landscape(A4)

MESSAGES = {
    "en": {"title": "Statement of account", "period": "Period: {start} – {end}", "holder": "Account holder",
           "login": "Login", "opening": "Opening balance", "closing": "Closing balance",
           "no_movements": "No movements in this period.", "amounts_in": "Amounts in {currency}",
           "totals": "Totals of the period", "generated": "Generated {at}", "page": "page {page}"},
    "pl": {"title": "Wyciąg z rachunku", "period": "Okres: {start} – {end}", "holder": "Posiadacz konta",
           "login": "Login", "opening": "Saldo otwarcia", "closing": "Saldo zamknięcia",
           "no_movements": "Brak operacji w tym okresie.", "amounts_in": "Kwoty w {currency}",
           "totals": "Sumy okresu", "generated": "Wygenerowano {at}", "page": "strona {page}"},
}


def render_statement_pdf(statement: dict) -> bytes:
    """The statement as PDF bytes, every text in its ``language``."""
    language = statement["language"] if statement["language"] in MESSAGES else "en"
    say, words = MESSAGES[language], WORDS[language]
    text = ParagraphStyle("text", fontName=FONT, fontSize=8, leading=10)
    bold = ParagraphStyle("bold", parent=text, fontName=FONT_BOLD)
    right = ParagraphStyle("right", parent=text, alignment=TA_RIGHT)
    title = ParagraphStyle("title", parent=text, fontName=FONT_BOLD, fontSize=15, leading=19)

    def number(money: dict) -> str:
        value = f"{Decimal(money['amount']):,.2f}"
        return value.replace(",", " ").replace(".", ",") if language == "pl" else value

    def p(value, style=text) -> Paragraph:
        return Paragraph(escape(str(value or "")), style)

    flowables = [p(say["title"], title), Spacer(0, 3 * mm),
                 p(say["period"].format(start=statement["from"], end=statement["to"]), bold),
                 p(f"{say['holder']}: {statement['holder']}"),
                 p(f"{say['login']}: {statement.get('login') or ''}"),
                 p(say["amounts_in"].format(currency=statement["currency"])), Spacer(0, 4 * mm)]
    header = [p(words[c], bold) for c in ("date", "kind", "reference", "invoice_number", "description")] + \
        [p(words["amount"], bold), p(words["balance_after"], bold)]
    rows = [header, [p(statement["from"]), p(say["opening"], bold), "", "", "", "",
                     p(number(statement["opening_balance"]), right)]]
    for tx in statement["transactions"]:
        rows.append([p(tx["at"][:10]), p(words[tx["kind"]]), p(tx["reference"]), p(tx["invoice_number"]),
                     p(tx["description"]), p(number(tx["amount"]), right), p(number(tx["balance_after"]), right)])
    rows.append([p(statement["to"]), p(say["closing"], bold), "", "", "", "",
                 p(number(statement["closing_balance"]), right)])
    table = Table(rows, colWidths=[20 * mm, 27 * mm, 60 * mm, 26 * mm, 84 * mm, 23 * mm, 23 * mm], repeatRows=1)
    table.setStyle(TableStyle([("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
                               ("LINEABOVE", (0, -1), (-1, -1), 0.6, colors.black),
                               ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    flowables.append(table)
    if not statement["transactions"]:
        flowables += [Spacer(0, 2 * mm), p(say["no_movements"])]
    flowables += [Spacer(0, 4 * mm), p(say["totals"], bold)]
    flowables.append(Table([[p(words[kind]), p(number(money), right)] for kind, money in statement["totals"].items()],
                           colWidths=[40 * mm, 25 * mm], hAlign="LEFT"))
    flowables += [Spacer(0, 4 * mm), p(say["generated"].format(at=statement["generated_at"]))]

    def footer(canvas, document):
        canvas.saveState()
        canvas.setFont(FONT, 7)
        canvas.drawRightString(PAGE[0] - 14 * mm, 10 * mm, say["page"].format(page=document.page))
        canvas.restoreState()

    buffer = io.BytesIO()
    SimpleDocTemplate(buffer, pagesize=PAGE, leftMargin=14 * mm, rightMargin=14 * mm, topMargin=16 * mm,
                      bottomMargin=16 * mm, title=f"{say['title']} {statement['from']} – {statement['to']}",
                      invariant=1).build(flowables, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
