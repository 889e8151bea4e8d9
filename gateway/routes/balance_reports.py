"""How long the balance lasts, statements and the year's invoices in one file (docs/requirements.md A7, A8)."""
from __future__ import annotations

import base64
import csv
import io

from werkzeug.wrappers import Response
from zipstream import ZIP_STORED, ZipStream

from gateway.http import route
from services.ledger.forecast import ForecastSchema
from services.ledger.statements import ArchiveQuerySchema, StatementQuerySchema, StatementSchema, statement_csv

TAGS = ("balance and invoices",)
ARCHIVE_PAGE = 100
INDEX_COLUMNS = ("file", "number", "kind", "issued_at", "net", "vat", "gross", "currency", "order_id", "corrects",
                 "sha256")


def wanted_format(call) -> str:
    """``?format=`` first, then the Accept header (text/csv, application/pdf), else JSON."""
    if call.query.get("format"):
        return call.query["format"]
    accept = call.request.accept_mimetypes
    best = accept.best_match(["application/json", "text/csv", "application/pdf"], default="application/json")
    return {"text/csv": "csv", "application/pdf": "pdf"}.get(best, "json")


def archive_chunks(ledger, account_id: str, year: int, page: dict):
    """The ZIP, one PDF at a time: a page of the year's documents is read, each PDF asked of the ledger,
    written to the stream and let go; ``index.csv`` last. What stays in memory until the end is what a
    ZIP's central directory and the index need: a few hundred bytes a document."""
    archive = ZipStream(compress_type=ZIP_STORED)   # PDFs are compressed already
    index: list[tuple[str, str]] = []               # (number, the index's CSV line), sorted by number at the end
    while True:
        for entry in page["items"]:
            name = f"{entry['kind']}-{entry['number'].replace('/', '-')}.pdf"
            stored = ledger.get_invoice_pdf(entry["id"], account_id)
            archive.add(base64.b64decode(stored["content"]), name)
            del stored
            index.append((entry["number"], _index_line(name, entry)))
            yield from archive.all_files()
        if not page["next_cursor"]:
            break
        page = ledger.invoice_archive_page(account_id, year, ARCHIVE_PAGE, page["next_cursor"])
    lines = [_csv_line(INDEX_COLUMNS)] + [line for _, line in sorted(index)]
    archive.add("".join(lines).encode("utf-8"), "index.csv")
    yield from archive.finalize()


def _index_line(name: str, entry: dict) -> str:
    amount = lambda money: (money or {}).get("amount")  # noqa: E731
    return _csv_line([name, entry["number"], entry["kind"], entry["issued_at"], amount(entry["net"]),
                      amount(entry["vat"]), amount(entry["gross"]), entry["currency"], entry["order_id"] or "",
                      entry["corrects"] or "", entry["sha256"] or ""])


def _csv_line(values) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue()


class BalanceReportRoutes:
    @route("GET", "/api/v1/balance/forecast", response=ForecastSchema, tags=TAGS,
           summary="How long the balance pays the services",
           description="From the balance, the credit limit and every order that will renew (auto-renew on, at "
                       "its plan's current price and period, in the order the lifecycle clock renews them; an "
                       "order waiting for payment first): `renewals` the balance pays, each with `balance_after`; "
                       "`stops` the first it cannot pay, `on` the day that order falls overdue; `covered_until` "
                       "that day and `days` until it. Orders with auto-renew off renew nothing "
                       "(`renews_nothing` when none renews); beyond `horizon_days` (366) `covered_until`, `days` "
                       "and `stops` are null.")
    def get_forecast(self, call):
        return 200, self.orders.forecast(call.account_id)

    @route("GET", "/api/v1/balance/statement", query=StatementQuerySchema, response=StatementSchema, tags=TAGS,
           errors=(400,), alternatives=("text/csv", "application/pdf"),
           summary="A statement of the balance for a period (JSON, CSV or PDF)",
           description="`from` and `to` are UTC days, both included, at most 366 days apart (400 otherwise). "
                       "The opening balance, every transaction of the period oldest first with its reference and "
                       "invoice number, and the closing balance: opening plus the amounts is closing. `?format=` "
                       "json (default), csv or pdf, or the Accept header. CSV: comma-separated, dot decimals, "
                       "UTF-8, an opening row, a row per transaction and a closing row, the header in the "
                       "customer's language; the PDF in the customer's language.")
    def get_statement(self, call):
        start, end = call.query["from_"].isoformat(), call.query["to"].isoformat()
        chosen = wanted_format(call)
        filename = f"statement-{start}-{end}"
        if chosen == "pdf":
            drawn = self.ledger.statement_pdf(call.account_id, start, end)
            return Response(base64.b64decode(drawn["content"]), status=200, content_type="application/pdf",
                            headers={"Content-Disposition": f'attachment; filename="{filename}.pdf"'})
        statement = self.ledger.statement(call.account_id, start, end)
        if chosen == "csv":
            return Response(statement_csv(statement), status=200, content_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'})
        return 200, statement

    @route("GET", "/api/v1/invoices/archive", query=ArchiveQuerySchema, tags=TAGS, errors=(400,),
           content_type="application/zip", summary="The year's invoices and credit notes in one ZIP",
           description="Every invoice and credit note issued to the customer in `year`, each the PDF the ledger "
                       "keeps (`invoice-2026-000123.pdf`, `credit_note-...`), and `index.csv` (file, number, kind, "
                       "issued_at, net, vat, gross, currency, order_id, corrects, sha256). Streamed as it is "
                       "read, one PDF at a time (no Content-Length): a failure half-way ends the stream, and the "
                       "ZIP is then incomplete (no central directory), never silently short.")
    def get_invoice_archive(self, call):
        year = call.query["year"]
        first = self.ledger.invoice_archive_page(call.account_id, year, ARCHIVE_PAGE, None)  # refusals answer here
        return Response(archive_chunks(self.ledger, call.account_id, year, first), status=200,
                        content_type="application/zip", direct_passthrough=True,
                        headers={"Content-Disposition": f'attachment; filename="invoices-{year}.zip"'})
