"""Invoice documents: numbers, invoices and credit notes in the Invoice shape of docs/CONTRACTS.md.

The documents are plain dicts, ready to store as JSON and to answer over RPC and HTTP.
Their amounts always add up: the line nets sum to ``net``, the line VATs to ``vat``, the
line grosses to ``gross``, and ``net + vat == gross`` on every line and in total.

Numbering contract (the ledger stores the counter, these functions only format it):
invoices and credit notes share one sequence per calendar year (UTC), starting at 1 and
without gaps. The ledger takes the next number in the same database transaction as the
money movement the document belongs to, as that transaction's last statement (a row per
year, whose row lock is then held only until the commit: ``services/ledger/numbering.py``),
so a rolled-back charge never consumes a number and two charges never get the same one. A
document is therefore built before it has its number (``number=None``) and is given it by
the statement that takes it. :func:`number_year` says which year's sequence a document takes.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal

from services.common.clock import iso
from services.common.errors import DomainError
from services.common.money import Money
from services.ledger.tax import Amounts, Buyer, Seller, TaxTreatment, split_gross

INVOICE = "invoice"
CREDIT_NOTE = "credit_note"

_NUMBER = re.compile(r"^(\d{4})/(\d{6,})$")


def format_number(year: int, seq: int) -> str:
    """The printed number of the ``seq``-th document of ``year``: ``2026/000123``."""
    if seq < 1:
        raise ValueError(f"invoice sequence numbers start at 1, not {seq}")
    if not 1000 <= year <= 9999:
        raise ValueError(f"not a year: {year}")
    return f"{year}/{seq:06d}"


def parse_number(number: str) -> tuple[int, int]:
    """``"2026/000123"`` -> ``(2026, 123)``."""
    match = _NUMBER.match(number or "")
    if not match:
        raise ValueError(f"not an invoice number: {number!r}")
    return int(match.group(1)), int(match.group(2))


def number_year(issued_at: datetime) -> int:
    """The year whose sequence a document issued at this moment takes (the UTC year)."""
    return _aware(issued_at).astimezone(timezone.utc).year


@dataclass(frozen=True, kw_only=True)
class InvoiceLine:
    """One line to bill: ``gross`` is what the customer pays for it, VAT included.

    That is the amount after :func:`services.ledger.tax.price_for` (for a reverse-charge
    company it is already the net). On a credit note it is the positive amount returned.
    """

    description: str
    gross: Money
    quantity: int = 1
    period_from: date | None = None
    period_to: date | None = None


def build_invoice(*, invoice_id: str, number: str | None, seller: Seller, buyer: Buyer,
                  lines: Sequence[InvoiceLine], treatment: TaxTreatment, currency: str,
                  order_id: str | None, issued_at: datetime) -> dict:
    """The invoice for a charge, with the buyer's data as they are now (docs/CONTRACTS.md, Invoice).

    Every line is split at the treatment's rate; the totals are the sums of the lines.
    """
    if not lines:
        raise ValueError("an invoice needs at least one line")
    _check_currency(lines, currency)
    total_gross = sum((line.gross for line in lines), Money.zero(currency))
    if total_gross.minor <= 0:
        raise ValueError("an invoice bills a positive total; money returned is a credit note")
    parts = [split_gross(line.gross, treatment.rate) for line in lines]
    return _document(
        invoice_id=invoice_id, number=number, kind=INVOICE, issued_at=issued_at,
        seller=seller.to_party(), buyer=buyer.to_party(), lines=lines, parts=parts,
        vat_rate=treatment.vat_rate, currency=currency, tax_treatment=treatment.kind,
        order_id=order_id, corrects=None, corrects_number=None,
        # Paid in advance from the balance: the sale is dated the day the payment was taken.
        sale_date=_aware(issued_at).astimezone(timezone.utc).date().isoformat(),
    )


def creditable(invoice: dict, earlier_credit_notes: Iterable[dict] = ()) -> Amounts:
    """What is left to credit on an invoice after the credit notes already issued against it."""
    _check_is_invoice(invoice)
    left = _totals(invoice)
    for note in earlier_credit_notes:
        if note.get("kind") != CREDIT_NOTE or note.get("corrects") != invoice["id"]:
            raise ValueError(f"document {note.get('number')} is not a credit note of {invoice['number']}")
        left = left + _totals(note)  # a credit note's totals are negative
    return left


def credit_note_for(invoice: dict, *, invoice_id: str, number: str | None, issued_at: datetime,
                    amount: Money | None = None, lines: Sequence[InvoiceLine] | None = None,
                    description: str | None = None, period_from: date | None = None,
                    period_to: date | None = None,
                    earlier_credit_notes: Iterable[dict] = ()) -> dict:
    """A credit note returning part or all of an invoice, with negative amounts.

    Give either ``amount`` (one line, ``description`` and the period optional) or
    ``lines`` (positive amounts returned). The parties, currency, rate and treatment are
    the invoice's. Refused with ``refund_exceeds_charge`` when it would return more than
    the invoice less its ``earlier_credit_notes``.
    """
    if (amount is None) == (lines is None):
        raise ValueError("give either amount or lines")
    if amount is not None:
        lines = [InvoiceLine(description=description or f"Refund for invoice {invoice['number']}",
                             gross=amount, period_from=period_from, period_to=period_to)]
    left = creditable(invoice, earlier_credit_notes)
    currency = invoice["currency"]
    _check_currency(lines, currency)
    if not lines or any(line.gross.minor <= 0 for line in lines):
        raise ValueError("a credit note returns positive amounts")
    returned = sum((line.gross for line in lines), Money.zero(currency))
    if returned > left.gross:
        raise DomainError(
            "refund_exceeds_charge",
            f"At most {left.gross} is left to credit on invoice {invoice['number']}.",
            details={"invoice_id": invoice["id"], "creditable": left.gross.to_wire(),
                     "requested": returned.to_wire()})
    vat_rate = invoice["lines"][0]["vat_rate"]
    total = _credit_total(returned, left, Decimal(vat_rate))
    parts = _lines_adding_up_to(lines, Decimal(vat_rate), total)
    return _document(
        invoice_id=invoice_id, number=number, kind=CREDIT_NOTE, issued_at=issued_at,
        seller=invoice["seller"], buyer=invoice["buyer"],
        lines=[_negated(line) for line in lines], parts=[-part for part in parts],
        vat_rate=vat_rate, currency=currency, tax_treatment=invoice["tax_treatment"],
        order_id=invoice["order_id"], corrects=invoice["id"], corrects_number=invoice["number"],
        sale_date=invoice.get("sale_date") or invoice["issued_at"][:10],   # the corrected supply's
    )


def _credit_total(returned: Money, left: Amounts, rate: Decimal) -> Amounts:
    # Crediting what is left reverses exactly what is left. A partial credit is split at the
    # rate, then held within the net and the VAT still open, so that however the invoice
    # is credited in parts, the credits never exceed it in net, VAT or gross.
    if returned == left.gross:
        return left
    total = split_gross(returned, rate)
    if total.net > left.net:
        return Amounts(left.net, returned - left.net, returned)
    if total.vat > left.vat:
        return Amounts(returned - left.vat, left.vat, returned)
    return total


def _lines_adding_up_to(lines: Sequence[InvoiceLine], rate: Decimal, total: Amounts) -> list[Amounts]:
    parts = [split_gross(line.gross, rate) for line in lines]
    drift = total.net - sum((part.net for part in parts), Money.zero(total.net.currency))
    if drift:
        # Rounding cents go to the largest line, where they matter least.
        largest = max(range(len(parts)), key=lambda index: abs(parts[index].gross.minor))
        part = parts[largest]
        parts[largest] = Amounts(part.net + drift, part.vat - drift, part.gross)
    return parts


def _negated(line: InvoiceLine) -> InvoiceLine:
    return InvoiceLine(description=line.description, gross=-line.gross, quantity=line.quantity,
                       period_from=line.period_from, period_to=line.period_to)


def _document(*, invoice_id, number, kind, issued_at, seller, buyer, lines, parts, vat_rate,
              currency, tax_treatment, order_id, corrects, corrects_number, sale_date) -> dict:
    if number is not None:  # None: numbered as it is issued (see the numbering contract above)
        parse_number(number)
    total = sum(parts, Amounts.zero(currency))
    return {
        "id": str(invoice_id),
        "number": number,
        "kind": kind,
        "issued_at": iso(_aware(issued_at)),
        "sale_date": sale_date,
        "seller": dict(seller),
        "buyer": dict(buyer),
        "lines": [_line(line, part, vat_rate) for line, part in zip(lines, parts)],
        "net": total.net.to_wire(),
        "vat": total.vat.to_wire(),
        "gross": total.gross.to_wire(),
        "currency": currency,
        "tax_treatment": tax_treatment,
        "order_id": None if order_id is None else str(order_id),
        "corrects": corrects,
        "corrects_number": corrects_number,
    }


def _line(line: InvoiceLine, part: Amounts, vat_rate: str) -> dict:
    if line.quantity < 1:
        raise ValueError(f"a line's quantity is at least 1, not {line.quantity}")
    return {
        "description": line.description,
        "period_from": line.period_from.isoformat() if line.period_from else None,
        "period_to": line.period_to.isoformat() if line.period_to else None,
        "quantity": line.quantity,
        "net": part.net.to_wire(),
        "vat_rate": vat_rate,
        "vat": part.vat.to_wire(),
        "gross": part.gross.to_wire(),
    }


def _totals(document: dict) -> Amounts:
    return Amounts(Money.from_wire(document["net"]), Money.from_wire(document["vat"]),
                   Money.from_wire(document["gross"]))


def _check_is_invoice(invoice: dict) -> None:
    if invoice.get("kind") != INVOICE:
        raise ValueError("only an invoice can be corrected by a credit note")


def _check_currency(lines: Iterable[InvoiceLine], currency: str) -> None:
    for line in lines:
        if line.gross.currency != currency:
            raise DomainError("currency_mismatch",
                              f"A line in {line.gross.currency} cannot go on an invoice in {currency}.")


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    return moment
