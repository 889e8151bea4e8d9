"""Statements of the balance for a period, and the year's invoices listed for an archive (A8).

A statement is read from the journal alone: the opening balance is the running balance after
the last movement before the period (0.00 without one), the movements are every transaction
of the period oldest first, each with its reference and the number of the invoice or credit
note it issued, and the closing balance is the running balance after the period's last
movement. Since every running balance is the one before plus the movement (checked by the
audit), opening plus the movements is the closing balance.

Days are UTC days, both ends included. The texts a statement prints (its CSV header, its PDF)
are in the customer's language; the PDF is drawn by the ledger's document worker
(services/ledger/statement_pdf.py), never in a process that prices or charges.
"""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta, timezone

from marshmallow import Schema, fields, validate, validates_schema
from marshmallow import ValidationError as FieldError
from sqlalchemy import func, select

from services.common.clock import as_utc, iso
from services.common.locks import try_lock
from services.common.money import Money
from services.common.outbox import publish_later
from services.common.pagination import keyset_page
from services.common.schemas import MESSAGES, StrictSchema, load, text
from services.ledger import domain
from services.ledger.models import Balance, Invoice, InvoicePdf, Transaction
from services.ledger.schemas import MoneyAmountSchema

LONGEST_DAYS = 366
# Monthly statements announced per timer run (the rest wait for the next run).
MONTHLY_PER_RUN = 100
LANGUAGES = ("en", "pl")
FORMATS = ("json", "csv", "pdf")

# The words a statement prints, in the customer's language (CSV header and kinds; the PDF's own
# words are in statement_pdf.py).
WORDS = {
    "en": {"date": "date", "kind": "kind", "reference": "reference", "invoice_number": "invoice number",
           "description": "description", "amount": "amount", "balance_after": "balance after",
           "currency": "currency", "opening_balance": "opening balance", "closing_balance": "closing balance",
           "payment": "payment", "charge": "charge", "refund": "refund", "adjustment": "adjustment"},
    "pl": {"date": "data", "kind": "rodzaj", "reference": "referencja", "invoice_number": "numer faktury",
           "description": "opis", "amount": "kwota", "balance_after": "saldo po operacji",
           "currency": "waluta", "opening_balance": "saldo otwarcia", "closing_balance": "saldo zamknięcia",
           "payment": "wpłata", "charge": "obciążenie", "refund": "zwrot", "adjustment": "korekta"},
}
CSV_COLUMNS = ("date", "kind", "reference", "invoice_number", "description", "amount", "balance_after", "currency")


class PeriodSchema(StrictSchema):
    """``from`` and ``to``, both included, at most :data:`LONGEST_DAYS` days apart."""

    account_id = text(64, required=True)
    from_ = fields.Date(required=True, data_key="from", error_messages=MESSAGES)
    to = fields.Date(required=True, error_messages=MESSAGES)

    @validates_schema
    def a_period(self, data, **kwargs):
        if "from_" in data and "to" in data:
            if data["from_"] > data["to"]:
                raise FieldError("must not be before from", "to")
            if (data["to"] - data["from_"]).days >= LONGEST_DAYS:
                raise FieldError(f"a statement covers at most {LONGEST_DAYS} days", "to")


class ArchivePageSchema(StrictSchema):
    account_id = text(64, required=True)
    year = fields.Integer(strict=True, required=True, validate=validate.Range(2000, 9999), error_messages=MESSAGES)
    limit = fields.Integer(strict=True, load_default=100, validate=validate.Range(1, 100), error_messages=MESSAGES)
    cursor = fields.String(allow_none=True, load_default=None, error_messages=MESSAGES)


def _start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


