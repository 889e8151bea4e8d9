"""The Invoice shape as answered and printed: the document as issued, with what the books say of it.

A stored document is never changed. What a Polish accountant also needs to read on it is added
when it is shown (docs/invoices-pl.md):

- ``sale_date``: the date of the supply it bills. Services here are paid in advance from the
  balance, so the sale is dated the day the payment was taken, the charge's day (art. 106e ust. 1
  pkt 6 with art. 19a ust. 8: a payment received before the service). A credit note carries the
  corrected invoice's sale date (art. 106j ust. 2 pkt 3). Documents issued since this field keep
  it in the document; older ones get it from their issue date, the same rule.
- ``settled_at``: when the balance paid it. An invoice is settled at issue when the charge left
  the balance at zero or above; one taken into an overdraft (an operator's credit limit) is
  settled when the balance is first back at zero or above, and null until then. A credit note's
  amount is returned to the balance at issue.
- ``corrects_number`` and ``corrects_issued_at`` on a credit note: the corrected invoice's number
  and issue time (art. 106j ust. 2 pkt 3), never its internal id alone.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select

from services.common.clock import as_utc, iso
from services.ledger.invoicing import CREDIT_NOTE
from services.ledger.models import Invoice, Transaction


def invoice_view(session, invoice: Invoice) -> dict:
    """The Invoice shape of docs/CONTRACTS.md for a stored document."""
    return invoice_views(session, [invoice])[0]


def invoice_views(session, invoices: list[Invoice]) -> list[dict]:
    """:func:`invoice_view` of each of ``invoices`` (a page of the list), in order: their charges, and the
    invoices their credit notes correct, read in one statement each, not one or two for each invoice."""
    charges = _by_id(session, _CHARGES, [invoice.transaction_id for invoice in invoices])
    corrected = _by_id(session, _INVOICES, [invoice.corrects for invoice in invoices
                                            if invoice.kind == CREDIT_NOTE and invoice.corrects])
    return [_shown(session, invoice, charges.get(invoice.transaction_id),
                   corrected.get(invoice.corrects) if invoice.kind == CREDIT_NOTE else None) for invoice in invoices]


def _shown(session, invoice: Invoice, charge: Transaction | None, corrected: Invoice | None) -> dict:
    document = dict(invoice.document)
    document["sale_date"] = document.get("sale_date") or sale_date_of(document, corrected)
    settled = settled_at(session, invoice, charge)
    document["settled_at"] = iso(as_utc(settled)) if settled else None
    if invoice.kind == CREDIT_NOTE:
        document["corrects_number"] = document.get("corrects_number") or (corrected.number if corrected else None)
        document["corrects_issued_at"] = corrected.document["issued_at"] if corrected else None
    else:
        document["corrects_number"] = None
        document["corrects_issued_at"] = None
    return document


def sale_date_of(document: dict, corrected: Invoice | None = None) -> str:
    """A document's sale date by the rule above: its issue day, a credit note's the corrected invoice's."""
    if corrected is not None:
        return corrected.document.get("sale_date") or corrected.document["issued_at"][:10]
    return document["issued_at"][:10]


# Built once: a statement built on every call is keyed for SQLAlchemy's cache on every call too.
_CHARGES = select(Transaction).where(Transaction.id.in_(bindparam("ids", expanding=True)))
_INVOICES = select(Invoice).where(Invoice.id.in_(bindparam("ids", expanding=True)))


def settled_at(session, invoice: Invoice, charge: Transaction | None) -> datetime | None:
    """When the balance paid the invoice (see the module's note), or None while it has not; ``charge`` is
    the invoice's transaction."""
    if charge is None:
        return None
    if invoice.kind == CREDIT_NOTE or charge.balance_after_minor >= 0:
        return charge.created_at
    return session.scalar(select(Transaction.created_at).where(
        Transaction.account_id == charge.account_id, Transaction.seq > charge.seq,
        Transaction.balance_after_minor >= 0).order_by(Transaction.seq).limit(1))


def _by_id(session, statement, ids: list) -> dict:
    """The rows of ``statement`` for these ids, by id; none asked, no statement sent."""
    ids = sorted({i for i in ids if i})
    return {row.id: row for row in session.scalars(statement, {"ids": ids})} if ids else {}
