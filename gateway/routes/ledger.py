"""Balance, transactions, invoices and payment methods (docs/requirements.md B, H1, I)."""
from __future__ import annotations

import base64

from werkzeug.wrappers import Response

from gateway.http import route
from services.ledger.schemas import (BalanceSchema, InvoiceSchema, PageQuerySchema, PaymentMethodSchema,
                                     TransactionSchema)

TAGS = ("balance and invoices",)


class LedgerRoutes:
    @route("GET", "/api/v1/balance", response=BalanceSchema, summary="The customer's balance", tags=TAGS)
    def get_balance(self, call):
        return 200, {"balance": self.ledger.get_balance(call.account_id)}

    @route("GET", "/api/v1/balance/transactions", query=PageQuerySchema, response=TransactionSchema, many=True,
           summary="Balance movements, newest first", tags=TAGS, errors=(400,),
           description="Payments, charges, refunds and adjustments; `amount` is signed (positive adds to the "
                       "balance) and `balance_after` is the balance right after the movement.")
    def list_transactions(self, call):
        return 200, self.ledger.list_transactions(call.account_id, call.query["limit"], call.query["cursor"])

    @route("GET", "/api/v1/invoices", query=PageQuerySchema, response=InvoiceSchema, many=True,
           summary="Invoices and credit notes, newest first", tags=TAGS, errors=(400,))
    def list_invoices(self, call):
        return 200, self.ledger.list_invoices(call.account_id, call.query["limit"], call.query["cursor"])

    @route("GET", "/api/v1/invoices/<invoice_id>", response=InvoiceSchema, summary="One invoice or credit note",
           tags=TAGS, errors=(404,), description="404 `not_found` also for another customer's invoice.")
    def get_invoice(self, call, invoice_id):
        return 200, self.ledger.get_invoice(invoice_id, call.account_id)

    @route("GET", "/api/v1/invoices/<invoice_id>/pdf", summary="One invoice as a PDF document", tags=TAGS,
           errors=(404,), content_type="application/pdf",
           description="In the customer's language at the time of issue (English or Polish); the same "
                       "bytes every time (rendered once and kept).")
    def get_invoice_pdf(self, call, invoice_id):
        stored = self.ledger.get_invoice_pdf(invoice_id, call.account_id)
        number = stored["number"].replace("/", "-")
        return Response(base64.b64decode(stored["content"]), status=200, content_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="invoice-{number}.pdf"'})

    @route("GET", "/api/v1/payment-methods", response=PaymentMethodSchema, many=True,
           summary="The payment methods offered to the customer", tags=TAGS,
           description="Depends on the country and profile type. `available` is false, with the `reason`, "
                       "while a company awaits review of its data (\"blocked until your company data are "
                       "verified\") or without a postal address (\"postal address required\").")
    def list_payment_methods(self, call):
        return 200, self.ledger.payment_methods(call.account_id)