class Statements:
    def __init__(self, uow, profiles, clock, currency: str):
        self.uow = uow
        self.profiles = profiles
        self.clock = clock
        self.currency = currency

    def statement(self, account_id, from_, to) -> dict:
        """The statement of ``[from, to]`` (dates, both included): opening, movements, closing."""
        period = load(PeriodSchema, {"account_id": account_id, "from": from_, "to": to})
        account_id = period["account_id"]
        profile = self.profiles.get(account_id)
        language = profile.get("language") if profile.get("language") in LANGUAGES else "en"
        starts, ends = _start(period["from_"]), _start(period["to"] + timedelta(days=1))
        with self.uow.transaction() as session:
            balance = session.get(Balance, account_id)
            currency = balance.currency if balance is not None else self.currency
            before = session.scalar(select(Transaction.balance_after_minor).where(
                Transaction.account_id == account_id, Transaction.created_at < starts)
                .order_by(Transaction.seq.desc()).limit(1))
            rows = session.execute(
                select(Transaction, Invoice.number).outerjoin(Invoice, Invoice.id == Transaction.invoice_id)
                .where(Transaction.account_id == account_id, Transaction.created_at >= starts,
                       Transaction.created_at < ends).order_by(Transaction.seq)).all()
        opening = Money(before or 0, currency)
        closing = Money(rows[-1][0].balance_after_minor, currency) if rows else opening
        totals = {kind: Money.zero(currency) for kind in ("payment", "charge", "refund", "adjustment")}
        movements = []
        for tx, number in rows:
            totals[tx.kind] = totals[tx.kind] + Money(tx.amount_minor, tx.currency)
            movements.append({**domain.transaction_view(tx), "invoice_number": number})
        holder = profile.get("company_name") or " ".join(
            part for part in (profile.get("first_name"), profile.get("last_name")) if part)
        return {"from": period["from_"].isoformat(), "to": period["to"].isoformat(), "currency": currency,
                "language": language, "holder": holder, "login": profile.get("login"),
                "generated_at": iso(self.clock.now()),
                "opening_balance": opening.to_wire(), "closing_balance": closing.to_wire(),
                "totals": {kind: money.to_wire() for kind, money in totals.items()},
                "transactions": movements}

    def send_monthly(self) -> int:
        """Announce last month's statement (``monthly_statement``) to each customer who asked for one, once a month.

        One replica at a time (lock ``ledger.monthly_statements``); the notifier mails it with the PDF.
        """
        this_month = self.clock.today().replace(day=1)
        last_month = (this_month - timedelta(days=1)).replace(day=1)
        with self.uow.transaction() as session:
            if not try_lock(session, "ledger.monthly_statements"):
                return 0
            due = session.scalars(select(Balance).where(
                Balance.monthly_statement.is_(True),
                (Balance.statement_sent_for.is_(None)) | (Balance.statement_sent_for < this_month))
                .limit(MONTHLY_PER_RUN).with_for_update()).all()
            for balance in due:
                opening, closing, count = _summary(session, balance, _start(last_month), _start(this_month))
                publish_later(session, "monthly_statement", {
                    "account_id": balance.account_id, "from": last_month.isoformat(),
                    "to": (this_month - timedelta(days=1)).isoformat(), "opening_balance": opening.to_wire(),
                    "closing_balance": closing.to_wire(), "transactions": count})
                balance.statement_sent_for = this_month
            return len(due)

    def archive_page(self, account_id, year, limit=100, cursor=None) -> dict:
        """The year's invoices and credit notes, newest first, in pages: what the archive's index lists."""
        data = load(ArchivePageSchema, {"account_id": account_id, "year": year, "limit": limit, "cursor": cursor})
        query = select(Invoice).where(Invoice.account_id == data["account_id"], Invoice.year == data["year"])
        with self.uow.transaction() as session:
            page = keyset_page(session, query, [Invoice.seq], data["limit"], data["cursor"])
            ids = [invoice.id for invoice in page.rows]
            kept = {row.invoice_id: row.sha256 for row in session.execute(
                select(InvoicePdf.invoice_id, InvoicePdf.sha256).where(InvoicePdf.invoice_id.in_(ids)))}
            return page.answer(lambda invoice: _archive_entry(invoice, kept.get(invoice.id)))


def _summary(session, balance: Balance, starts: datetime, ends: datetime) -> tuple[Money, Money, int]:
    """Opening and closing balance of ``[starts, ends)`` and the number of movements in it."""
    def after_last(before: datetime) -> Money:
        minor = session.scalar(select(Transaction.balance_after_minor).where(
            Transaction.account_id == balance.account_id, Transaction.created_at < before)
            .order_by(Transaction.seq.desc()).limit(1))
        return Money(minor or 0, balance.currency)
    count = session.scalar(select(func.count()).select_from(Transaction).where(
        Transaction.account_id == balance.account_id, Transaction.created_at >= starts, Transaction.created_at < ends))
    return after_last(starts), after_last(ends), count


def _archive_entry(invoice: Invoice, sha256: str | None) -> dict:
    document = invoice.document
    return {"id": invoice.id, "number": invoice.number, "kind": invoice.kind,
            "issued_at": iso(as_utc(invoice.issued_at)), "net": document.get("net"), "vat": document.get("vat"),
            "gross": document.get("gross"), "currency": document.get("currency"),
            "order_id": document.get("order_id"), "corrects": invoice.corrects, "sha256": sha256}


def statement_csv(statement: dict) -> str:
    """The statement as CSV (comma-separated, dot decimals, UTF-8), the header in its language:
    an opening-balance row, a row per movement, a closing-balance row."""
    words = WORDS.get(statement["language"], WORDS["en"])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([words[column] for column in CSV_COLUMNS])
    currency = statement["currency"]
    writer.writerow([statement["from"], words["opening_balance"], "", "", "", "",
                     statement["opening_balance"]["amount"], currency])
    for tx in statement["transactions"]:
        writer.writerow([tx["at"], words[tx["kind"]], tx["reference"] or "", tx["invoice_number"] or "",
                         tx["description"], tx["amount"]["amount"], tx["balance_after"]["amount"], currency])
    writer.writerow([statement["to"], words["closing_balance"], "", "", "", "",
                     statement["closing_balance"]["amount"], currency])
    return out.getvalue()


# --- the gateway's shapes -----------------------------------------------------------------

class StatementQuerySchema(StrictSchema):
    from_ = fields.Date(required=True, data_key="from", error_messages=MESSAGES,
                        metadata={"description": "the first day, UTC, included"})
    to = fields.Date(required=True, error_messages=MESSAGES, metadata={"description": "the last day, UTC, included"})
    format = fields.String(load_default=None, validate=validate.OneOf(FORMATS), error_messages=MESSAGES,
                           metadata={"description": "json (default), csv or pdf; without it, the Accept header "
                                                    "chooses (text/csv, application/pdf)"})


class StatementTransactionSchema(Schema):
    id = fields.String(required=True)
    at = fields.DateTime(required=True)
    kind = fields.String(required=True, metadata={"enum": ["payment", "charge", "refund", "adjustment"]})
    amount = fields.Nested(MoneyAmountSchema, required=True, metadata={"description": "signed"})
    balance_after = fields.Nested(MoneyAmountSchema, required=True)
    reference = fields.String(allow_none=True)
    description = fields.String(required=True)
    invoice_id = fields.String(allow_none=True)
    invoice_number = fields.String(allow_none=True, metadata={"description": "of the invoice or credit note"})
    method = fields.String(allow_none=True)
    credit_note_id = fields.String(allow_none=True)
    charge_id = fields.String(allow_none=True)


class StatementTotalsSchema(Schema):
    payment = fields.Nested(MoneyAmountSchema, required=True)
    charge = fields.Nested(MoneyAmountSchema, required=True)
    refund = fields.Nested(MoneyAmountSchema, required=True)
    adjustment = fields.Nested(MoneyAmountSchema, required=True)


class StatementSchema(Schema):
    from_ = fields.Date(required=True, data_key="from")
    to = fields.Date(required=True)
    currency = fields.String(required=True)
    language = fields.String(required=True, metadata={"enum": list(LANGUAGES)})
    holder = fields.String(required=True)
    login = fields.String(allow_none=True)
    generated_at = fields.DateTime(required=True)
    opening_balance = fields.Nested(MoneyAmountSchema, required=True)
    closing_balance = fields.Nested(MoneyAmountSchema, required=True,
                                    metadata={"description": "opening_balance plus every amount of transactions"})
    totals = fields.Nested(StatementTotalsSchema, required=True)
    transactions = fields.List(fields.Nested(StatementTransactionSchema), required=True,
                               metadata={"description": "oldest first"})


class ArchiveQuerySchema(StrictSchema):
    year = fields.Integer(required=True, validate=validate.Range(2000, 9999), error_messages=MESSAGES)
